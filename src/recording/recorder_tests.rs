//! Tests of the recorder, tap, writer and spool together, on a real SQLite
//! file behind a switch that makes it unreachable (as a stopped database
//! is) or slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::recording::recorder::{Recorder, RecorderOptions};
use crate::recording::records::*;
use crate::recording::store::{Store, StoreError, Write};
use crate::recording::{SealKeys, chain, check_audit_chain, check_session, connect};

/// Checks every audit chain in the store: intact, and closed unless `open`
/// names it; returns the chains' ids.
async fn check_audit_chains(t: &Setup, open: Option<Uuid>) -> Vec<Uuid> {
    let keys = SealKeys::load(&t.options.key_file).unwrap();
    let sessions = t
        .store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let ids = t.store.audit_chain_ids().await.unwrap();
    for id in &ids {
        let rows = t.store.audit_chain(*id).await.unwrap();
        let r = check_audit_chain(&keys, *id, &rows, &sessions);
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.closed, open != Some(*id), "{r:?}");
        assert_eq!(r.last_seq, Some(rows.len() as i64 - 1));
    }
    assert_eq!(t.store.unchained_audit_count().await.unwrap(), 0);
    ids
}

/// A real store that can be switched off or slowed down.
struct Switch {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    delay_ms: AtomicU64,
}

impl Switch {
    async fn gate(&self) -> Result<(), StoreError> {
        let ms = self.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::ConnectTimedOut(Duration::ZERO));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Switch {
    async fn upsert_replica(&self, r: &crate::recording::ReplicaRow) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.upsert_replica(r).await
    }
    async fn replicas(&self) -> Result<Vec<crate::recording::ReplicaRow>, StoreError> {
        self.gate().await?;
        self.inner.replicas().await
    }
    async fn insert_kill(&self, k: &crate::recording::KillRow) -> Result<bool, StoreError> {
        self.gate().await?;
        self.inner.insert_kill(k).await
    }
    async fn pending_kills(
        &self,
        replica: Uuid,
    ) -> Result<Vec<crate::recording::KillRow>, StoreError> {
        self.gate().await?;
        self.inner.pending_kills(replica).await
    }
    async fn get_kill(&self, id: Uuid) -> Result<Option<crate::recording::KillRow>, StoreError> {
        self.gate().await?;
        self.inner.get_kill(id).await
    }
    async fn complete_kill(
        &self,
        id: Uuid,
        at: chrono::DateTime<chrono::Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.complete_kill(id, at, outcome).await
    }
    async fn lock_user(&self, l: &crate::recording::LockRow) -> Result<bool, StoreError> {
        self.gate().await?;
        self.inner.lock_user(l).await
    }
    async fn unlock_user(&self, user: &str) -> Result<bool, StoreError> {
        self.gate().await?;
        self.inner.unlock_user(user).await
    }
    async fn user_locks(&self) -> Result<Vec<crate::recording::LockRow>, StoreError> {
        self.gate().await?;
        self.inner.user_locks().await
    }
    async fn insert_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.insert_grant(g).await
    }
    async fn live_grants(
        &self,
        user: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<GrantRow>, StoreError> {
        self.gate().await?;
        self.inner.live_grants(user, now).await
    }
    async fn count_live_grants(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.gate().await?;
        self.inner.count_live_grants(now).await
    }
    async fn revoke_grants(
        &self,
        user: &str,
        id: Option<Uuid>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.gate().await?;
        self.inner.revoke_grants(user, id, now).await
    }
    async fn pin_host_key(
        &self,
        target_id: &str,
        offered: &str,
        fingerprint: &str,
    ) -> Result<String, StoreError> {
        self.gate().await?;
        self.inner
            .pin_host_key(target_id, offered, fingerprint)
            .await
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.migrate().await
    }
    async fn write(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.write(writes).await
    }
    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get_session(id).await
    }
    async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_sessions(f).await
    }
    async fn chunks(&self, id: Uuid) -> Result<Vec<EventChunk>, StoreError> {
        self.inner.chunks(id).await
    }
    async fn audit_for_session(&self, id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_for_session(id).await
    }
    async fn audit_chain_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        self.inner.audit_chain_ids().await
    }
    async fn audit_chain(&self, chain_id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_chain(chain_id).await
    }
    async fn unchained_audit_count(&self) -> Result<u64, StoreError> {
        self.inner.unchained_audit_count().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.gate().await?;
        self.inner.ping().await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Switch>,
    options: RecorderOptions,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rec.db").display());
    let inner = connect(&url).await.unwrap();
    let store = Arc::new(Switch {
        inner,
        down: AtomicBool::new(false),
        delay_ms: AtomicU64::new(0),
    });
    let mut options = RecorderOptions::new(dir.path().join("spool"));
    options.retry_interval = Duration::from_millis(50);
    options.write_timeout = Duration::from_secs(2);
    Setup {
        _dir: dir,
        store,
        options,
    }
}

fn record(id: Uuid) -> SessionRecord {
    crate::recording::op::tests::sample_session(id)
}

/// Checks the session's chain, its seals (with the key file the recorder
/// generated) and its output.
async fn check_recorded(t: &Setup, id: Uuid, expect_output: &[u8]) -> SessionRecord {
    let store = &*t.store;
    let s = store.get_session(id).await.unwrap().expect("session row");
    let chunks = store.chunks(id).await.unwrap();
    chain::verify(&s, &chunks).unwrap();
    let keys = SealKeys::load(&t.options.key_file).unwrap();
    let audit = store.audit_for_session(id).await.unwrap();
    let report = check_session(&keys, &s, Ok(&chunks), &audit);
    assert!(report.is_intact(), "{report:?}");
    assert!(!report.unsealed && !report.live, "{report:?}");
    assert!(s.start_seal.is_some() && chunks.iter().all(|c| c.seal.is_some()));
    assert!(s.end.as_ref().is_some_and(|e| e.seal.is_some()));
    assert!(audit.iter().all(|a| a.link.is_some()), "{audit:?}");
    let out: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.kind == EventKind::Output)
        .flat_map(|e| e.data.to_vec())
        .collect();
    assert_eq!(out, expect_output);
    s
}

#[tokio::test]
async fn a_session_is_recorded_with_its_chain_and_audit() {
    let t = setup().await;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    tap.resize(80, 24).await;
    tap.input(&Bytes::from_static(b"echo hi\r")).await;
    let mut expect = Vec::new();
    // Enough output for several chunks.
    for i in 0..400u32 {
        let line = Bytes::from(format!("line {i:05} {}\r\n", "x".repeat(1000)));
        expect.extend_from_slice(&line);
        tap.output(&line).await;
    }
    tap.exit(3).await;
    tap.finish(EndReason::TargetExited, Some(3)).await;
    rec.flush().await;
    let s = check_recorded(&t, id, &expect).await;
    let end = s.end.unwrap();
    assert_eq!(end.exit_status, Some(3));
    assert_eq!(end.bytes_out, expect.len() as u64);
    assert_eq!(end.bytes_in, 8);
    assert!(t.store.chunks(id).await.unwrap().len() >= 3);
    let kinds: Vec<AuditKind> = t
        .store
        .audit_for_session(id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, [AuditKind::SessionStart, AuditKind::SessionEnd]);
    let stats = rec.stats();
    assert_eq!((stats.spooled_ops, stats.failed_ops), (0, 0));
    rec.close().await;
}

#[tokio::test]
async fn an_outage_spools_refuses_new_sessions_and_replays_in_order() {
    let t = setup().await;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    rec.ensure_available().await.unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    let mut expect = Vec::new();
    let mut say = async |text: String| {
        let b = Bytes::from(text);
        expect.extend_from_slice(&b);
        tap.output(&b).await;
    };
    say("before\n".into()).await;
    rec.flush().await;
    t.store.down.store(true, Ordering::SeqCst);
    for i in 0..300 {
        say(format!("during {i} {}\n", "y".repeat(900))).await;
    }
    // Give the writer a write to fail on, then check the gate.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let refused = rec.ensure_available().await.unwrap_err();
    assert!(refused.to_string().contains("new sessions are refused"));
    let stats = rec.stats();
    assert!(!stats.healthy);
    assert!(stats.spooled_ops > 0 && stats.spool_bytes > 0, "{stats:?}");
    t.store.down.store(false, Ordering::SeqCst);
    say("after\n".into()).await;
    tap.finish(EndReason::ClientClosed, None).await;
    tokio::time::timeout(Duration::from_secs(20), rec.flush())
        .await
        .expect("the spool drains once the store is back");
    check_recorded(&t, id, &expect).await;
    assert_eq!(rec.stats().spool_ops, 0);
    rec.ensure_available().await.unwrap();
    // The audit events written while spooling are in the chain too.
    let chain = rec.audit_chain_id();
    assert_eq!(check_audit_chains(&t, Some(chain)).await, [chain]);
    rec.close().await;
    assert_eq!(check_audit_chains(&t, None).await, [chain]);
}

#[tokio::test]
async fn a_spool_left_at_shutdown_is_replayed_at_the_next_start() {
    let t = setup().await;
    t.store.down.store(true, Ordering::SeqCst);
    let id = Uuid::new_v4();
    {
        let rec = Recorder::start(t.store.clone(), t.options.clone())
            .await
            .unwrap();
        assert!(!rec.stats().healthy);
        let tap = rec.begin(record(id)).await;
        tap.output(&Bytes::from_static(b"kept on disk")).await;
        tap.finish(EndReason::ClientClosed, None).await;
        rec.close().await;
        assert!(t.store.get_session(id).await.unwrap().is_none());
    }
    t.store.down.store(false, Ordering::SeqCst);
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rec.flush())
        .await
        .unwrap();
    let s = check_recorded(&t, id, b"kept on disk").await;
    assert_eq!(s.end.unwrap().reason, EndReason::ClientClosed);
    rec.close().await;
    // Two recorders, two chains: the first written entirely by the replay.
    assert_eq!(check_audit_chains(&t, None).await.len(), 2);
}

#[tokio::test]
async fn a_rotated_key_seals_new_recordings_and_old_ones_still_verify() {
    let t = setup().await;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let old_id = rec.key_id().to_owned();
    let first = Uuid::new_v4();
    let tap = rec.begin(record(first)).await;
    tap.output(&Bytes::from_static(b"old key")).await;
    tap.finish(EndReason::ClientClosed, None).await;
    rec.close().await;
    // Rotation: a new key on top, the old one kept below it.
    let old = SealKeys::load(&t.options.key_file).unwrap();
    let new = SealKeys::random("k-new").unwrap();
    let both = SealKeys::from_keys(vec![new.signer().clone(), old.signer().clone()]).unwrap();
    std::fs::remove_file(&t.options.key_file).unwrap();
    both.write_new(&t.options.key_file).unwrap();
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    assert_eq!(rec.key_id(), "k-new");
    let second = Uuid::new_v4();
    let tap = rec.begin(record(second)).await;
    tap.output(&Bytes::from_static(b"new key")).await;
    tap.finish(EndReason::ClientClosed, None).await;
    rec.close().await;
    let a = check_recorded(&t, first, b"old key").await;
    let b = check_recorded(&t, second, b"new key").await;
    assert_eq!(a.start_seal.unwrap().key_id, old_id);
    assert_eq!(b.start_seal.unwrap().key_id, "k-new");
    assert_eq!(check_audit_chains(&t, None).await.len(), 2);
    // Without the old key, the old session cannot be checked: said so.
    let s = t.store.get_session(first).await.unwrap().unwrap();
    let chunks = t.store.chunks(first).await.unwrap();
    let audit = t.store.audit_for_session(first).await.unwrap();
    let r = check_session(&new, &s, Ok(&chunks), &audit);
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.unknown_keys.into_iter().collect::<Vec<_>>(), [old_id]);
}

#[tokio::test]
async fn a_slow_store_costs_disk_not_memory() {
    let mut t = setup().await;
    t.options.memory_limit = 256 << 10;
    t.store.delay_ms.store(20, Ordering::SeqCst);
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    let mut expect = Vec::new();
    let chunk = Bytes::from(vec![b'z'; 16 << 10]);
    // 8 MiB through a store that takes 20 ms per write.
    for _ in 0..512 {
        expect.extend_from_slice(&chunk);
        tap.output(&chunk).await;
    }
    tap.finish(EndReason::ClientClosed, None).await;
    let stats = rec.stats();
    assert!(
        stats.peak_queued_bytes <= 256 << 10,
        "peak {} bytes",
        stats.peak_queued_bytes
    );
    assert!(stats.spooled_ops > 0, "{stats:?}");
    t.store.delay_ms.store(0, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), rec.flush())
        .await
        .unwrap();
    check_recorded(&t, id, &expect).await;
    rec.close().await;
}

#[tokio::test]
async fn metadata_mode_keeps_no_content_but_counts_bytes() {
    let mut t = setup().await;
    t.options.mode = RecordingMode::Metadata;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    assert!(!tap.records_content());
    tap.input(&Bytes::from_static(b"secret typing")).await;
    tap.output(&Bytes::from_static(b"output")).await;
    let conn = tap.conn_open().await;
    tap.conn_close(conn, 10, 20).await;
    tap.finish(EndReason::ClientClosed, None).await;
    rec.flush().await;
    let s = check_recorded(&t, id, b"").await;
    assert_eq!(s.recording, RecordingMode::Metadata);
    let end = s.end.unwrap();
    assert_eq!((end.bytes_in, end.bytes_out), (23, 26));
    let events: Vec<EventKind> = t
        .store
        .chunks(id)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.events)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events,
        [
            EventKind::ConnOpen { id: 0 },
            EventKind::ConnClose {
                id: 0,
                bytes_in: 10,
                bytes_out: 20
            }
        ]
    );
    rec.close().await;
}

#[tokio::test]
async fn a_dropped_tap_still_ends_its_session() {
    let t = setup().await;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    tap.output(&Bytes::from_static(b"partial")).await;
    drop(tap);
    tokio::time::sleep(Duration::from_millis(100)).await;
    rec.flush().await;
    let s = check_recorded(&t, id, b"partial").await;
    assert_eq!(s.end.unwrap().reason, EndReason::Error);
    rec.close().await;
}

#[tokio::test]
async fn close_ends_sessions_still_open_as_terminated() {
    let t = setup().await;
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    tap.output(&Bytes::from_static(b"still running")).await;
    assert_eq!(rec.live_sessions(), 1);
    rec.close().await;
    let s = check_recorded(&t, id, b"still running").await;
    assert_eq!(s.end.unwrap().reason, EndReason::Terminated);
    // The tap outliving the recorder records nothing more and does not panic.
    tap.output(&Bytes::from_static(b"late")).await;
    tap.finish(EndReason::ClientClosed, None).await;
}

#[tokio::test]
async fn a_hanging_store_does_not_stall_sessions() {
    let mut t = setup().await;
    t.options.memory_limit = 1 << 20;
    t.options.write_timeout = Duration::from_secs(30);
    let rec = Recorder::start(t.store.clone(), t.options.clone())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let tap = rec.begin(record(id)).await;
    rec.flush().await;
    // Every store call (pings included) now takes 3 s: a database that
    // accepts connections but does not answer.
    t.store.delay_ms.store(3000, Ordering::SeqCst);
    let chunk = Bytes::from(vec![b'h'; 16 << 10]);
    let mut expect = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..256 {
        expect.extend_from_slice(&chunk);
        tap.output(&chunk).await;
    }
    // 4 MiB went by without waiting for the store (one in-flight write at
    // most held the queue until it passed half the budget).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "sessions waited {:?}",
        started.elapsed()
    );
    assert!(rec.stats().peak_queued_bytes <= 1 << 20);
    t.store.delay_ms.store(0, Ordering::SeqCst);
    tap.finish(EndReason::ClientClosed, None).await;
    tokio::time::timeout(Duration::from_secs(30), rec.flush())
        .await
        .unwrap();
    check_recorded(&t, id, &expect).await;
    rec.close().await;
}
