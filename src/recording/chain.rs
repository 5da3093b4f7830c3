//! Tamper evidence, part 1: the hash chain over a session's event chunks.
//!
//! Every chunk carries `hash = SHA-256(prev_hash ‖ canonical bytes)` where
//! the canonical bytes are, in order:
//! ```text
//! "ssmgate-chunk-v1"          16 ASCII bytes (domain separation)
//! session id                  16 bytes (the UUID's bytes)
//! seq                         i64 big-endian
//! created_at                  i64 big-endian, microseconds since the Unix epoch
//! events length               u64 big-endian
//! events                      codec::encode_events
//! ```
//! Chunk 0's `prev_hash` (the genesis) is SHA-256 of the session id's 16
//! bytes, so a chunk cannot be moved to another session; chunk *n*'s is
//! chunk *n−1*'s hash. The session row keeps the head (the last chunk's
//! hash), so deleting chunks from the end is detected too.
//!
//! [`ChainWriter`] seals chunks as the recorder produces them; [`verify`]
//! recomputes a stored chain and names the first broken link.
//!
//! This chain alone is unkeyed: anyone who can write to the database can
//! edit a chunk and recompute every hash after it, and the head. What
//! makes that evident is part 2, the keyed seals ([`super::seal`]): a
//! [`ChainWriter`] given a key also seals each chunk's hash with an
//! HMAC (one per chunk, over 32 bytes), and the session's end seal covers
//! the chunk count and the final head; [`super::check`] verifies both.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::codec::encode_events;
use super::keys::SealKey;
use super::records::{Event, EventChunk, SessionRecord, truncate_micros};
use super::seal::seal_chunk;

/// Domain separation prefix of the canonical chunk bytes.
const DOMAIN: &[u8; 16] = b"ssmgate-chunk-v1";

/// The `prev_hash` of a session's first chunk: SHA-256 of the session id.
pub fn genesis(session_id: Uuid) -> [u8; 32] {
    Sha256::digest(session_id.as_bytes()).into()
}

/// The hash of a chunk with this content linked after `prev_hash`.
pub fn chunk_hash(
    prev_hash: &[u8; 32],
    session_id: Uuid,
    seq: i64,
    created_at: DateTime<Utc>,
    events: &[Event],
) -> [u8; 32] {
    let encoded = encode_events(events);
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(DOMAIN);
    h.update(session_id.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(created_at.timestamp_micros().to_be_bytes());
    h.update((encoded.len() as u64).to_be_bytes());
    h.update(&encoded);
    h.finalize().into()
}

/// Seals a session's chunks one after the other, tracking seq and head;
/// with a key, each chunk also gets its keyed seal.
#[derive(Debug, Clone)]
pub struct ChainWriter {
    session_id: Uuid,
    next_seq: i64,
    prev: [u8; 32],
    head: Option<[u8; 32]>,
    key: Option<SealKey>,
}

impl ChainWriter {
    /// A chain for a new session (the first chunk will be seq 0).
    pub fn new(session_id: Uuid) -> Self {
        Self {
            session_id,
            next_seq: 0,
            prev: genesis(session_id),
            head: None,
            key: None,
        }
    }

    /// A chain for a new session whose chunks are sealed with `key`.
    pub fn sealed(session_id: Uuid, key: SealKey) -> Self {
        Self {
            key: Some(key),
            ..Self::new(session_id)
        }
    }

    /// Continues a chain whose last stored chunk is `last`.
    pub fn resume(last: &EventChunk) -> Self {
        Self {
            session_id: last.session_id,
            next_seq: last.seq.saturating_add(1),
            prev: last.hash,
            head: Some(last.hash),
            key: None,
        }
    }

    /// The same chain, sealing the chunks it makes from now on with `key`.
    pub fn with_key(self, key: SealKey) -> Self {
        Self {
            key: Some(key),
            ..self
        }
    }

    /// Makes the next chunk from `events`, sealed at `created_at`
    /// (truncated to microseconds).
    pub fn seal(&mut self, created_at: DateTime<Utc>, events: Vec<Event>) -> EventChunk {
        let created_at = truncate_micros(created_at);
        let seq = self.next_seq;
        let hash = chunk_hash(&self.prev, self.session_id, seq, created_at, &events);
        let chunk = EventChunk {
            session_id: self.session_id,
            seq,
            events,
            prev_hash: self.prev,
            hash,
            created_at,
            seal: self.key.as_ref().map(|k| seal_chunk(k, &hash)),
        };
        self.next_seq = seq.saturating_add(1);
        self.prev = hash;
        self.head = Some(hash);
        chunk
    }

    /// The seq the next chunk will get.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// The last sealed chunk's hash; `None` before the first.
    pub fn head(&self) -> Option<[u8; 32]> {
        self.head
    }
}

/// What is wrong at a broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The chunk names another session.
    WrongSession {
        /// The session id the chunk holds.
        found: Uuid,
    },
    /// The chunk with this seq is absent (a later one is present).
    Missing {
        /// The seq of the chunk found in its place.
        found: i64,
    },
    /// A chunk with a lower seq appears again, out of order.
    OutOfOrder {
        /// The seq found.
        found: i64,
    },
    /// `prev_hash` is not the previous chunk's hash (or the genesis).
    PrevMismatch,
    /// The content does not hash to the stored hash: edited.
    HashMismatch,
    /// Chunks exist but the session row has no head.
    HeadMissing,
    /// The session row's head is not the last chunk's hash: chunks were
    /// deleted from the end or the head was edited.
    HeadMismatch,
    /// The session row's head is an earlier chunk's hash: chunks were added
    /// after it.
    BeyondHead,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSession { found } => write!(f, "chunk belongs to session {found}"),
            Self::Missing { found } => write!(f, "chunk is missing (next stored chunk is {found})"),
            Self::OutOfOrder { found } => write!(f, "chunk {found} appears out of order"),
            Self::PrevMismatch => f.write_str("previous hash does not link to the chunk before"),
            Self::HashMismatch => f.write_str("content does not match its hash (edited)"),
            Self::HeadMissing => f.write_str("the session row has no chain head"),
            Self::HeadMismatch => f.write_str(
                "the session's chain head does not match the last chunk (chunks deleted from the end, or the head edited)",
            ),
            Self::BeyondHead => f.write_str("chunk was added after the session's chain head"),
        }
    }
}

/// The first place a stored chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain broken at chunk {seq}: {why}")]
pub struct BrokenLink {
    /// The seq of the first chunk that cannot be trusted (for a head
    /// mismatch after intact chunks: one past the last chunk).
    pub seq: i64,
    /// What is wrong there.
    pub why: LinkError,
}

/// Recomputes a session's chain from its chunks (in the order given, which
/// must be seq order from 0) and checks it against the head on the session
/// row. A session with no chunks and no head verifies (metadata-only
/// recording, or nothing recorded yet).
pub fn verify(session: &SessionRecord, chunks: &[EventChunk]) -> Result<(), BrokenLink> {
    let broken = |seq, why| Err(BrokenLink { seq, why });
    let mut prev = genesis(session.id);
    let mut hashes = Vec::with_capacity(chunks.len());
    for (expected, chunk) in (0i64..).zip(chunks) {
        if chunk.session_id != session.id {
            return broken(
                chunk.seq,
                LinkError::WrongSession {
                    found: chunk.session_id,
                },
            );
        }
        if chunk.seq > expected {
            return broken(expected, LinkError::Missing { found: chunk.seq });
        }
        if chunk.seq < expected {
            return broken(expected, LinkError::OutOfOrder { found: chunk.seq });
        }
        if chunk.prev_hash != prev {
            return broken(chunk.seq, LinkError::PrevMismatch);
        }
        let hash = chunk_hash(
            &chunk.prev_hash,
            chunk.session_id,
            chunk.seq,
            chunk.created_at,
            &chunk.events,
        );
        if hash != chunk.hash {
            return broken(chunk.seq, LinkError::HashMismatch);
        }
        prev = hash;
        hashes.push(hash);
    }
    let next = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
    match (session.chain_head, hashes.last()) {
        (None, None) => Ok(()),
        (None, Some(_)) => broken(next - 1, LinkError::HeadMissing),
        (Some(head), Some(last)) if head == *last => Ok(()),
        (Some(head), _) => match hashes.iter().position(|h| *h == head) {
            Some(i) => broken(i as i64 + 1, LinkError::BeyondHead),
            None => broken(next, LinkError::HeadMismatch),
        },
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
