//! The store contract for the rows replicas share (migration 0005):
//! replicas and heartbeats, kill requests (one claim per id), user locks,
//! and a session's replica and end cause surviving the round trip.

use chrono::Duration;
use ssmgate::recording::{KillRow, LockRow, ReplicaRow, SessionFilter, truncate_micros};
use uuid::Uuid;

use super::fixtures::*;

pub async fn cluster_rows(db: &Db) {
    let store = db.store().await;
    let now = truncate_micros(chrono::Utc::now());
    // Replicas: registered, heartbeats move, a clean stop is kept.
    let mut a = ReplicaRow {
        id: Uuid::new_v4(),
        address: "gw-a:2222".into(),
        version: "0.1.0".into(),
        started_at: now - Duration::seconds(10),
        heartbeat_at: now - Duration::seconds(10),
        stopped_at: None,
    };
    let b = ReplicaRow {
        id: Uuid::new_v4(),
        address: "gw-b:2222".into(),
        started_at: now,
        heartbeat_at: now,
        ..a.clone()
    };
    store.upsert_replica(&a).await.unwrap();
    store.upsert_replica(&b).await.unwrap();
    a.heartbeat_at = now + Duration::seconds(5);
    a.stopped_at = Some(now + Duration::seconds(6));
    // The address and start never change on a heartbeat.
    let mut beat = a.clone();
    beat.address = "elsewhere".into();
    store.upsert_replica(&beat).await.unwrap();
    assert_eq!(store.replicas().await.unwrap(), vec![a.clone(), b.clone()]);

    // A session's replica and its end's cause round-trip.
    let mut s = full_session("alice", "i-0123456789abcdef0", now);
    s.replica = Some(b.id);
    store.insert_session(&s).await.unwrap();
    let live = store
        .list_sessions(&SessionFilter {
            live_only: true,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].replica, Some(b.id));
    let mut e = end(now + Duration::seconds(3), None);
    e.cause = Some("killed by root@admin: INC-42 \"quoted\" ünïcode".into());
    store.finish_session(s.id, &e).await.unwrap();
    let got = store.get_session(s.id).await.unwrap().unwrap();
    assert_eq!(got.replica, Some(b.id));
    assert_eq!(got.end.unwrap().cause, e.cause);

    // Kill requests: pending per replica in order; one claim per id.
    let kill = |replica: Uuid, secs: i64| KillRow {
        id: Uuid::new_v4(),
        session_id: Uuid::new_v4(),
        replica_id: Some(replica),
        requested_at: now + Duration::seconds(secs),
        requested_by: "root@admin".into(),
        reason: "INC-42".into(),
        done_at: None,
        outcome: None,
    };
    let (k1, k2, k3) = (kill(b.id, 1), kill(b.id, 2), kill(a.id, 1));
    for k in [&k2, &k1, &k3] {
        assert!(store.insert_kill(k).await.unwrap());
    }
    assert!(!store.insert_kill(&k1).await.unwrap(), "a second claim");
    assert_eq!(
        store.pending_kills(b.id).await.unwrap(),
        vec![k1.clone(), k2.clone()]
    );
    store
        .complete_kill(k1.id, now + Duration::seconds(4), "ended")
        .await
        .unwrap();
    // Done once: a second completion keeps the first.
    store
        .complete_kill(k1.id, now + Duration::seconds(9), "not_live")
        .await
        .unwrap();
    assert_eq!(store.pending_kills(b.id).await.unwrap(), vec![k2.clone()]);
    let done = store.get_kill(k1.id).await.unwrap().unwrap();
    assert_eq!(done.done_at, Some(now + Duration::seconds(4)));
    assert_eq!(done.outcome.as_deref(), Some("ended"));
    assert_eq!(store.get_kill(Uuid::new_v4()).await.unwrap(), None);

    // Locks: once per user, listed by name, removed by unlock.
    let lock = |user: &str| LockRow {
        user: user.into(),
        locked_at: now,
        locked_by: "root@admin".into(),
        reason: "left the company".into(),
    };
    assert!(store.lock_user(&lock("mallory")).await.unwrap());
    assert!(store.lock_user(&lock("bob")).await.unwrap());
    let mut again = lock("bob");
    again.reason = "another reason".into();
    assert!(!store.lock_user(&again).await.unwrap());
    assert_eq!(
        store.user_locks().await.unwrap(),
        vec![lock("bob"), lock("mallory")]
    );
    assert!(store.unlock_user("bob").await.unwrap());
    assert!(!store.unlock_user("bob").await.unwrap());
    assert_eq!(store.user_locks().await.unwrap(), vec![lock("mallory")]);
    // Notices: Postgres sends one; SQLite has none (and does not fail).
    store.notify_cluster().await.unwrap();
}
