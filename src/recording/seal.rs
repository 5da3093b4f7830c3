//! Keyed seals: HMAC-SHA256 tags, made with a recording key
//! ([`super::keys`]) that lives outside the database, over what the store
//! keeps. A database writer without the key can edit rows but cannot make
//! seals that match; `ssmgate sessions verify` recomputes them.
//!
//! What is sealed (each with its own domain string, so a tag made for one
//! kind of value never checks for another):
//! - **a chunk** — `HMAC(k, "ssmgate-chunk-seal-v1" ‖ hash)`, where `hash`
//!   is the chunk's link in the SHA-256 chain ([`super::chain`]), which
//!   already covers the session id, seq, time, events and the previous
//!   chunk's hash;
//! - **a session's start** — every field of the row known at its start:
//!   id, SSM session id, user, auth method, key and certificate details,
//!   source address and port, client version, target id and name,
//!   document, parameters, justification, AWS reason, decision, policy
//!   ids, kind, recording mode, start time;
//! - **a session's end** — session id, end time, end reason, exit status,
//!   bytes in and out, the number of chunks and the final chain head (so
//!   deleted or added chunks and a changed head are caught);
//! - **an audit event** — its id, time, kind, user, session id, source
//!   address and detail, with the id of the audit chain it belongs to and
//!   its sequence number there (so rows cannot be moved, and gaps show).
//!
//! Values are fed to the MAC in a canonical, length-prefixed form
//! ([`Canon`]): strings as length and bytes, optional values with a
//! presence byte, numbers big-endian, times as microseconds since the
//! epoch, addresses as text. A [`Seal`] is stored as `KEY_ID:HEX_MAC`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use uuid::Uuid;

use super::keys::{SealKey, SealKeys};
use super::records::{AuditEvent, SessionEnd, SessionRecord};

type HmacSha256 = hmac::Hmac<sha2_11::Sha256>;

const CHUNK_DOMAIN: &[u8] = b"ssmgate-chunk-seal-v1";
const START_DOMAIN: &[u8] = b"ssmgate-session-start-v1";
const END_DOMAIN: &[u8] = b"ssmgate-session-end-v1";
const AUDIT_DOMAIN: &[u8] = b"ssmgate-audit-v1";

/// A keyed tag and the id of the key that made it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Seal {
    /// The key's id (from the key file).
    pub key_id: String,
    /// HMAC-SHA256 of the sealed value.
    pub mac: [u8; 32],
}

impl fmt::Display for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_id, hex::encode(self.mac))
    }
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seal({self})")
    }
}

/// A stored seal is not `KEY_ID:HEX_MAC`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a seal (expected KEY_ID:64 hex digits)")]
pub struct BadSeal;

impl FromStr for Seal {
    type Err = BadSeal;

    fn from_str(s: &str) -> Result<Self, BadSeal> {
        let (key_id, mac) = s.rsplit_once(':').ok_or(BadSeal)?;
        let mac = hex::decode(mac)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or(BadSeal)?;
        if key_id.is_empty() {
            return Err(BadSeal);
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            mac,
        })
    }
}

impl serde::Serialize for Seal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Seal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What checking one seal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealCheck {
    /// The tag matches: the value is as sealed.
    Valid,
    /// The tag does not match: the value (or the tag) was changed.
    Mismatch,
    /// The key that made it is not in the key file: cannot tell.
    UnknownKey(String),
}

/// The canonical form of sealed values, fed straight into the MAC.
pub struct Canon(HmacSha256);

impl Canon {
    fn new(key: &SealKey, domain: &[u8]) -> Self {
        // HMAC pads a key shorter than the block (64 bytes) with zeros;
        // doing it here keeps construction infallible.
        let mut block = [0u8; 64];
        for (dst, src) in block.iter_mut().zip(key.bytes()) {
            *dst = *src;
        }
        let mut mac = HmacSha256::new(&block.into());
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain);
        Self(mac)
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into_bytes().into()
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => self.0.update(&[0]),
            Some(v) => {
                self.0.update(&[1]);
                f(self, v);
            }
        }
        self
    }

    fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        self.opt(s, |c, s| {
            c.str(s);
        })
    }

    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.update(&n.to_be_bytes());
        self
    }

    fn i64(&mut self, n: i64) -> &mut Self {
        self.0.update(&n.to_be_bytes());
        self
    }

    fn time(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.i64(t.timestamp_micros())
    }

    fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.0.update(id.as_bytes());
        self
    }

    fn ip(&mut self, ip: IpAddr) -> &mut Self {
        self.str(&ip.to_string())
    }
}

fn seal_with(key: &SealKey, mac: [u8; 32]) -> Seal {
    Seal {
        key_id: key.id().to_owned(),
        mac,
    }
}

/// Checks `seal` with the key it names, recomputing the tag with `tag`.
pub fn check(keys: &SealKeys, seal: &Seal, tag: impl FnOnce(&SealKey) -> [u8; 32]) -> SealCheck {
    let Some(key) = keys.get(&seal.key_id) else {
        return SealCheck::UnknownKey(seal.key_id.clone());
    };
    let expected = tag(key);
    // Constant time, though only an offline tool compares.
    let same = expected
        .iter()
        .zip(seal.mac.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if same {
        SealCheck::Valid
    } else {
        SealCheck::Mismatch
    }
}

/// The tag of a chunk whose chain hash is `hash`.
pub fn chunk_tag(key: &SealKey, hash: &[u8; 32]) -> [u8; 32] {
    let mut c = Canon::new(key, CHUNK_DOMAIN);
    c.bytes(hash);
    c.finish()
}

/// Seals a chunk's chain hash.
pub fn seal_chunk(key: &SealKey, hash: &[u8; 32]) -> Seal {
    seal_with(key, chunk_tag(key, hash))
}

/// The tag of a session's start (every field known at the start; the end,
/// chain head and seals themselves are not part of it).
pub fn start_tag(key: &SealKey, s: &SessionRecord) -> [u8; 32] {
    let mut c = Canon::new(key, START_DOMAIN);
    c.uuid(s.id)
        .opt_str(s.ssm_session_id.as_deref())
        .str(&s.user)
        .str(s.auth_method.as_str())
        .opt_str(s.key_fingerprint.as_deref())
        .opt_str(s.cert_key_id.as_deref())
        .opt(s.cert_serial, |c, n| {
            c.u64(n);
        })
        .opt_str(s.cert_ca_fingerprint.as_deref())
        .ip(s.source_ip)
        .u64(u64::from(s.source_port))
        .opt_str(s.client_version.as_deref())
        .str(&s.target_id)
        .opt_str(s.target_name.as_deref())
        .opt_str(s.document.as_deref())
        .opt_str(s.parameters.as_deref())
        .opt_str(s.justification.as_deref())
        .opt_str(s.aws_reason.as_deref())
        .str(s.decision.as_str())
        .u64(s.policy_ids.len() as u64);
    for p in &s.policy_ids {
        c.str(p);
    }
    c.str(s.kind.as_str())
        .str(s.recording.as_str())
        .time(s.started_at);
    // Added later: only sessions that have them include them, so the
    // seals of older rows stay valid.
    if s.backend.is_some() || s.os_user.is_some() {
        c.str("backend").opt_str(s.backend.as_deref());
        c.opt_str(s.os_user.as_deref());
    }
    c.finish()
}

/// Seals a session's start.
pub fn seal_start(key: &SealKey, s: &SessionRecord) -> Seal {
    seal_with(key, start_tag(key, s))
}

/// The tag of a session's end: how it ended, with the number of chunks
/// and the final chain head (`head` is `None` without chunks).
pub fn end_tag(key: &SealKey, id: Uuid, e: &SessionEnd, head: Option<&[u8; 32]>) -> [u8; 32] {
    let mut c = Canon::new(key, END_DOMAIN);
    c.uuid(id)
        .time(e.ended_at)
        .str(e.reason.as_str())
        .opt(e.exit_status, |c, n| {
            c.i64(i64::from(n));
        })
        .u64(e.bytes_in)
        .u64(e.bytes_out)
        .opt(e.chunk_count, |c, n| {
            c.u64(n);
        })
        .opt(head, |c, h| {
            c.bytes(h);
        });
    // Added later: only ends that have a cause include it, so the seals
    // of older rows stay valid.
    if let Some(cause) = &e.cause {
        c.str("cause").str(cause);
    }
    c.finish()
}

/// Seals a session's end (`e.chain_head` is the final head it records).
pub fn seal_end(key: &SealKey, id: Uuid, e: &SessionEnd) -> Seal {
    seal_with(key, end_tag(key, id, e, e.chain_head.as_ref()))
}

/// The tag of an audit event at `seq` in audit chain `chain`.
pub fn audit_tag(key: &SealKey, e: &AuditEvent, chain: Uuid, seq: i64) -> [u8; 32] {
    let mut c = Canon::new(key, AUDIT_DOMAIN);
    c.uuid(chain)
        .i64(seq)
        .uuid(e.id)
        .time(e.at)
        .str(e.kind.as_str())
        .opt_str(e.user.as_deref())
        .opt(e.session_id, |c, id| {
            c.uuid(id);
        })
        .opt(e.source_ip, |c, ip| {
            c.ip(ip);
        })
        .str(&e.detail);
    c.finish()
}

/// Seals an audit event at `seq` in audit chain `chain`.
pub fn seal_audit(key: &SealKey, e: &AuditEvent, chain: Uuid, seq: i64) -> Seal {
    seal_with(key, audit_tag(key, e, chain, seq))
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
