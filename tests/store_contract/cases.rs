//! The store contract: what every [`Store`] must do, written once against
//! `Arc<dyn Store>` and run on each backend by `store_contract.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use ssmgate::recording::codec::{decode_events, encode_events};
use ssmgate::recording::store::Write;
use ssmgate::recording::{
    AuditKind, EndReason, EventKind, LinkError, SessionFilter, SessionRecord, Store, StoreError,
    verify,
};
use uuid::Uuid;

use super::fixtures::*;

/// Insert, read back, finish, read back: every field survives.
pub async fn round_trip(db: &Db) {
    let store = db.store().await;
    store.ping().await.unwrap();
    let start = t0();
    let full = full_session("alice", "i-0aaa", start);
    let bare = bare_session("bob", "i-0bbb", start + Duration::seconds(1));
    store.insert_session(&full).await.unwrap();
    store.insert_session(&bare).await.unwrap();
    assert_eq!(
        store.get_session(full.id).await.unwrap().as_ref(),
        Some(&full)
    );
    assert_eq!(
        store.get_session(bare.id).await.unwrap().as_ref(),
        Some(&bare)
    );
    assert_eq!(store.get_session(Uuid::new_v4()).await.unwrap(), None);
    assert!(store.get_session(full.id).await.unwrap().unwrap().is_live());

    // Inserting again is a no-op; different content is a conflict.
    store.insert_session(&full).await.unwrap();
    let mut changed = full.clone();
    changed.justification = Some("something else".into());
    assert!(matches!(
        store.insert_session(&changed).await,
        Err(StoreError::SessionConflict(id)) if id == full.id
    ));

    let head = [0xab; 32];
    let e = end(start + Duration::minutes(5), Some(head));
    store.finish_session(full.id, &e).await.unwrap();
    let mut expected = full.clone();
    expected.end = Some(ssmgate::recording::SessionEnd {
        chain_head: None,
        ..e.clone()
    });
    expected.chain_head = Some(head);
    let got = store.get_session(full.id).await.unwrap().unwrap();
    assert_eq!(got, expected);
    assert!(!got.is_live());
    // Repeating the finish is harmless; a finish without head keeps it.
    let e2 = ssmgate::recording::SessionEnd {
        chain_head: None,
        reason: EndReason::TimedOut,
        exit_status: None,
        ..e
    };
    store.finish_session(full.id, &e2).await.unwrap();
    let got = store.get_session(full.id).await.unwrap().unwrap();
    assert_eq!(got.chain_head, Some(head));
    assert_eq!(
        got.end.as_ref().map(|e| e.reason),
        Some(EndReason::TimedOut)
    );
    assert_eq!(got.end.as_ref().and_then(|e| e.exit_status), None);
    // A repeated insert after the finish still matches its start.
    store.insert_session(&full).await.unwrap();

    assert!(matches!(
        store.finish_session(Uuid::new_v4(), &e2).await,
        Err(StoreError::SessionNotFound(_))
    ));

    // Bad values are refused with a clear error, and nothing is stored.
    let mut bad = bare_session("carol", "i-0ccc", start);
    bad.parameters = Some("{not json".into());
    let err = store.insert_session(&bad).await.unwrap_err();
    assert!(err.to_string().contains("parameters"), "{err}");
    assert_eq!(store.get_session(bad.id).await.unwrap(), None);
}

/// Filters by user, target (id or name), start time, liveness, limit.
pub async fn list_filters(db: &Db) {
    let store = db.store().await;
    let start = t0();
    let mut all: Vec<SessionRecord> = Vec::new();
    for (i, (user, target)) in [
        ("alice", "i-01"),
        ("alice", "i-02"),
        ("bob", "i-01"),
        ("bob", "i-03"),
        ("carol", "i-02"),
    ]
    .into_iter()
    .enumerate()
    {
        let s = full_session(user, target, start + Duration::minutes(i as i64));
        store.insert_session(&s).await.unwrap();
        all.push(s);
    }
    // Sessions 0 and 3 have ended.
    for i in [0, 3] {
        let e = end(start + Duration::minutes(30), None);
        store.finish_session(all[i].id, &e).await.unwrap();
    }
    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let pick = |idx: &[usize]| idx.iter().map(|&i| all[i].id).collect::<Vec<_>>();
    let list = |f: SessionFilter| {
        let store = Arc::clone(&store);
        async move { ids(store.list_sessions(&f).await.unwrap()) }
    };

    // Newest first.
    assert_eq!(list(SessionFilter::default()).await, pick(&[4, 3, 2, 1, 0]));
    let user = |u: &str| SessionFilter {
        user: Some(u.into()),
        ..Default::default()
    };
    assert_eq!(list(user("alice")).await, pick(&[1, 0]));
    assert_eq!(list(user("nobody")).await, pick(&[]));
    let target = |t: &str| SessionFilter {
        target: Some(t.into()),
        ..Default::default()
    };
    assert_eq!(list(target("i-01")).await, pick(&[2, 0]));
    assert_eq!(list(target("name-of-i-02")).await, pick(&[4, 1]));
    let since = SessionFilter {
        since: Some(start + Duration::minutes(2)),
        ..Default::default()
    };
    assert_eq!(list(since).await, pick(&[4, 3, 2]));
    let live = SessionFilter {
        live_only: true,
        ..Default::default()
    };
    assert_eq!(list(live).await, pick(&[4, 2, 1]));
    let limited = SessionFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(list(limited).await, pick(&[4, 3]));
    let combined = SessionFilter {
        user: Some("bob".into()),
        target: Some("i-01".into()),
        since: Some(start),
        live_only: true,
        limit: Some(10),
    };
    assert_eq!(list(combined).await, pick(&[2]));
    // Listed records are complete.
    let listed = store.list_sessions(&user("carol")).await.unwrap();
    assert_eq!(listed, vec![all[4].clone()]);
}

/// Chunks come back in seq order whatever the append order; appends are
/// idempotent; the head follows the latest chunk.
pub async fn chunks_order_and_idempotency(db: &Db) {
    let store = db.store().await;
    let mut s = full_session("alice", "i-01", t0());
    store.insert_session(&s).await.unwrap();
    let (chunks, head) = chain(&s, 6);

    assert_eq!(store.chunks(s.id).await.unwrap(), vec![]);
    for i in [0, 2, 1, 5, 3, 4] {
        store.append_chunk(&chunks[i]).await.unwrap();
    }
    // Again, as a spool replay would.
    for c in &chunks {
        store.append_chunk(c).await.unwrap();
    }
    let got = store.chunks(s.id).await.unwrap();
    assert_eq!(got, chunks);
    let stored = store.get_session(s.id).await.unwrap().unwrap();
    assert_eq!(stored.chain_head, head, "head is the latest chunk's hash");
    assert_eq!(stored.end, None);
    s.chain_head = head;
    verify(&stored, &got).unwrap();

    // Another chunk under a stored seq is refused.
    let mut forged = chunks[2].clone();
    forged.events[1].data = bytes::Bytes::from_static(b"forged");
    forged.hash = [9; 32];
    assert!(matches!(
        store.append_chunk(&forged).await,
        Err(StoreError::ChunkConflict { seq: 2, session_id }) if session_id == s.id
    ));
    assert_eq!(store.chunks(s.id).await.unwrap(), chunks);

    // A chunk for an unknown session is refused.
    let ghost = full_session("ghost", "i-09", t0());
    let (ghost_chunks, _) = chain(&ghost, 1);
    assert!(matches!(
        store.append_chunk(&ghost_chunks[0]).await,
        Err(StoreError::SessionNotFound(id)) if id == ghost.id
    ));
    assert_eq!(store.chunks(ghost.id).await.unwrap(), vec![]);

    // A large chunk (64 KiB of output) survives intact.
    let mut big = ssmgate::recording::ChainWriter::resume(&chunks[5]);
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
    let chunk = big.seal(
        ssmgate::recording::now(),
        vec![ssmgate::recording::Event {
            offset_ms: 99_000,
            kind: EventKind::Output,
            data: data.into(),
        }],
    );
    store.append_chunk(&chunk).await.unwrap();
    let got = store.chunks(s.id).await.unwrap();
    assert_eq!(got.last(), Some(&chunk));
    let stored = store.get_session(s.id).await.unwrap().unwrap();
    verify(&stored, &got).unwrap();
}

/// Audit events: stored and read back per session, in time order.
pub async fn audit_events(db: &Db) {
    let store = db.store().await;
    let start = t0();
    let s = full_session("alice", "i-01", start);
    let other = Uuid::new_v4();
    let kinds = [
        AuditKind::AuthSuccess,
        AuditKind::DecisionAllow,
        AuditKind::SessionStart,
        AuditKind::SessionEnd,
    ];
    let mut expected = Vec::new();
    // Inserted in reverse time order; read back in time order.
    for (i, kind) in kinds.iter().enumerate().rev() {
        let mut e = audit(
            *kind,
            Some(s.id),
            start + Duration::seconds(i as i64),
            &format!(r#"{{"step":{i},"note":"ünïcode \"q\""}}"#),
        );
        if i == 0 {
            e.source_ip = None;
            e.user = None;
        }
        store.insert_audit(&e).await.unwrap();
        expected.insert(0, e);
    }
    // Same time: insertion order.
    let tie_a = audit(
        AuditKind::Admin,
        Some(s.id),
        start + Duration::seconds(9),
        "{}",
    );
    let tie_b = audit(
        AuditKind::PolicyReload,
        Some(s.id),
        start + Duration::seconds(9),
        "[]",
    );
    store.insert_audit(&tie_a).await.unwrap();
    store.insert_audit(&tie_b).await.unwrap();
    expected.extend([tie_a.clone(), tie_b]);
    // Idempotent on id.
    store.insert_audit(&tie_a).await.unwrap();
    // Events not about this session.
    store
        .insert_audit(&audit(
            AuditKind::AuthFailure,
            None,
            start,
            r#"{"reason":"unknown user"}"#,
        ))
        .await
        .unwrap();
    store
        .insert_audit(&audit(AuditKind::DecisionDeny, Some(other), start, "{}"))
        .await
        .unwrap();

    assert_eq!(store.audit_for_session(s.id).await.unwrap(), expected);
    assert_eq!(store.audit_for_session(other).await.unwrap().len(), 1);
    assert_eq!(
        store.audit_for_session(Uuid::new_v4()).await.unwrap(),
        vec![]
    );

    let bad = audit(AuditKind::Admin, Some(s.id), start, "not json");
    let err = store.insert_audit(&bad).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { what: "detail", .. }),
        "{err}"
    );
}

/// A recorded session read back verifies; tampering through SQL is found
/// at the right chunk.
pub async fn tampering_detected(db: &Db) {
    let store = db.store().await;
    let s = full_session("alice", "i-01", t0());
    store.insert_session(&s).await.unwrap();
    let (chunks, head) = chain(&s, 5);
    for c in &chunks {
        store.append_chunk(c).await.unwrap();
    }
    store
        .finish_session(s.id, &end(s.started_at + Duration::minutes(1), head))
        .await
        .unwrap();
    let read = |store: Arc<dyn Store>, id| async move {
        let s = store.get_session(id).await.unwrap().unwrap();
        let c = store.chunks(id).await.unwrap();
        (s, c)
    };
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    verify(&stored, &got).unwrap();

    // Edit one event's data in chunk 3 (still a valid encoding).
    let original = db.events_bytes(s.id, 3).await;
    let mut events = decode_events(&original).unwrap();
    events[2].data = bytes::Bytes::from_static(b"rm -rf /\r");
    db.set_events_bytes(s.id, 3, &encode_events(&events)).await;
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    let broken = verify(&stored, &got).unwrap_err();
    assert_eq!((broken.seq, broken.why), (3, LinkError::HashMismatch));

    // Flip one byte of the typed command in the raw column instead.
    let mut flipped = original.clone();
    let at = original
        .windows(6)
        .position(|w| w == b"echo 3")
        .expect("command bytes in the column");
    flipped[at + 5] = b'4';
    db.set_events_bytes(s.id, 3, &flipped).await;
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    assert_eq!(verify(&stored, &got).unwrap_err().seq, 3);

    // Garbage that does not decode names the chunk.
    db.set_events_bytes(s.id, 3, b"\x01\x09garbage").await;
    let err = store.chunks(s.id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::CorruptChunk { seq: 3, session_id, .. } if *session_id == s.id),
        "{err}"
    );

    // Restored, it verifies again.
    db.set_events_bytes(s.id, 3, &original).await;
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    verify(&stored, &got).unwrap();

    // Deleting a chunk in the middle, then the last one.
    db.delete_chunk(s.id, 1).await;
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    let broken = verify(&stored, &got).unwrap_err();
    assert_eq!(
        (broken.seq, broken.why),
        (1, LinkError::Missing { found: 2 })
    );
    store.append_chunk(&chunks[1]).await.unwrap();
    db.delete_chunk(s.id, 4).await;
    let (stored, got) = read(Arc::clone(&store), s.id).await;
    let broken = verify(&stored, &got).unwrap_err();
    assert_eq!((broken.seq, broken.why), (4, LinkError::HeadMismatch));
}

/// Several replicas (pools), each with several tasks, append to different
/// sessions at once; everything lands and every chain verifies.
pub async fn concurrent_writers(db: &Db) {
    const REPLICAS: usize = 3;
    const TASKS: usize = 4;
    const CHUNKS: u64 = 15;
    let stores: Vec<Arc<dyn Store>> = if db.backend == Backend::Postgres {
        // Replicas starting together on a fresh database: the migrations
        // must apply exactly once (sqlx's advisory lock).
        futures_util::future::join_all((0..REPLICAS).map(|_| db.store())).await
    } else {
        let mut v = Vec::new();
        for _ in 0..REPLICAS {
            v.push(db.store().await);
        }
        v
    };
    let mut handles = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..TASKS {
            let store = Arc::clone(store);
            handles.push(tokio::spawn(async move {
                let s = full_session(&format!("user{r}"), &format!("i-{t:02}"), t0());
                store.insert_session(&s).await.unwrap();
                let (chunks, head) = chain(&s, CHUNKS);
                for c in &chunks {
                    store.append_chunk(c).await.unwrap();
                    tokio::task::yield_now().await;
                }
                store
                    .insert_audit(&audit(
                        AuditKind::SessionEnd,
                        Some(s.id),
                        s.started_at,
                        "{}",
                    ))
                    .await
                    .unwrap();
                store
                    .finish_session(s.id, &end(ssmgate::recording::now(), head))
                    .await
                    .unwrap();
                (s.id, chunks)
            }));
        }
    }
    let mut written = Vec::new();
    for h in handles {
        written.push(h.await.expect("writer task"));
    }
    // Read back through a fresh pool.
    let reader = db.store().await;
    let all = reader
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    let listed: BTreeSet<Uuid> = all.iter().map(|s| s.id).collect();
    assert_eq!(listed.len(), REPLICAS * TASKS);
    for (id, chunks) in written {
        assert!(listed.contains(&id));
        let s = reader.get_session(id).await.unwrap().unwrap();
        let got = reader.chunks(id).await.unwrap();
        assert_eq!(got, chunks);
        verify(&s, &got).unwrap();
        assert_eq!(reader.audit_for_session(id).await.unwrap().len(), 1);
    }
}

/// Connecting again to a migrated database is fine and sees the data.
pub async fn reconnect_keeps_data(db: &Db) {
    let store = db.store().await;
    let s = bare_session("alice", "i-01", t0());
    store.insert_session(&s).await.unwrap();
    store.migrate().await.unwrap();
    drop(store);
    let again = db.store().await;
    assert_eq!(again.get_session(s.id).await.unwrap(), Some(s));
}

/// Chunks written as a batch land together, or not at all.
pub async fn chunk_batches_are_all_or_nothing(db: &Db) {
    let store = db.store().await;
    let a = full_session("alice", "i-01", t0());
    let b = full_session("bob", "i-02", t0());
    store.insert_session(&a).await.unwrap();
    store.insert_session(&b).await.unwrap();
    let (ca, head_a) = chain(&a, 4);
    let (cb, head_b) = chain(&b, 2);
    // Two sessions interleaved in one batch, as the writer gathers them.
    let batch = vec![
        ca[0].clone(),
        cb[0].clone(),
        ca[1].clone(),
        ca[2].clone(),
        cb[1].clone(),
    ];
    store.append_chunks(&batch).await.unwrap();
    // Replaying the same batch (a spool replay) is a no-op.
    store.append_chunks(&batch).await.unwrap();
    let stored_b = store.get_session(b.id).await.unwrap().unwrap();
    assert_eq!(stored_b.chain_head, head_b);
    verify(&stored_b, &store.chunks(b.id).await.unwrap()).unwrap();

    // A batch with a conflicting chunk is refused whole: chunk 3 of alice
    // is not stored although it came before the conflict.
    let mut forged = ca[1].clone();
    forged.hash = [7; 32];
    let err = store
        .append_chunks(&[ca[3].clone(), forged])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ChunkConflict { seq: 1, .. }),
        "{err}"
    );
    assert_eq!(store.chunks(a.id).await.unwrap(), ca[..3].to_vec());
    store.append_chunks(&ca[3..]).await.unwrap();
    let stored_a = store.get_session(a.id).await.unwrap().unwrap();
    assert_eq!(stored_a.chain_head, head_a);
    verify(&stored_a, &store.chunks(a.id).await.unwrap()).unwrap();
}

/// Mixed writes in one transaction, as the writer gathers them when many
/// sessions open and close at once: applied in order (a chunk right after
/// its session's row, the end after both), replayable, and all or nothing
/// when one of them is refused.
pub async fn mixed_batches_are_all_or_nothing(db: &Db) {
    let store = db.store().await;
    let a = full_session("alice", "i-01", t0());
    let b = full_session("bob", "i-02", t0());
    let (ca, head_a) = chain(&a, 2);
    let end_a = end(t0() + Duration::seconds(5), head_a);
    let audit_a = audit(AuditKind::SessionStart, Some(a.id), t0(), "{}");
    let batch = [
        Write::Session(&a),
        Write::Audit(&audit_a),
        Write::Chunk(&ca[0]),
        Write::Session(&b),
        Write::Chunk(&ca[1]),
        Write::Finish(a.id, &end_a),
    ];
    store.write(&batch).await.unwrap();
    // A spool replay of the same writes changes nothing.
    store.write(&batch).await.unwrap();
    let stored_a = store.get_session(a.id).await.unwrap().unwrap();
    assert_eq!(stored_a.chain_head, head_a);
    assert!(stored_a.end.is_some());
    verify(&stored_a, &store.chunks(a.id).await.unwrap()).unwrap();
    assert_eq!(store.audit_for_session(a.id).await.unwrap(), vec![audit_a]);
    assert!(
        store
            .get_session(b.id)
            .await
            .unwrap()
            .unwrap()
            .end
            .is_none()
    );

    // The end of an unknown session is refused, and the session row and
    // audit event written before it in the same batch are not stored.
    let c = full_session("carol", "i-03", t0());
    let audit_c = audit(AuditKind::SessionStart, Some(c.id), t0(), "{}");
    let stray = Uuid::new_v4();
    let err = store
        .write(&[
            Write::Session(&c),
            Write::Audit(&audit_c),
            Write::Finish(stray, &end_a),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SessionNotFound(id) if id == stray),
        "{err}"
    );
    assert_eq!(store.get_session(c.id).await.unwrap(), None);
    assert!(store.audit_for_session(c.id).await.unwrap().is_empty());
}

/// Reason grants: stored whole, listed newest first while live, per user;
/// revoked one or all, never twice; expired ones are neither listed nor
/// revoked.
pub async fn reason_grants(db: &Db) {
    use ssmgate::recording::GrantRow;
    let store = db.store().await;
    let now = ssmgate::recording::truncate_micros(chrono::Utc::now());
    let grant =
        |user: &str, reason: &str, created: i64, expires: i64, pattern: Option<&str>| GrantRow {
            id: Uuid::new_v4(),
            user: user.into(),
            reason: reason.into(),
            target_pattern: pattern.map(str::to_owned),
            source_ip: "2001:db8::7".parse().unwrap(),
            created_at: now + Duration::seconds(created),
            expires_at: now + Duration::seconds(expires),
        };
    let old = grant("alice", "INC-1 old", -7200, -60, None);
    let first = grant("alice", "INC-2 first", -120, 3600, Some("web-*"));
    let mut second = grant("alice", "INC-3 \"quoted\" ünïcode", -60, 600, None);
    // Made a microsecond after `first`: still listed first.
    second.created_at = first.created_at + Duration::microseconds(1);
    let bob = grant("bob", "INC-4 bob", -60, 600, None);
    for g in [&old, &first, &second, &bob] {
        store.insert_grant(g).await.unwrap();
    }
    // The same id twice is refused (never silently replaced).
    assert!(store.insert_grant(&first).await.is_err());
    assert_eq!(
        store.live_grants("alice", now).await.unwrap(),
        vec![second.clone(), first.clone()]
    );
    assert_eq!(store.live_grants("carol", now).await.unwrap(), vec![]);
    // Live until its expiry, not at it.
    assert_eq!(
        store
            .live_grants("alice", now + Duration::seconds(600))
            .await
            .unwrap(),
        vec![first.clone()]
    );
    // One, then the rest; the expired one stays as it was.
    assert_eq!(
        store
            .revoke_grants("alice", Some(first.id), now)
            .await
            .unwrap(),
        vec![first.id]
    );
    assert_eq!(
        store
            .revoke_grants("alice", Some(first.id), now)
            .await
            .unwrap(),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        store
            .revoke_grants("alice", Some(bob.id), now)
            .await
            .unwrap(),
        Vec::<Uuid>::new(),
        "another user's grant is not theirs to revoke"
    );
    assert_eq!(
        store.revoke_grants("alice", None, now).await.unwrap(),
        vec![second.id]
    );
    assert_eq!(store.live_grants("alice", now).await.unwrap(), vec![]);
    assert_eq!(store.live_grants("bob", now).await.unwrap(), vec![bob]);
}
