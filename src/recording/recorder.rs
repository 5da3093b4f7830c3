//! The [`Recorder`]: what the gateway records through. It queues ops
//! (session rows, event chunks, ends, audit events) in memory under a byte
//! budget and hands them to one writer task ([`super::writer`]), which
//! writes them in order to the store or, while the store is away, to the
//! local spool. Callers never wait on the database: they only wait when the
//! budget is used up, which bounds the memory recording can take.
//!
//! It also answers the fail-closed question ([`Recorder::ensure_available`]):
//! may a new session start now?
//!
//! Sealing: every op is sealed here, as it is queued ([`Recorder::submit`]),
//! with the first key of the key file ([`super::keys`], generated on first
//! start): the session's start, each chunk, the end (with the chunk count
//! and final head) and each audit event ([`super::seal`]). So the spool
//! carries the seals and a replay after an outage stores exactly what was
//! sealed. Audit events go into this recorder's own audit chain: a random
//! chain id per recorder, sequence numbers from 0, so replicas sharing a
//! database never write to the same chain. [`Recorder::close`] ends the
//! chain with a sealed `audit_chain_closed` event, and the chain id and
//! its last sequence number are logged at start and close, so an external
//! log can anchor the chain's tail (which the database alone cannot).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::keys::{KeyError, SealKeys};
use super::op::Op;
use super::records::{
    AuditEvent, AuditKind, AuditLink, EndReason, RecordingMode, SessionEnd, SessionRecord, now,
};
use super::seal::{seal_audit, seal_chunk, seal_end, seal_start};
use super::spool::{Spool, SpoolError};
use super::store::{Store, StoreError};
use super::tap::{Inner as TapInner, SessionTap};
use super::writer::{Msg, Timing, Writer};

/// How the recorder behaves (`[recording]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderOptions {
    /// Where the spool file lives (one directory per gateway process).
    pub spool_dir: PathBuf,
    /// Most bytes of ops held in memory before callers wait.
    pub memory_limit: usize,
    /// Refuse new sessions while the store is unreachable.
    pub fail_closed: bool,
    /// `full` records terminal content; `metadata` only sessions,
    /// connections, exits and byte counts.
    pub mode: RecordingMode,
    /// Longest a single store write may take before it is spooled.
    pub write_timeout: Duration,
    /// How often an unreachable store is tried again.
    pub retry_interval: Duration,
    /// The recording key file ([`super::keys`]); generated when missing.
    pub key_file: PathBuf,
}

impl RecorderOptions {
    /// Defaults with the spool in `spool_dir` and the key file
    /// `recording.key` beside it.
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            key_file: spool_dir.with_file_name("recording.key"),
            spool_dir,
            memory_limit: 16 << 20,
            fail_closed: true,
            mode: RecordingMode::Full,
            write_timeout: Duration::from_secs(10),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// Why the recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The key file could not be read or created.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Why a new session may not start.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "session recording is unavailable (the session database cannot be reached), so new sessions are refused; try again in a moment or tell the gateway's operators"
)]
pub struct RecordingUnavailable;

/// Counters of the recorder, for logs, tests and the benchmark.
#[derive(Debug, Default)]
pub struct State {
    /// False while the store is known to be unreachable.
    pub healthy: AtomicBool,
    /// Bytes of ops queued in memory now.
    pub queued: AtomicU64,
    /// The most bytes ever queued in memory at once.
    pub peak_queued: AtomicU64,
    /// Ops written to the store.
    pub written: AtomicU64,
    /// Ops appended to the spool.
    pub spooled: AtomicU64,
    /// Ops the store refused for good, or that could not be spooled.
    pub failed: AtomicU64,
    /// Bytes waiting in the spool.
    pub spool_bytes: AtomicU64,
    /// Ops waiting in the spool.
    pub spool_ops: AtomicU64,
    /// When the oldest write waiting in the spool was spooled, at the
    /// latest (ms since the Unix epoch; 0 when the spool is empty).
    pub spool_since_ms: AtomicU64,
}

/// A copy of the recorder's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    pub healthy: bool,
    pub queued_bytes: u64,
    pub peak_queued_bytes: u64,
    pub written_ops: u64,
    pub spooled_ops: u64,
    pub failed_ops: u64,
    pub spool_bytes: u64,
    pub spool_ops: u64,
}

struct Shared {
    tx: mpsc::UnboundedSender<Msg>,
    budget: Arc<Semaphore>,
    limit: usize,
    state: Arc<State>,
    store: Arc<dyn Store>,
    options: RecorderOptions,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Sessions being recorded, to end them at shutdown.
    live: std::sync::Mutex<HashMap<Uuid, Weak<TapInner>>>,
    /// The last availability ping and what it found: a burst of session
    /// opens shares one ping instead of each taking a pool connection.
    last_ping: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// The keys; the first seals.
    keys: SealKeys,
    /// This recorder's audit chain.
    chain_id: Uuid,
    /// The next audit event's number in it.
    next_audit_seq: AtomicI64,
}

/// How long an availability ping's answer is reused.
const PING_FRESH: Duration = Duration::from_millis(500);

/// The `action` of the audit event that closes a recorder's audit chain.
pub const CHAIN_CLOSED: &str = "audit_chain_closed";

/// The gateway's handle on recording; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Recorder {
    /// Loads (or generates) the key file, opens the spool and starts the
    /// writer. A spool left by an earlier run is replayed first.
    pub async fn start(
        store: Arc<dyn Store>,
        options: RecorderOptions,
    ) -> Result<Recorder, RecorderError> {
        let (keys, generated) = SealKeys::load_or_generate(&options.key_file)?;
        if generated {
            tracing::info!(path = %options.key_file.display(), key_id = keys.signer().id(), "generated a new recording key");
        }
        let spool = Spool::open(&options.spool_dir).await?;
        let chain_id = Uuid::new_v4();
        tracing::info!(audit_chain = %chain_id, key_id = keys.signer().id(), "recording: audit chain opened");
        let limit = options.memory_limit.clamp(64 << 10, Semaphore::MAX_PERMITS);
        let state = Arc::new(State::default());
        let reachable = tokio::time::timeout(options.write_timeout, store.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        state.healthy.store(reachable, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            store: store.clone(),
            spool,
            state: state.clone(),
            timing: Timing {
                write_timeout: options.write_timeout,
                retry_interval: options.retry_interval,
                replay_slice: Duration::from_millis(200),
            },
            spool_threshold: (limit / 2) as u64,
        };
        let handle = tokio::spawn(writer.run(rx));
        Ok(Recorder {
            shared: Arc::new(Shared {
                tx,
                budget: Arc::new(Semaphore::new(limit)),
                limit,
                state,
                store,
                options,
                writer: std::sync::Mutex::new(Some(handle)),
                live: std::sync::Mutex::new(HashMap::new()),
                last_ping: tokio::sync::Mutex::new(None),
                keys,
                chain_id,
                next_audit_seq: AtomicI64::new(0),
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RecorderOptions {
        &self.shared.options
    }

    /// This recorder's audit chain id.
    pub fn audit_chain_id(&self) -> Uuid {
        self.shared.chain_id
    }

    /// The id this process is known by among the replicas sharing the
    /// database: its audit chain's id (new at every start), so a replica's
    /// sessions and its audit trail carry the same id.
    pub fn replica_id(&self) -> Uuid {
        self.shared.chain_id
    }

    /// The id of the key new seals are made with.
    pub fn key_id(&self) -> &str {
        self.shared.keys.signer().id()
    }

    /// Seals an op that has no seal yet (see the module docs); audit events
    /// take the next number in this recorder's chain.
    fn seal(&self, op: &mut Op) {
        let key = self.shared.keys.signer();
        match op {
            Op::Session(s) if s.start_seal.is_none() => s.start_seal = Some(seal_start(key, s)),
            Op::Chunk(c) if c.seal.is_none() => c.seal = Some(seal_chunk(key, &c.hash)),
            Op::Finish(id, e) if e.seal.is_none() => e.seal = Some(seal_end(key, *id, e)),
            Op::Audit(a) if a.link.is_none() => {
                let seq = self.shared.next_audit_seq.fetch_add(1, Ordering::SeqCst);
                a.link = Some(self.link(a, seq));
            }
            _ => {}
        }
    }

    /// The link of audit event `a` at `seq` in this recorder's chain.
    fn link(&self, a: &AuditEvent, seq: i64) -> AuditLink {
        let chain_id = self.shared.chain_id;
        AuditLink {
            chain_id,
            seq,
            seal: seal_audit(self.shared.keys.signer(), a, chain_id, seq),
        }
    }

    /// Seals the op (see the module docs) and queues it; waits only while
    /// the memory budget is used up.
    pub async fn submit(&self, mut op: Op) {
        self.seal(&mut op);
        let weight = op.weight().clamp(1, self.shared.limit);
        let n = u32::try_from(weight).unwrap_or(u32::MAX);
        let Ok(permit) = self.shared.budget.clone().acquire_many_owned(n).await else {
            tracing::error!(session = ?op.session_id(), "RECORDING LOST: the recorder is closed");
            return;
        };
        let s = &self.shared.state;
        let queued = s.queued.fetch_add(u64::from(n), Ordering::Relaxed) + u64::from(n);
        s.peak_queued.fetch_max(queued, Ordering::Relaxed);
        if self.shared.tx.send(Msg::Op(op, permit)).is_err() {
            s.queued.fetch_sub(u64::from(n), Ordering::Relaxed);
            s.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("RECORDING LOST: the recording writer has stopped");
        }
    }

    /// Records an audit event. `detail` must be a JSON object.
    pub async fn audit(
        &self,
        kind: AuditKind,
        user: Option<&str>,
        session_id: Option<Uuid>,
        source_ip: Option<IpAddr>,
        detail: serde_json::Value,
    ) {
        self.submit(Op::Audit(AuditEvent {
            id: Uuid::new_v4(),
            at: now(),
            kind,
            user: user.map(str::to_owned),
            session_id,
            source_ip,
            detail: detail.to_string(),
            link: None,
        }))
        .await;
    }

    /// Records a session's start and returns the tap its events go
    /// through. With `[recording] mode = "metadata"` the session is
    /// recorded as metadata whatever `record.recording` said.
    pub async fn begin(&self, mut record: SessionRecord) -> SessionTap {
        if self.shared.options.mode == RecordingMode::Metadata {
            record.recording = RecordingMode::Metadata;
        }
        // This process is the replica that runs it (see `replica_id`).
        record.replica.get_or_insert(self.shared.chain_id);
        let detail = serde_json::json!({
            "target": record.target_id,
            "kind": record.kind.as_str(),
            "ssm_session_id": record.ssm_session_id,
            "document": record.document,
        });
        let (id, user, ip, mode, kind) = (
            record.id,
            record.user.clone(),
            record.source_ip,
            record.recording,
            record.kind,
        );
        self.submit(Op::Session(Box::new(record))).await;
        self.audit(
            AuditKind::SessionStart,
            Some(&user),
            Some(id),
            Some(ip),
            detail,
        )
        .await;
        SessionTap::new(
            self.clone(),
            id,
            user,
            ip,
            mode == RecordingMode::Full,
            kind,
        )
    }

    /// Fail-closed check before a new session: refuses while the store is
    /// known to be down, and otherwise pings it (briefly). Always Ok when
    /// `fail_closed` is off.
    pub async fn ensure_available(&self) -> Result<(), RecordingUnavailable> {
        if !self.shared.options.fail_closed {
            return Ok(());
        }
        if !self.shared.state.healthy.load(Ordering::SeqCst) {
            return Err(RecordingUnavailable);
        }
        // One ping at a time; callers queued behind it reuse its answer.
        let mut last = self.shared.last_ping.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < PING_FRESH
        {
            return if ok {
                Ok(())
            } else {
                Err(RecordingUnavailable)
            };
        }
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(2), self.shared.store.ping()).await,
            Ok(Ok(()))
        );
        *last = Some((std::time::Instant::now(), ok));
        if ok {
            Ok(())
        } else {
            Err(RecordingUnavailable)
        }
    }

    /// Waits until everything queued so far is in the store (not merely
    /// spooled). Never returns while the store stays down: use a timeout.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) fn register(&self, id: Uuid, tap: Weak<TapInner>) {
        self.live().insert(id, tap);
    }

    pub(crate) fn unregister(&self, id: Uuid) {
        self.live().remove(&id);
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Weak<TapInner>>> {
        self.shared.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions being recorded now.
    pub fn live_sessions(&self) -> usize {
        self.live().len()
    }

    /// Records the end of `s`, a session another replica ran and can no
    /// longer end (it stopped heartbeating): `terminated` with `cause`,
    /// covering the chunks stored (what the dead replica never wrote is
    /// lost with it) and bytes unknown (0). Sealed like any end, so
    /// `sessions verify` checks it.
    pub async fn close_orphan(&self, s: &SessionRecord, cause: String) -> Result<(), StoreError> {
        let chunks = self.shared.store.chunks(s.id).await?;
        let end = SessionEnd {
            ended_at: now(),
            reason: EndReason::Terminated,
            exit_status: None,
            bytes_in: 0,
            bytes_out: 0,
            chain_head: chunks.last().map(|c| c.hash),
            chunk_count: Some(chunks.len() as u64),
            seal: None,
            cause: Some(cause.clone()),
        };
        self.audit(
            AuditKind::SessionEnd,
            Some(&s.user),
            Some(s.id),
            Some(s.source_ip),
            serde_json::json!({ "reason": "terminated", "cause": cause, "orphan": true }),
        )
        .await;
        self.submit(Op::Finish(s.id, end)).await;
        Ok(())
    }

    /// Stops the writer after it has written (or spooled) everything
    /// queued. Sessions still being recorded get a few seconds to end by
    /// themselves; the rest are recorded as terminated.
    pub async fn close(&self) {
        for _ in 0..50 {
            if self.live_sessions() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left: Vec<Weak<TapInner>> = self.live().drain().map(|(_, t)| t).collect();
        for tap in left.iter().filter_map(Weak::upgrade) {
            tap.finish(EndReason::Terminated, None, Some("shutdown".into()))
                .await;
        }
        // The chain's last event says it is the last (a chain without it
        // was cut short: the process died, or its newest rows were deleted).
        let last_seq = self.shared.next_audit_seq.fetch_add(1, Ordering::SeqCst);
        let mut closed = AuditEvent {
            id: Uuid::new_v4(),
            at: now(),
            kind: AuditKind::Admin,
            user: None,
            session_id: None,
            source_ip: None,
            detail: serde_json::json!({
                "action": CHAIN_CLOSED,
                "chain": self.shared.chain_id,
                "last_seq": last_seq,
            })
            .to_string(),
            link: None,
        };
        closed.link = Some(self.link(&closed, last_seq));
        self.submit(Op::Audit(closed)).await;
        tracing::info!(audit_chain = %self.shared.chain_id, last_seq, "recording: audit chain closed");
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        let handle = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        self.shared.budget.close();
    }

    /// How long the oldest write waiting in the spool has waited, at
    /// most; `None` when the spool is empty.
    pub fn spool_oldest_age(&self) -> Option<Duration> {
        let since = self.shared.state.spool_since_ms.load(Ordering::Relaxed);
        let since = std::time::UNIX_EPOCH + Duration::from_millis((since > 0).then_some(since)?);
        Some(since.elapsed().unwrap_or_default())
    }

    /// The counters now.
    pub fn stats(&self) -> RecorderStats {
        let s = &self.shared.state;
        RecorderStats {
            healthy: s.healthy.load(Ordering::SeqCst),
            queued_bytes: s.queued.load(Ordering::Relaxed),
            peak_queued_bytes: s.peak_queued.load(Ordering::Relaxed),
            written_ops: s.written.load(Ordering::Relaxed),
            spooled_ops: s.spooled.load(Ordering::Relaxed),
            failed_ops: s.failed.load(Ordering::Relaxed),
            spool_bytes: s.spool_bytes.load(Ordering::Relaxed),
            spool_ops: s.spool_ops.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
