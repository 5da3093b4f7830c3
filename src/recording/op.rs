//! One write to the recording store ([`Op`]): what the recorder queues, the
//! writer applies, and the spool keeps on disk while the store is away,
//! with its byte encoding for the spool.
//!
//! Encoding: a tag byte, then for chunks a fixed binary header followed by
//! the [`codec`](super::codec) event bytes (terminal output is bulk binary),
//! and for the small rows (session, end, audit) their JSON. A sealed chunk
//! (tag 5) has its seal (`KEY_ID:HEX`, u16 length first) between header
//! and events; tag 2 is a chunk without a seal, as spooled by versions
//! before sealing (still read). The seals of the other rows are fields of
//! their JSON (absent in spools written before sealing).

use uuid::Uuid;

use super::codec::{decode_events, encode_events};
use super::records::{AuditEvent, EventChunk, SessionEnd, SessionRecord};
use super::seal::Seal;
use super::store::{Store, StoreError, Write};

/// A write to the store. Every op is idempotent, so replaying one that may
/// have landed already is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A session's row at its start.
    Session(Box<SessionRecord>),
    /// A sealed chunk of a session's events.
    Chunk(EventChunk),
    /// How a session ended.
    Finish(Uuid, SessionEnd),
    /// An audit event.
    Audit(AuditEvent),
}

/// Why spooled bytes could not be read back as an op.
#[derive(Debug, thiserror::Error)]
pub enum OpDecodeError {
    #[error("unknown op tag {0}")]
    Tag(u8),
    #[error("op is truncated")]
    Truncated,
    #[error("bad op JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad chunk events: {0}")]
    Events(#[from] super::codec::DecodeError),
    #[error("bad chunk timestamp")]
    Time,
    #[error("bad chunk seal")]
    Seal,
}

const TAG_SESSION: u8 = 1;
const TAG_CHUNK: u8 = 2;
const TAG_FINISH: u8 = 3;
const TAG_AUDIT: u8 = 4;
const TAG_CHUNK_SEALED: u8 = 5;
/// session id, seq, created_at micros, prev hash, hash.
const CHUNK_HEADER: usize = 16 + 8 + 8 + 32 + 32;

impl Op {
    /// Roughly how much memory the op holds (what the recorder's memory
    /// budget counts).
    pub fn weight(&self) -> usize {
        match self {
            Op::Chunk(c) => 128 + c.events.iter().map(|e| 48 + e.data.len()).sum::<usize>(),
            Op::Session(s) => {
                1024 + s.justification.as_ref().map_or(0, String::len)
                    + s.aws_reason.as_ref().map_or(0, String::len)
                    + s.parameters.as_ref().map_or(0, String::len)
            }
            Op::Finish(..) => 128,
            Op::Audit(a) => 256 + a.detail.len(),
        }
    }

    /// The session the op belongs to, if any.
    pub fn session_id(&self) -> Option<Uuid> {
        match self {
            Op::Session(s) => Some(s.id),
            Op::Chunk(c) => Some(c.session_id),
            Op::Finish(id, _) => Some(*id),
            Op::Audit(a) => a.session_id,
        }
    }

    /// Writes the op to `store`.
    pub async fn apply(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.write(&[self.as_write()]).await
    }

    /// The op as a [`Write`] (several go to the store in one transaction).
    pub fn as_write(&self) -> Write<'_> {
        match self {
            Op::Session(s) => Write::Session(s),
            Op::Chunk(c) => Write::Chunk(c),
            Op::Finish(id, end) => Write::Finish(*id, end),
            Op::Audit(a) => Write::Audit(a),
        }
    }

    /// The op's bytes for the spool.
    pub fn encode(&self) -> Vec<u8> {
        let json = |tag: u8, v: Result<Vec<u8>, serde_json::Error>| {
            // Serializing these plain structs to JSON cannot fail (no maps
            // with non-string keys, no custom serializers that error).
            let mut out = vec![tag];
            out.extend(v.unwrap_or_default());
            out
        };
        match self {
            Op::Session(s) => json(TAG_SESSION, serde_json::to_vec(s)),
            Op::Finish(id, end) => json(TAG_FINISH, serde_json::to_vec(&(id, end))),
            Op::Audit(a) => json(TAG_AUDIT, serde_json::to_vec(a)),
            Op::Chunk(c) => {
                let events = encode_events(&c.events);
                let seal = c.seal.as_ref().map(Seal::to_string);
                let seal_len = seal.as_ref().map_or(0, |s| 2 + s.len());
                let mut out = Vec::with_capacity(1 + CHUNK_HEADER + seal_len + events.len());
                out.push(if seal.is_some() {
                    TAG_CHUNK_SEALED
                } else {
                    TAG_CHUNK
                });
                out.extend_from_slice(c.session_id.as_bytes());
                out.extend_from_slice(&c.seq.to_be_bytes());
                out.extend_from_slice(&c.created_at.timestamp_micros().to_be_bytes());
                out.extend_from_slice(&c.prev_hash);
                out.extend_from_slice(&c.hash);
                if let Some(seal) = seal {
                    // A seal is a short key id and 64 hex digits.
                    let len = u16::try_from(seal.len()).unwrap_or(u16::MAX);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(
                        seal.as_bytes().get(..usize::from(len)).unwrap_or_default(),
                    );
                }
                out.extend_from_slice(&events);
                out
            }
        }
    }

    /// Reads what [`Op::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Op, OpDecodeError> {
        let (&tag, body) = bytes.split_first().ok_or(OpDecodeError::Truncated)?;
        Ok(match tag {
            TAG_SESSION => Op::Session(Box::new(serde_json::from_slice(body)?)),
            TAG_FINISH => {
                let (id, end) = serde_json::from_slice(body)?;
                Op::Finish(id, end)
            }
            TAG_AUDIT => Op::Audit(serde_json::from_slice(body)?),
            TAG_CHUNK | TAG_CHUNK_SEALED => {
                if body.len() < CHUNK_HEADER {
                    return Err(OpDecodeError::Truncated);
                }
                let (head, mut events) = body.split_at(CHUNK_HEADER);
                let mut r = head;
                let id = Uuid::from_bytes(take::<16>(&mut r));
                let seq = i64::from_be_bytes(take::<8>(&mut r));
                let micros = i64::from_be_bytes(take::<8>(&mut r));
                let prev_hash = take::<32>(&mut r);
                let hash = take::<32>(&mut r);
                let seal = if tag == TAG_CHUNK_SEALED {
                    if events.len() < 2 {
                        return Err(OpDecodeError::Truncated);
                    }
                    let len = usize::from(u16::from_be_bytes(take::<2>(&mut events)));
                    if events.len() < len {
                        return Err(OpDecodeError::Truncated);
                    }
                    let (text, rest) = events.split_at(len);
                    events = rest;
                    let text = std::str::from_utf8(text).map_err(|_| OpDecodeError::Seal)?;
                    Some(text.parse::<Seal>().map_err(|_| OpDecodeError::Seal)?)
                } else {
                    None
                };
                Op::Chunk(EventChunk {
                    session_id: id,
                    seq,
                    events: decode_events(events)?,
                    prev_hash,
                    hash,
                    created_at: chrono::DateTime::from_timestamp_micros(micros)
                        .ok_or(OpDecodeError::Time)?,
                    seal,
                })
            }
            other => return Err(OpDecodeError::Tag(other)),
        })
    }
}

/// The next `N` bytes of `r` (the caller checked there are enough; missing
/// bytes would read as zeros rather than panic).
fn take<const N: usize>(r: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(r.len());
    let (head, rest) = r.split_at(n);
    if let Some(dst) = out.get_mut(..n) {
        dst.copy_from_slice(head);
    }
    *r = rest;
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::recording::records::*;
    use crate::recording::{ChainWriter, now};
    use bytes::Bytes;

    pub(crate) fn sample_session(id: Uuid) -> SessionRecord {
        SessionRecord {
            id,
            ssm_session_id: Some("alice-0123456789abcdef0".into()),
            user: "alice".into(),
            auth_method: AuthKind::Certificate,
            key_fingerprint: Some("SHA256:abc".into()),
            cert_key_id: Some("alice@corp".into()),
            cert_serial: Some(u64::MAX),
            cert_ca_fingerprint: Some("SHA256:ca".into()),
            source_ip: "192.0.2.7".parse().unwrap(),
            source_port: 50022,
            client_version: Some("SSH-2.0-OpenSSH_9.6".into()),
            target_id: "mi-0123456789abcdef0".into(),
            target_name: Some("web-1".into()),
            document: Some("SSM-SessionManagerRunShell".into()),
            parameters: Some("{}".into()),
            justification: Some("INC-1 disk full".into()),
            aws_reason: Some("ssmgate alice INC-1".into()),
            decision: Decision::Allow,
            policy_ids: vec!["policy0".into()],
            kind: SessionKind::Shell,
            recording: RecordingMode::Full,
            started_at: now(),
            end: None,
            chain_head: None,
            start_seal: None,
            backend: None,
            os_user: None,
            replica: None,
        }
    }

    #[test]
    fn every_op_round_trips() {
        let id = Uuid::new_v4();
        let mut chain = ChainWriter::new(id);
        let chunk = chain.seal(
            now(),
            vec![
                Event {
                    offset_ms: 5,
                    kind: EventKind::Output,
                    data: Bytes::from_static(b"\xff\x00hello"),
                },
                Event {
                    offset_ms: 9,
                    kind: EventKind::Exit { code: -3 },
                    data: Bytes::new(),
                },
            ],
        );
        let ops = [
            Op::Session(Box::new(sample_session(id))),
            Op::Chunk(chunk),
            Op::Finish(
                id,
                SessionEnd {
                    ended_at: now(),
                    reason: EndReason::TargetExited,
                    exit_status: Some(3),
                    bytes_in: 1,
                    bytes_out: 2,
                    chain_head: Some([7; 32]),
                    chunk_count: Some(4),
                    seal: Some(Seal {
                        key_id: "k1".into(),
                        mac: [9; 32],
                    }),
                    cause: None,
                },
            ),
            Op::Audit(AuditEvent {
                id: Uuid::new_v4(),
                at: now(),
                kind: AuditKind::DecisionDeny,
                user: Some("bob".into()),
                session_id: Some(id),
                source_ip: None,
                detail: r#"{"message":"no"}"#.into(),
                link: Some(AuditLink {
                    chain_id: Uuid::new_v4(),
                    seq: 17,
                    seal: Seal {
                        key_id: "k-2".into(),
                        mac: [3; 32],
                    },
                }),
            }),
        ];
        for op in ops {
            assert_eq!(Op::decode(&op.encode()).unwrap(), op);
        }
    }

    #[test]
    fn sealed_and_unsealed_chunks_round_trip() {
        let id = Uuid::new_v4();
        let key = crate::recording::SealKeys::random("key.1")
            .unwrap()
            .signer()
            .clone();
        let events = vec![Event {
            offset_ms: 1,
            kind: EventKind::Input,
            data: Bytes::from_static(b"ls\r"),
        }];
        let sealed = ChainWriter::sealed(id, key).seal(now(), events.clone());
        assert!(sealed.seal.is_some());
        let plain = ChainWriter::new(id).seal(now(), events);
        for chunk in [sealed, plain] {
            let bytes = Op::Chunk(chunk.clone()).encode();
            assert_eq!(
                bytes[0],
                if chunk.seal.is_some() {
                    TAG_CHUNK_SEALED
                } else {
                    TAG_CHUNK
                }
            );
            assert_eq!(Op::decode(&bytes).unwrap(), Op::Chunk(chunk));
        }
    }

    #[test]
    fn spooled_json_from_before_sealing_still_reads() {
        // A session row and an audit event as spooled by the version
        // before seals: no seal fields.
        let mut old = vec![TAG_AUDIT];
        old.extend_from_slice(
            br#"{"id":"6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab","at":"2026-01-02T03:04:05.000006Z","kind":"admin","user":null,"session_id":null,"source_ip":null,"detail":"{}"}"#,
        );
        let Op::Audit(a) = Op::decode(&old).unwrap() else {
            panic!("not an audit op")
        };
        assert_eq!(a.link, None);
        let mut s = sample_session(Uuid::new_v4());
        let mut json = serde_json::to_value(&s).unwrap();
        json.as_object_mut().unwrap().remove("start_seal");
        let mut old = vec![TAG_SESSION];
        old.extend(serde_json::to_vec(&json).unwrap());
        s.start_seal = None;
        assert_eq!(Op::decode(&old).unwrap(), Op::Session(Box::new(s)));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(Op::decode(&[]), Err(OpDecodeError::Truncated)));
        assert!(matches!(Op::decode(&[9, 1]), Err(OpDecodeError::Tag(9))));
        assert!(matches!(
            Op::decode(&[TAG_CHUNK, 1, 2]),
            Err(OpDecodeError::Truncated)
        ));
        assert!(matches!(
            Op::decode(b"\x01{not json"),
            Err(OpDecodeError::Json(_))
        ));
    }
}
