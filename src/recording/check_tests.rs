//! Tests of keyed verification on records built in memory (the attacks by
//! SQL are in `tests/`).

use bytes::Bytes;

use super::*;
use crate::recording::keys::SealKey;
use crate::recording::records::{AuditLink, EndReason, Event, EventKind, SessionEnd};
use crate::recording::seal::{seal_audit, seal_end, seal_start};
use crate::recording::{ChainWriter, now};

fn keys() -> SealKeys {
    SealKeys::from_keys(vec![SealKey::new("k1", [7; 32]).unwrap()]).unwrap()
}

/// A sealed, ended session of `n` chunks with its sealed audit events in
/// chain `chain` (seq 0 start, seq 1 end).
struct Sealed {
    s: SessionRecord,
    chunks: Vec<EventChunk>,
    audit: Vec<AuditEvent>,
    chain: Uuid,
}

fn audit_event(
    k: &SealKey,
    s: &SessionRecord,
    kind: AuditKind,
    detail: serde_json::Value,
    chain: Uuid,
    seq: i64,
) -> AuditEvent {
    let mut a = AuditEvent {
        id: Uuid::new_v4(),
        at: now(),
        kind,
        user: Some(s.user.clone()),
        session_id: Some(s.id),
        source_ip: Some(s.source_ip),
        detail: detail.to_string(),
        link: None,
    };
    a.link = Some(AuditLink {
        chain_id: chain,
        seq,
        seal: seal_audit(k, &a, chain, seq),
    });
    a
}

fn sealed(n: usize) -> Sealed {
    let keys = keys();
    let k = keys.signer();
    let mut s = crate::recording::op::tests::sample_session(Uuid::new_v4());
    s.start_seal = Some(seal_start(k, &s));
    let mut w = ChainWriter::sealed(s.id, k.clone());
    let chunks: Vec<EventChunk> = (0..n)
        .map(|i| {
            w.seal(
                now(),
                vec![Event {
                    offset_ms: i as u64,
                    kind: EventKind::Output,
                    data: Bytes::from(format!("out {i}")),
                }],
            )
        })
        .collect();
    let mut end = SessionEnd {
        ended_at: now(),
        reason: EndReason::TargetExited,
        exit_status: Some(3),
        bytes_in: 1,
        bytes_out: 2,
        chain_head: w.head(),
        chunk_count: Some(n as u64),
        seal: None,
        cause: None,
    };
    end.seal = Some(seal_end(k, s.id, &end));
    let chain = Uuid::new_v4();
    let audit = vec![
        audit_event(
            k,
            &s,
            AuditKind::SessionStart,
            serde_json::json!({"target": s.target_id, "kind": "shell"}),
            chain,
            0,
        ),
        audit_event(
            k,
            &s,
            AuditKind::SessionEnd,
            serde_json::json!({"reason": "target_exited", "exit_status": 3, "bytes_in": 1, "bytes_out": 2, "chunks": n}),
            chain,
            1,
        ),
    ];
    s.chain_head = end.chain_head;
    s.end = Some(SessionEnd {
        chain_head: None,
        ..end
    });
    Sealed {
        s,
        chunks,
        audit,
        chain,
    }
}

fn report(x: &Sealed) -> SessionReport {
    check_session(&keys(), &x.s, Ok(&x.chunks), &x.audit)
}

fn one_problem(x: &Sealed, want: &str) {
    let r = report(x);
    assert!(
        r.problems.iter().any(|p| p.contains(want)),
        "{want:?} not in {:?}",
        r.problems
    );
}

#[test]
fn an_untouched_session_is_intact() {
    let x = sealed(3);
    let r = report(&x);
    assert!(r.is_intact() && !r.unsealed && !r.live, "{r:?}");
    assert_eq!((r.chunks, r.events), (3, 3));
}

#[test]
fn edited_start_and_end_fields_are_named() {
    let mut x = sealed(2);
    x.s.justification = Some("nothing to see".into());
    one_problem(&x, "metadata MAC mismatch (start seal)");
    let mut x = sealed(2);
    x.s.target_id = "i-0other".into();
    one_problem(
        &x,
        "target_id is \"i-0other\" but the sealed session_start event says",
    );
    let mut x = sealed(2);
    if let Some(e) = x.s.end.as_mut() {
        e.exit_status = Some(0);
    }
    one_problem(&x, "metadata MAC mismatch (end seal)");
    one_problem(
        &x,
        "exit_status is 0 but the sealed session_end event says 3",
    );
}

#[test]
fn truncation_and_recomputed_chains_are_found() {
    // Tail chunks deleted, head and count left: the count tells.
    let mut x = sealed(5);
    x.chunks.truncate(3);
    one_problem(&x, "2 chunks missing after chunk 2 (the end seal says 5)");
    x.chunks.clear();
    one_problem(&x, "all 5 chunks missing");
    // Tail deleted and the head moved back: the end seal breaks.
    let mut x = sealed(5);
    x.chunks.truncate(3);
    x.s.chain_head = Some(x.chunks[2].hash);
    one_problem(&x, "metadata MAC mismatch (end seal)");
    one_problem(
        &x,
        "stored chunks is 3 but the sealed session_end event says 5",
    );
    // Content edited and the unkeyed chain recomputed from there on.
    let mut x = sealed(4);
    let mut w = ChainWriter::resume(&x.chunks[0]);
    let forged: Vec<EventChunk> = x.chunks[1..]
        .iter()
        .map(|c| {
            let mut f = w.seal(
                c.created_at,
                vec![Event {
                    offset_ms: 0,
                    kind: EventKind::Output,
                    data: Bytes::from_static(b"forged"),
                }],
            );
            f.seal = c.seal.clone();
            f
        })
        .collect();
    x.chunks.splice(1.., forged);
    x.s.chain_head = w.head();
    assert!(
        crate::recording::verify(&x.s, &x.chunks).is_ok(),
        "the unkeyed chain holds"
    );
    one_problem(
        &x,
        "chain broken at chunk 1: its hash does not match its seal",
    );
}

#[test]
fn removed_seals_and_ends_are_found() {
    let mut x = sealed(2);
    x.s.start_seal = None;
    one_problem(&x, "start seal missing (removed?)");
    let mut x = sealed(2);
    x.chunks[1].seal = None;
    one_problem(&x, "chain broken at chunk 1: seal missing");
    let mut x = sealed(2);
    x.s.end = None;
    one_problem(&x, "end removed: the sealed session_end audit event");
    let mut x = sealed(2);
    x.audit[0].detail = "{}".into();
    one_problem(&x, "session_start, chain");
}

#[test]
fn unsealed_sessions_are_reported_as_such() {
    let mut x = sealed(2);
    x.s.start_seal = None;
    if let Some(e) = x.s.end.as_mut() {
        e.seal = None;
    }
    for c in &mut x.chunks {
        c.seal = None;
    }
    x.audit.clear();
    let r = report(&x);
    assert!(r.is_intact() && r.unsealed, "{r:?}");
    // Only the unkeyed chain is checked then.
    x.chunks.pop();
    one_problem(&x, "chain head does not match the last chunk");
}

#[test]
fn audit_chains_show_gaps_repeats_edits_and_missing_sessions() {
    let x = sealed(1);
    let keys = keys();
    let k = keys.signer();
    let sessions: HashMap<Uuid, SessionRecord> = [(x.s.id, x.s.clone())].into();
    let mut rows = x.audit.clone();
    let closed = {
        let mut a = audit_event(
            k,
            &x.s,
            AuditKind::Admin,
            serde_json::json!({"action": CHAIN_CLOSED}),
            x.chain,
            2,
        );
        a.user = None;
        a.link = Some(AuditLink {
            chain_id: x.chain,
            seq: 2,
            seal: seal_audit(k, &a, x.chain, 2),
        });
        a
    };
    rows.push(closed);
    let r = check_audit_chain(&keys, x.chain, &rows, &sessions);
    assert!(r.is_intact() && r.closed, "{r:?}");
    assert_eq!((r.events, r.last_seq), (3, Some(2)));

    let problems = |rows: &[AuditEvent], sessions: &HashMap<Uuid, SessionRecord>| {
        check_audit_chain(&keys, x.chain, rows, sessions).problems
    };
    assert_eq!(problems(&rows[1..], &sessions), ["seq 0 missing"]);
    let mut gap = rows.clone();
    gap.remove(1);
    assert_eq!(problems(&gap, &sessions), ["seq 1 missing"]);
    let mut dup = rows.clone();
    dup.insert(1, rows[0].clone());
    assert_eq!(problems(&dup, &sessions), ["seq 0 appears more than once"]);
    let mut edited = rows.clone();
    edited[1].detail = r#"{"reason":"client_closed"}"#.into();
    let p = problems(&edited, &sessions);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("row seq 1 altered"), "{p:?}");
    let p = problems(&rows, &HashMap::new());
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains(&format!(
            "session {} referenced by audit seq 0 (session_start) is missing",
            x.s.id
        )),
        "{p:?}"
    );
    let open = check_audit_chain(&keys, x.chain, &rows[..2], &sessions);
    assert!(open.is_intact() && !open.closed);
}
