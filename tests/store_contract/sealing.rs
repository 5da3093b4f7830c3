//! The sealing part of the store contract, run on both backends: seals and
//! audit chains are stored and read back as written; tampering by SQL with
//! a sealed session or an audit chain is found by the keyed check; gateway
//! replicas sharing the database keep separate, intact audit chains.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use ssmgate::recording::seal::{seal_audit, seal_end, seal_start};
use ssmgate::recording::{
    AuditEvent, AuditKind, AuditLink, Recorder, RecorderOptions, SealKeys, SessionFilter,
    SessionRecord, SessionReport, Store, check_audit_chain, check_session,
};
use uuid::Uuid;

use super::fixtures::*;

fn keys() -> SealKeys {
    SealKeys::from_keys(vec![key()]).unwrap()
}

fn link(mut e: AuditEvent, chain: Uuid, seq: i64) -> AuditEvent {
    e.link = Some(AuditLink {
        chain_id: chain,
        seq,
        seal: seal_audit(&key(), &e, chain, seq),
    });
    e
}

/// A sealed, ended session of 4 chunks and its audit chain (seq 0 start,
/// seq 1 end); returns the session and the chain id.
async fn sealed_session(store: &dyn Store) -> (SessionRecord, Uuid) {
    let mut s = full_session("alice", "i-0seal", t0());
    s.start_seal = Some(seal_start(&key(), &s));
    store.insert_session(&s).await.unwrap();
    let (chunks, head) = chain(&s, 4);
    store.append_chunks(&chunks).await.unwrap();
    let mut e = end(s.started_at + Duration::minutes(1), head);
    e.chunk_count = Some(4);
    e.seal = Some(seal_end(&key(), s.id, &e));
    store.finish_session(s.id, &e).await.unwrap();
    let chain_id = Uuid::new_v4();
    let start = audit(
        AuditKind::SessionStart,
        Some(s.id),
        s.started_at,
        r#"{"target":"i-0seal"}"#,
    );
    let done = audit(
        AuditKind::SessionEnd,
        Some(s.id),
        s.started_at,
        r#"{"chunks":4}"#,
    );
    store.insert_audit(&link(start, chain_id, 0)).await.unwrap();
    store.insert_audit(&link(done, chain_id, 1)).await.unwrap();
    (s, chain_id)
}

async fn report(store: &dyn Store, id: Uuid) -> SessionReport {
    let s = store.get_session(id).await.unwrap().unwrap();
    let chunks = store.chunks(id).await.unwrap();
    let audit = store.audit_for_session(id).await.unwrap();
    check_session(&keys(), &s, Ok(&chunks), &audit)
}

async fn chain_problems(store: &dyn Store, chain: Uuid) -> Vec<String> {
    let sessions: HashMap<Uuid, SessionRecord> = store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let rows = store.audit_chain(chain).await.unwrap();
    check_audit_chain(&keys(), chain, &rows, &sessions).problems
}

fn has(problems: &[String], want: &str) {
    assert!(
        problems.iter().any(|p| p.contains(want)),
        "{want:?} not in {problems:?}"
    );
}

/// Seals and audit links come back exactly as stored; chains are listed in
/// the order they started and read in sequence order.
pub async fn seals_and_audit_chains_round_trip(db: &Db) {
    let store = db.store().await;
    let (s, first) = sealed_session(store.as_ref()).await;
    let stored = store.get_session(s.id).await.unwrap().unwrap();
    assert_eq!(stored.start_seal, s.start_seal);
    let end = stored.end.as_ref().unwrap();
    assert_eq!(end.chunk_count, Some(4));
    assert!(end.seal.is_some());
    assert!(
        store
            .chunks(s.id)
            .await
            .unwrap()
            .iter()
            .all(|c| c.seal.is_some())
    );
    assert!(report(store.as_ref(), s.id).await.is_intact());

    // A second chain, its rows inserted out of order, plus unchained rows.
    let second = Uuid::new_v4();
    let rows: Vec<AuditEvent> = (0..5)
        .map(|i| {
            link(
                audit(AuditKind::Admin, None, t0(), &format!(r#"{{"i":{i}}}"#)),
                second,
                i,
            )
        })
        .collect();
    for i in [3, 0, 4, 1, 2] {
        store.insert_audit(&rows[i]).await.unwrap();
    }
    store.insert_audit(&rows[2]).await.unwrap();
    store
        .insert_audit(&audit(AuditKind::Admin, None, t0(), "{}"))
        .await
        .unwrap();
    assert_eq!(store.audit_chain_ids().await.unwrap(), [first, second]);
    assert_eq!(store.audit_chain(second).await.unwrap(), rows);
    assert_eq!(store.audit_chain(Uuid::new_v4()).await.unwrap(), vec![]);
    assert_eq!(store.unchained_audit_count().await.unwrap(), 1);
    assert!(chain_problems(store.as_ref(), second).await.is_empty());
    let for_session = store.audit_for_session(s.id).await.unwrap();
    assert!(
        for_session
            .iter()
            .all(|a| a.link.as_ref().is_some_and(|l| l.chain_id == first))
    );
}

/// Edits by SQL to a sealed session and to its audit chain are found.
pub async fn keyed_tampering_detected(db: &Db) {
    let store = db.store().await;
    let (s, _) = sealed_session(store.as_ref()).await;
    let id = s.id;
    let edit = async |sql: &str| {
        assert_eq!(db.exec(sql, id).await, 1, "{sql}");
        report(store.as_ref(), id).await.problems
    };
    has(
        &edit("UPDATE sessions SET justification = 'routine' WHERE id = ?1").await,
        "(start seal)",
    );
    let original = "UPDATE sessions SET justification = 'INC-1234: disk full on web-1; it''s urgent' WHERE id = ?1";
    assert_eq!(db.exec(original, id).await, 1);
    assert!(report(store.as_ref(), id).await.is_intact(), "restored");
    has(
        &edit("UPDATE sessions SET policy_ids = '[]' WHERE id = ?1").await,
        "(start seal)",
    );

    let (s, chain_id) = sealed_session(store.as_ref()).await;
    let id = s.id;
    let edit = async |sql: &str| {
        assert_eq!(db.exec(sql, id).await, 1, "{sql}");
        report(store.as_ref(), id).await.problems
    };
    has(
        &edit("UPDATE sessions SET bytes_out = 1 WHERE id = ?1").await,
        "(end seal)",
    );
    db.exec(
        "UPDATE sessions SET bytes_out = 9223372036854775807 WHERE id = ?1",
        id,
    )
    .await;
    assert!(report(store.as_ref(), id).await.is_intact(), "restored");
    has(
        &edit("DELETE FROM session_chunks WHERE session_id = ?1 AND seq = 3").await,
        "1 chunk missing after chunk 2",
    );
    // The session deleted: its sealed audit events name it.
    db.exec("DELETE FROM session_chunks WHERE session_id = ?1", id)
        .await;
    db.exec("DELETE FROM sessions WHERE id = ?1", id).await;
    let problems = chain_problems(store.as_ref(), chain_id).await;
    has(
        &problems,
        &format!("session {id} referenced by audit seq 0 (session_start) is missing"),
    );
    has(
        &problems,
        &format!("session {id} referenced by audit seq 1 (session_end) is missing"),
    );
    // An audit row edited, then one deleted.
    let n = db
        .exec("UPDATE audit_events SET detail = '{\"chunks\":3}' WHERE session_id = ?1 AND chain_seq = 1", id)
        .await;
    assert_eq!(n, 1);
    has(
        &chain_problems(store.as_ref(), chain_id).await,
        "row seq 1 altered",
    );
    db.exec(
        "DELETE FROM audit_events WHERE session_id = ?1 AND chain_seq = 0",
        id,
    )
    .await;
    has(
        &chain_problems(store.as_ref(), chain_id).await,
        "seq 0 missing",
    );
}

/// Replicas (recorders with their own spools, one key file) writing audit
/// events at once each keep their own chain; all chains verify.
pub async fn replicas_keep_separate_audit_chains(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut recorders = Vec::new();
    for r in 0..3 {
        let store = db.store().await;
        let mut options = RecorderOptions::new(dir.path().join(format!("spool-{r}")));
        options.key_file = dir.path().join("recording.key");
        recorders.push(Recorder::start(store, options).await.unwrap());
    }
    let tasks: Vec<_> = recorders
        .iter()
        .flat_map(|rec| {
            (0..4).map(move |t| {
                let rec = rec.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        rec.audit(
                            AuditKind::Admin,
                            None,
                            None,
                            None,
                            serde_json::json!({"t": t, "i": i}),
                        )
                        .await;
                    }
                })
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for rec in &recorders {
        rec.close().await;
    }
    let store: Arc<dyn Store> = db.store().await;
    let keys = SealKeys::load(&dir.path().join("recording.key")).unwrap();
    let ids = store.audit_chain_ids().await.unwrap();
    assert_eq!(ids.len(), 3);
    for (id, rec) in ids.iter().zip(&recorders) {
        assert!(ids.contains(&rec.audit_chain_id()));
        let rows = store.audit_chain(*id).await.unwrap();
        let r = check_audit_chain(&keys, *id, &rows, &HashMap::new());
        assert!(r.is_intact() && r.closed, "{r:?}");
        assert_eq!((r.events, r.last_seq), (41, Some(40)));
    }
}
