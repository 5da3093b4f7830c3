//! Column-level forms of the records, shared by both backends: enums as
//! their text codes, unsigned numbers as `i64`, hashes as byte vectors,
//! events encoded. Each backend only binds and reads these fields (and
//! maps ids and timestamps to its own column types); all validation of
//! what comes back from a database happens here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::codec::{decode_events, encode_events};
use super::records::{AuditEvent, AuditLink, EventChunk, SessionEnd, SessionRecord};
use super::seal::Seal;
use super::store::{
    StoreError, check_json, parse, policy_ids_from_json, policy_ids_json, to_hash, to_i64, to_u64,
};

/// A `sessions` row.
#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub id: Uuid,
    pub ssm_session_id: Option<String>,
    pub user_name: String,
    pub auth_method: String,
    pub key_fingerprint: Option<String>,
    pub cert_key_id: Option<String>,
    pub cert_serial: Option<String>,
    pub cert_ca_fingerprint: Option<String>,
    pub source_ip: String,
    pub source_port: i32,
    pub client_version: Option<String>,
    pub target_id: String,
    pub target_name: Option<String>,
    pub document: Option<String>,
    pub parameters: Option<String>,
    pub justification: Option<String>,
    pub aws_reason: Option<String>,
    pub decision: String,
    pub policy_ids: String,
    pub kind: String,
    pub recording: String,
    pub started_at: DateTime<Utc>,
    pub end: Option<EndRow>,
    pub chain_head: Option<Vec<u8>>,
    pub start_seal: Option<String>,
    pub backend: Option<String>,
    pub os_user: Option<String>,
    pub replica_id: Option<Uuid>,
}

/// The end columns of a `sessions` row (all set, or all null).
#[derive(Debug, Clone)]
pub(crate) struct EndRow {
    pub ended_at: DateTime<Utc>,
    pub end_reason: String,
    pub exit_status: Option<i32>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub chain_head: Option<Vec<u8>>,
    pub chunk_count: Option<i64>,
    pub end_seal: Option<String>,
    pub end_cause: Option<String>,
}

impl SessionRow {
    /// The row for a record; checks JSON and number ranges.
    pub fn from_record(s: &SessionRecord) -> Result<Self, StoreError> {
        if let Some(p) = &s.parameters {
            check_json("parameters", p)?;
        }
        Ok(Self {
            id: s.id,
            ssm_session_id: s.ssm_session_id.clone(),
            user_name: s.user.clone(),
            auth_method: s.auth_method.as_str().to_owned(),
            key_fingerprint: s.key_fingerprint.clone(),
            cert_key_id: s.cert_key_id.clone(),
            cert_serial: s.cert_serial.map(|n| n.to_string()),
            cert_ca_fingerprint: s.cert_ca_fingerprint.clone(),
            source_ip: s.source_ip.to_string(),
            source_port: i32::from(s.source_port),
            client_version: s.client_version.clone(),
            target_id: s.target_id.clone(),
            target_name: s.target_name.clone(),
            document: s.document.clone(),
            parameters: s.parameters.clone(),
            justification: s.justification.clone(),
            aws_reason: s.aws_reason.clone(),
            decision: s.decision.as_str().to_owned(),
            policy_ids: policy_ids_json(&s.policy_ids),
            kind: s.kind.as_str().to_owned(),
            recording: s.recording.as_str().to_owned(),
            started_at: s.started_at,
            end: s.end.as_ref().map(EndRow::from_end).transpose()?,
            chain_head: s.chain_head.map(|h| h.to_vec()),
            start_seal: s.start_seal.as_ref().map(Seal::to_string),
            backend: s.backend.clone(),
            os_user: s.os_user.clone(),
            replica_id: s.replica,
        })
    }

    /// The record a row holds.
    pub fn into_record(self) -> Result<SessionRecord, StoreError> {
        Ok(SessionRecord {
            id: self.id,
            ssm_session_id: self.ssm_session_id,
            user: self.user_name,
            auth_method: parse("auth_method", &self.auth_method)?,
            key_fingerprint: self.key_fingerprint,
            cert_key_id: self.cert_key_id,
            cert_serial: self
                .cert_serial
                .map(|s| parse("cert_serial", &s))
                .transpose()?,
            cert_ca_fingerprint: self.cert_ca_fingerprint,
            source_ip: parse("source_ip", &self.source_ip)?,
            source_port: u16::try_from(self.source_port)
                .map_err(|e| StoreError::corrupt("source_port", e))?,
            client_version: self.client_version,
            target_id: self.target_id,
            target_name: self.target_name,
            document: self.document,
            parameters: self.parameters,
            justification: self.justification,
            aws_reason: self.aws_reason,
            decision: parse("decision", &self.decision)?,
            policy_ids: policy_ids_from_json(&self.policy_ids)?,
            kind: parse("kind", &self.kind)?,
            recording: parse("recording", &self.recording)?,
            started_at: self.started_at,
            end: self.end.map(EndRow::into_end).transpose()?,
            chain_head: self
                .chain_head
                .map(|h| to_hash("chain_head", h))
                .transpose()?,
            start_seal: parse_seal("start_seal", self.start_seal)?,
            backend: self.backend,
            os_user: self.os_user,
            replica: self.replica_id,
        })
    }
}

impl EndRow {
    /// The columns for an end.
    pub fn from_end(e: &SessionEnd) -> Result<Self, StoreError> {
        Ok(Self {
            ended_at: e.ended_at,
            end_reason: e.reason.as_str().to_owned(),
            exit_status: e.exit_status,
            bytes_in: to_i64("bytes_in", e.bytes_in)?,
            bytes_out: to_i64("bytes_out", e.bytes_out)?,
            chain_head: e.chain_head.map(|h| h.to_vec()),
            chunk_count: e
                .chunk_count
                .map(|n| to_i64("chunk_count", n))
                .transpose()?,
            end_seal: e.seal.as_ref().map(Seal::to_string),
            end_cause: e.cause.clone(),
        })
    }

    /// Builds the end from nullable columns: `None` when `ended_at` is null.
    pub fn from_columns(
        ended_at: Option<DateTime<Utc>>,
        end_reason: Option<String>,
        exit_status: Option<i32>,
        (bytes_in, bytes_out): (Option<i64>, Option<i64>),
        (chunk_count, end_seal, end_cause): (Option<i64>, Option<String>, Option<String>),
    ) -> Result<Option<Self>, StoreError> {
        let Some(ended_at) = ended_at else {
            return Ok(None);
        };
        let missing = |what| StoreError::corrupt(what, "null although ended_at is set");
        Ok(Some(Self {
            ended_at,
            end_reason: end_reason.ok_or_else(|| missing("end_reason"))?,
            exit_status,
            bytes_in: bytes_in.ok_or_else(|| missing("bytes_in"))?,
            bytes_out: bytes_out.ok_or_else(|| missing("bytes_out"))?,
            chain_head: None,
            chunk_count,
            end_seal,
            end_cause,
        }))
    }

    fn into_end(self) -> Result<SessionEnd, StoreError> {
        Ok(SessionEnd {
            ended_at: self.ended_at,
            reason: parse("end_reason", &self.end_reason)?,
            exit_status: self.exit_status,
            bytes_in: to_u64("bytes_in", self.bytes_in)?,
            bytes_out: to_u64("bytes_out", self.bytes_out)?,
            // The final head lives in the record's chain_head.
            chain_head: None,
            chunk_count: self
                .chunk_count
                .map(|n| to_u64("chunk_count", n))
                .transpose()?,
            seal: parse_seal("end_seal", self.end_seal)?,
            cause: self.end_cause,
        })
    }
}

/// True when two records agree on everything known at the start (what
/// [`Store::insert_session`](super::Store::insert_session) writes).
pub(crate) fn same_start(a: &SessionRecord, b: &SessionRecord) -> bool {
    let strip = |s: &SessionRecord| SessionRecord {
        end: None,
        chain_head: None,
        ..s.clone()
    };
    strip(a) == strip(b)
}

/// A seal column (`KEY_ID:HEX`), `None` when null.
fn parse_seal(what: &'static str, v: Option<String>) -> Result<Option<Seal>, StoreError> {
    v.map(|s| s.parse::<Seal>().map_err(|e| StoreError::corrupt(what, e)))
        .transpose()
}

/// A `session_chunks` row.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRow {
    pub session_id: Uuid,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub events: Vec<u8>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub seal: Option<String>,
}

impl ChunkRow {
    /// The row for a chunk.
    pub fn from_chunk(c: &EventChunk) -> Result<Self, StoreError> {
        if c.seq < 0 {
            return Err(StoreError::Invalid {
                what: "seq",
                why: format!("negative: {}", c.seq),
            });
        }
        Ok(Self {
            session_id: c.session_id,
            seq: c.seq,
            created_at: c.created_at,
            events: encode_events(&c.events),
            prev_hash: c.prev_hash.to_vec(),
            hash: c.hash.to_vec(),
            seal: c.seal.as_ref().map(Seal::to_string),
        })
    }

    /// The chunk a row holds; damage is [`StoreError::CorruptChunk`].
    pub fn into_chunk(self) -> Result<EventChunk, StoreError> {
        let (id, seq) = (self.session_id, self.seq);
        let bad = |e: StoreError| StoreError::corrupt_chunk(id, seq, e);
        Ok(EventChunk {
            session_id: id,
            seq,
            events: decode_events(&self.events)
                .map_err(|e| StoreError::corrupt_chunk(id, seq, format!("events: {e}")))?,
            prev_hash: to_hash("prev_hash", self.prev_hash).map_err(bad)?,
            hash: to_hash("hash", self.hash).map_err(bad)?,
            created_at: self.created_at,
            seal: parse_seal("seal", self.seal).map_err(bad)?,
        })
    }
}

/// An `audit_events` row.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub user_name: Option<String>,
    pub session_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub detail: String,
    pub chain_id: Option<Uuid>,
    pub chain_seq: Option<i64>,
    pub seal: Option<String>,
}

impl AuditRow {
    /// The row for an event; checks that the detail is JSON.
    pub fn from_event(e: &AuditEvent) -> Result<Self, StoreError> {
        check_json("detail", &e.detail)?;
        Ok(Self {
            id: e.id,
            at: e.at,
            kind: e.kind.as_str().to_owned(),
            user_name: e.user.clone(),
            session_id: e.session_id,
            source_ip: e.source_ip.map(|ip| ip.to_string()),
            detail: e.detail.clone(),
            chain_id: e.link.as_ref().map(|l| l.chain_id),
            chain_seq: e.link.as_ref().map(|l| l.seq),
            seal: e.link.as_ref().map(|l| l.seal.to_string()),
        })
    }

    /// The event a row holds.
    pub fn into_event(self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: self.id,
            at: self.at,
            kind: parse("audit kind", &self.kind)?,
            user: self.user_name,
            session_id: self.session_id,
            source_ip: self
                .source_ip
                .map(|ip| parse("audit source_ip", &ip))
                .transpose()?,
            detail: self.detail,
            link: match (self.chain_id, self.chain_seq, self.seal) {
                (None, None, None) => None,
                (Some(chain_id), Some(seq), Some(seal)) => Some(AuditLink {
                    chain_id,
                    seq,
                    seal: parse_seal("audit seal", Some(seal))?
                        .ok_or_else(|| StoreError::corrupt("audit seal", "missing"))?,
                }),
                _ => {
                    return Err(StoreError::corrupt(
                        "audit chain_id/chain_seq/seal",
                        "partly null",
                    ));
                }
            },
        })
    }
}
