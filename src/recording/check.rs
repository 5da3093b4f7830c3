//! Keyed verification: recomputes a session's chunk chain and its seals
//! ([`super::chain`], [`super::seal`]) and an audit chain's seals and
//! numbering, and names every difference found. `ssmgate sessions verify`
//! prints these reports.
//!
//! A session is judged from its row, its chunks and the audit events that
//! name it:
//! - each chunk must link to the one before, hash to its stored hash, and
//!   carry a valid seal of that hash;
//! - the start seal must match the row's start fields; the end seal (once
//!   ended) the end fields, the chunk count and the chain head; then the
//!   stored chunks must be exactly the sealed count, ending at the head;
//! - its sealed audit events must match their seals; a sealed
//!   `session_end` event for a row that shows the session live means the
//!   end was removed;
//! - a session with no seal anywhere is *unsealed* (recorded before keyed
//!   sealing): only its unkeyed hash chain is checked. Seals missing from a
//!   session that has others are reported as removed.
//!
//! An audit chain must number its events 0, 1, 2, … without gaps or
//! repeats, every seal must match, and the sessions its `session_start`
//! and `session_end` events name must exist. Its last event is normally
//! the recorder's `audit_chain_closed`; a chain without one is *open*
//! (the gateway runs, or stopped abruptly, or — indistinguishable without
//! an outside record such as the gateway's log — its newest events were
//! deleted).

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::chain::{chunk_hash, genesis};
use super::keys::SealKeys;
use super::recorder::CHAIN_CLOSED;
use super::records::{AuditEvent, AuditKind, EventChunk, SessionRecord};
use super::seal::{Seal, SealCheck, audit_tag, check, chunk_tag, end_tag, start_tag};

/// What checking one session found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Evident tampering, one sentence each (empty when none).
    pub problems: Vec<String>,
    /// Ids of keys that made seals but are not in the key file.
    pub unknown_keys: BTreeSet<String>,
    /// Nothing about the session is sealed (recorded before sealing).
    pub unsealed: bool,
    /// The session has not ended (its end and last chunks are not sealed
    /// yet).
    pub live: bool,
    /// Chunks stored.
    pub chunks: usize,
    /// Events in them.
    pub events: usize,
}

impl SessionReport {
    /// True when nothing was found wrong and every seal could be checked.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty() && self.unknown_keys.is_empty()
    }
}

/// The chunks of a session as read, or the first one that could not be
/// read (its seq and why).
pub type ChunksRead<'a> = Result<&'a [EventChunk], (i64, String)>;

/// Tracks the seals met while checking one thing.
struct Seals<'k> {
    keys: &'k SealKeys,
    unknown: BTreeSet<String>,
}

impl Seals<'_> {
    /// Checks a seal; `Some(true)` valid, `Some(false)` mismatch, `None`
    /// when its key is unknown (recorded).
    fn valid(
        &mut self,
        seal: &Seal,
        tag: impl FnOnce(&super::keys::SealKey) -> [u8; 32],
    ) -> Option<bool> {
        match check(self.keys, seal, tag) {
            SealCheck::Valid => Some(true),
            SealCheck::Mismatch => Some(false),
            SealCheck::UnknownKey(id) => {
                self.unknown.insert(id);
                None
            }
        }
    }
}

/// Checks one session (see the module docs). `audit` is every audit event
/// naming it.
pub fn check_session(
    keys: &SealKeys,
    s: &SessionRecord,
    chunks: ChunksRead<'_>,
    audit: &[AuditEvent],
) -> SessionReport {
    let mut seals = Seals {
        keys,
        unknown: BTreeSet::new(),
    };
    let mut r = SessionReport {
        live: s.is_live(),
        ..SessionReport::default()
    };
    let chunks = match chunks {
        Ok(c) => c,
        Err((seq, why)) => {
            r.problems.push(format!(
                "chain broken at chunk {seq}: stored events are unreadable ({why})"
            ));
            &[]
        }
    };
    r.chunks = chunks.len();
    r.events = chunks.iter().map(|c| c.events.len()).sum();

    let sealed_audit: Vec<&AuditEvent> = audit.iter().filter(|a| a.link.is_some()).collect();
    let any_sealed = s.start_seal.is_some()
        || s.end.as_ref().is_some_and(|e| e.seal.is_some())
        || chunks.iter().any(|c| c.seal.is_some())
        || sealed_audit
            .iter()
            .any(|a| matches!(a.kind, AuditKind::SessionStart | AuditKind::SessionEnd));
    r.unsealed = !any_sealed;

    let intact_chain = check_chunks(&mut seals, s, chunks, any_sealed, &mut r.problems);

    // The audit events that name the session, each against its seal.
    let mut valid_audit: Vec<&AuditEvent> = Vec::new();
    for a in &sealed_audit {
        let Some(link) = &a.link else { continue };
        match seals.valid(&link.seal, |k| audit_tag(k, a, link.chain_id, link.seq)) {
            Some(true) => valid_audit.push(a),
            Some(false) => r.problems.push(format!(
                "audit event {} ({}, chain {} seq {}) altered: it does not match its seal",
                a.id, a.kind, link.chain_id, link.seq
            )),
            None => {}
        }
    }
    let audited = |kind: AuditKind| valid_audit.iter().copied().find(|a| a.kind == kind);

    if any_sealed {
        match &s.start_seal {
            None => r.problems.push(
                "start seal missing (removed?): other parts of the session are sealed".into(),
            ),
            Some(seal) => {
                if seals.valid(seal, |k| start_tag(k, s)) == Some(false) {
                    let mut why = "metadata MAC mismatch (start seal): a field known at the start \
                                   was edited (user, authentication, source, target, document, \
                                   parameters, reason, AWS reason, decision, policy ids, kind, \
                                   recording mode or start time)"
                        .to_owned();
                    if let Some(a) = audited(AuditKind::SessionStart) {
                        why.push_str(&start_hints(s, a));
                    }
                    r.problems.push(why);
                }
            }
        }
    }

    match &s.end {
        Some(end) => match &end.seal {
            None if any_sealed => r.problems.push(
                "end seal missing (removed?): the session ended but its end is not sealed".into(),
            ),
            None => {}
            Some(seal) => {
                let head = s.chain_head.as_ref();
                match seals.valid(seal, |k| end_tag(k, s.id, end, head)) {
                    Some(false) => {
                        let mut why = "metadata MAC mismatch (end seal): the end time, end \
                                       reason, exit status, byte counts, chunk count or chain \
                                       head was edited"
                            .to_owned();
                        if let Some(a) = audited(AuditKind::SessionEnd) {
                            why.push_str(&end_hints(s, chunks.len(), a));
                        }
                        r.problems.push(why);
                    }
                    Some(true) if intact_chain => {
                        check_count(end.chunk_count, s, chunks, &mut r.problems);
                    }
                    _ => {}
                }
            }
        },
        None => {
            if let Some(a) = audited(AuditKind::SessionEnd) {
                let link = a.link.as_ref().map_or(String::new(), |l| {
                    format!(" (audit chain {} seq {})", l.chain_id, l.seq)
                });
                r.problems.push(format!(
                    "end removed: the sealed session_end audit event{link} recorded its end, \
                     but the row shows the session live (if the gateway is writing it right \
                     now, check again)"
                ));
            }
        }
    }
    r.unknown_keys = seals.unknown;
    r
}

/// Checks the chunk chain and each chunk's seal; true when the chain
/// links, hashes and seals are all intact.
fn check_chunks(
    seals: &mut Seals<'_>,
    s: &SessionRecord,
    chunks: &[EventChunk],
    sealed: bool,
    problems: &mut Vec<String>,
) -> bool {
    let before = problems.len();
    let mut prev = genesis(s.id);
    let mut broken_later = 0usize;
    let mut report = |problems: &mut Vec<String>, text: String| {
        if problems.len() == before {
            problems.push(text);
        } else {
            broken_later += 1;
        }
    };
    for (expected, c) in (0i64..).zip(chunks) {
        if c.session_id != s.id {
            report(
                problems,
                format!(
                    "chain broken at chunk {}: it belongs to session {}",
                    c.seq, c.session_id
                ),
            );
            continue;
        }
        if c.seq > expected {
            let what = if c.seq - expected == 1 {
                format!("chunk {expected} is missing")
            } else {
                format!("chunks {expected}–{} are missing", c.seq - 1)
            };
            report(
                problems,
                format!("chain broken at chunk {expected}: {what}"),
            );
            break;
        }
        if c.seq < expected {
            report(
                problems,
                format!(
                    "chain broken at chunk {expected}: chunk {} appears out of order",
                    c.seq
                ),
            );
            break;
        }
        if c.prev_hash != prev {
            report(
                problems,
                format!(
                    "chain broken at chunk {}: previous hash does not link to the chunk before",
                    c.seq
                ),
            );
        }
        let hash = chunk_hash(&c.prev_hash, c.session_id, c.seq, c.created_at, &c.events);
        if hash != c.hash {
            report(
                problems,
                format!(
                    "chain broken at chunk {}: content does not match its hash (edited)",
                    c.seq
                ),
            );
        } else {
            match &c.seal {
                Some(seal) if seals.valid(seal, |k| chunk_tag(k, &c.hash)) == Some(false) => {
                    report(
                        problems,
                        format!(
                            "chain broken at chunk {}: its hash does not match its seal (edited, and the hashes recomputed)",
                            c.seq
                        ),
                    );
                }
                Some(_) => {}
                None if sealed => report(
                    problems,
                    format!("chain broken at chunk {}: seal missing (removed?)", c.seq),
                ),
                None => {}
            }
        }
        prev = c.hash;
    }
    if broken_later > 0 {
        let s = if broken_later == 1 { "" } else { "s" };
        problems.push(format!(
            "and {broken_later} more problem{s} with later chunks"
        ));
    }
    if problems.len() > before {
        return false;
    }
    if !sealed {
        // Unsealed: only the unkeyed head on the row can tell deletions.
        let last = chunks.last().map(|c| c.hash);
        if s.chain_head != last {
            problems.push(format!(
                "chain head does not match the last chunk ({} stored): chunks deleted from the end, or the head edited",
                chunks.len()
            ));
            return false;
        }
    }
    true
}

/// With a valid end seal: the stored chunks must be the sealed count and
/// end at the sealed head.
fn check_count(
    sealed_count: Option<u64>,
    s: &SessionRecord,
    chunks: &[EventChunk],
    problems: &mut Vec<String>,
) {
    let stored = chunks.len() as u64;
    match sealed_count {
        Some(n) if stored < n => {
            let missing = n - stored;
            problems.push(if stored == 0 {
                format!("all {n} chunks missing (the end seal says {n})")
            } else {
                format!(
                    "{missing} chunk{} missing after chunk {} (the end seal says {n})",
                    if missing == 1 { "" } else { "s" },
                    stored - 1
                )
            });
        }
        Some(n) if stored > n => problems.push(format!(
            "{} chunk{} stored after the sealed end (the end seal says {n})",
            stored - n,
            if stored - n == 1 { "" } else { "s" }
        )),
        _ => {
            if s.chain_head != chunks.last().map(|c| c.hash) {
                problems.push(
                    "chain head does not match the last chunk although the end seal holds".into(),
                );
            }
        }
    }
}

/// Field-level hints from a sealed `session_start` audit event.
fn start_hints(s: &SessionRecord, a: &AuditEvent) -> String {
    let Ok(d) = serde_json::from_str::<serde_json::Value>(&a.detail) else {
        return String::new();
    };
    let mut diffs = Vec::new();
    let mut cmp = |field: &str, row: serde_json::Value, key: &str| {
        if let Some(sealed) = d.get(key)
            && *sealed != row
        {
            diffs.push(format!(
                "{field} is {row} but the sealed session_start event says {sealed}"
            ));
        }
    };
    cmp("target_id", s.target_id.clone().into(), "target");
    cmp("kind", s.kind.as_str().into(), "kind");
    cmp(
        "ssm_session_id",
        s.ssm_session_id.clone().into(),
        "ssm_session_id",
    );
    cmp("document", s.document.clone().into(), "document");
    if let Some(user) = &a.user
        && *user != s.user
    {
        diffs.push(format!(
            "user is {:?} but the sealed session_start event says {user:?}",
            s.user
        ));
    }
    hints(diffs)
}

/// Field-level hints from a sealed `session_end` audit event.
fn end_hints(s: &SessionRecord, stored_chunks: usize, a: &AuditEvent) -> String {
    let (Some(end), Ok(d)) = (&s.end, serde_json::from_str::<serde_json::Value>(&a.detail)) else {
        return String::new();
    };
    let mut diffs = Vec::new();
    let mut cmp = |field: &str, row: serde_json::Value, key: &str| {
        if let Some(sealed) = d.get(key)
            && *sealed != row
        {
            diffs.push(format!(
                "{field} is {row} but the sealed session_end event says {sealed}"
            ));
        }
    };
    cmp("end_reason", end.reason.as_str().into(), "reason");
    cmp("exit_status", end.exit_status.into(), "exit_status");
    cmp("bytes_in", end.bytes_in.into(), "bytes_in");
    cmp("bytes_out", end.bytes_out.into(), "bytes_out");
    cmp("chunk_count", end.chunk_count.into(), "chunks");
    cmp("stored chunks", (stored_chunks as u64).into(), "chunks");
    hints(diffs)
}

fn hints(diffs: Vec<String>) -> String {
    if diffs.is_empty() {
        String::new()
    } else {
        format!("; {}", diffs.join("; "))
    }
}

/// What checking one audit chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// The chain.
    pub chain_id: Uuid,
    /// Evident tampering, one sentence each.
    pub problems: Vec<String>,
    /// Ids of keys that made seals but are not in the key file.
    pub unknown_keys: BTreeSet<String>,
    /// Events stored.
    pub events: usize,
    /// The highest sequence number stored.
    pub last_seq: Option<i64>,
    /// The recorder closed the chain (its `audit_chain_closed` event is
    /// there and intact).
    pub closed: bool,
}

impl ChainReport {
    /// True when nothing was found wrong and every seal could be checked.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty() && self.unknown_keys.is_empty()
    }
}

/// Checks one audit chain's events (`rows`, in sequence order) against
/// the sessions that exist.
pub fn check_audit_chain(
    keys: &SealKeys,
    chain_id: Uuid,
    rows: &[AuditEvent],
    sessions: &HashMap<Uuid, SessionRecord>,
) -> ChainReport {
    let mut seals = Seals {
        keys,
        unknown: BTreeSet::new(),
    };
    let mut r = ChainReport {
        chain_id,
        events: rows.len(),
        ..ChainReport::default()
    };
    let mut expected = 0i64;
    for a in rows {
        let Some(link) = a.link.as_ref().filter(|l| l.chain_id == chain_id) else {
            r.problems
                .push(format!("audit event {} is not in this chain", a.id));
            continue;
        };
        let seq = link.seq;
        if seq > expected {
            r.problems.push(if seq - expected == 1 {
                format!("seq {expected} missing")
            } else {
                format!("seq {expected}–{} missing", seq - 1)
            });
        } else if seq < expected {
            r.problems.push(format!("seq {seq} appears more than once"));
        }
        expected = expected.max(seq.saturating_add(1));
        r.last_seq = Some(r.last_seq.map_or(seq, |l| l.max(seq)));
        match seals.valid(&link.seal, |k| audit_tag(k, a, chain_id, seq)) {
            Some(false) => {
                r.problems.push(format!(
                    "row seq {seq} altered (audit event {}, {}): it does not match its seal",
                    a.id, a.kind
                ));
                continue;
            }
            None => continue,
            Some(true) => {}
        }
        if matches!(a.kind, AuditKind::SessionStart | AuditKind::SessionEnd)
            && let Some(sid) = a.session_id
            && !sessions.contains_key(&sid)
        {
            r.problems.push(format!(
                "session {sid} referenced by audit seq {seq} ({}) is missing",
                a.kind
            ));
        }
        r.closed = a.kind == AuditKind::Admin
            && serde_json::from_str::<serde_json::Value>(&a.detail)
                .is_ok_and(|d| d.get("action").and_then(|v| v.as_str()) == Some(CHAIN_CLOSED));
    }
    r.unknown_keys = seals.unknown;
    r
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
