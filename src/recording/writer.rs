//! The writer task: the only place that writes the recorder's ops to the
//! store, one at a time and in the order they were queued.
//!
//! It runs in one of two modes:
//! - **direct**: ops go straight to the store, those queued together in
//!   one transaction;
//! - **spooling**: entered when a write finds the store unavailable (or
//!   slower than the write timeout), or when the queue in memory grows past
//!   half the budget (the store is slower than the sessions). Every op is
//!   then appended to the [`Spool`] file, so memory stays bounded whatever
//!   the store does. The store is pinged every retry interval; once it
//!   answers, the spool is replayed in order (in slices, so new ops keep
//!   flowing into the spool meanwhile) and, when empty, direct mode resumes.
//!
//! Ops that the store refuses for good (a conflict, an invalid value) are
//! logged at error level and counted; they are not retried forever.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::op::Op;
use super::recorder::State;
use super::spool::Spool;
use super::store::{Store, StoreError};

/// What the recorder sends its writer.
pub(crate) enum Msg {
    /// An op with the memory budget it holds until written or spooled.
    Op(Op, OwnedSemaphorePermit),
    /// Answer once everything queued before is in the store.
    Flush(oneshot::Sender<()>),
    /// Write what can be written, sync the spool, then stop.
    Close(oneshot::Sender<()>),
}

/// Timing of the writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Longest a single store write may take before the op is spooled.
    pub write_timeout: Duration,
    /// How often a missing store is pinged.
    pub retry_interval: Duration,
    /// Longest one replay slice runs before new ops are taken in.
    pub replay_slice: Duration,
}

pub(crate) struct Writer {
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub state: Arc<State>,
    pub timing: Timing,
    /// Queue size (bytes) past which the writer spools instead of waiting.
    pub spool_threshold: u64,
}

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        let mut spooling = !self.spool.is_empty();
        self.publish_spool();
        let mut next_try = Instant::now();
        // The ping of an absent store runs beside the loop, so new ops keep
        // going to the spool while a connection attempt hangs.
        let mut ping: Option<JoinHandle<bool>> = None;
        // A message taken while gathering a batch, to handle next.
        let mut carry: Option<Msg> = None;
        loop {
            if !spooling {
                let msg = match carry.take() {
                    Some(m) => m,
                    None => match rx.recv().await {
                        Some(m) => m,
                        None => break,
                    },
                };
                match msg {
                    Msg::Op(op, permit) => {
                        let mut ops = vec![op];
                        let mut permits = vec![permit];
                        carry = gather(&mut rx, &mut ops, &mut permits);
                        spooling = self.write_direct(&ops).await;
                        for p in permits {
                            self.release(p);
                        }
                        if spooling {
                            next_try = Instant::now() + self.timing.retry_interval;
                        }
                    }
                    Msg::Flush(reply) => {
                        let _ = reply.send(());
                    }
                    Msg::Close(reply) => {
                        let _ = reply.send(());
                        break;
                    }
                }
                continue;
            }
            tokio::select! {
                msg = async {
                    match carry.take() {
                        Some(m) => Some(m),
                        None => rx.recv().await,
                    }
                } => match msg {
                    Some(Msg::Op(op, permit)) => {
                        self.spool_op(&op).await;
                        self.release(permit);
                    }
                    Some(Msg::Flush(reply)) => waiters.push(reply),
                    Some(Msg::Close(reply)) => {
                        self.last_chance().await;
                        let _ = reply.send(());
                        break;
                    }
                    None => {
                        self.last_chance().await;
                        break;
                    }
                },
                answered = async {
                    match ping.as_mut() {
                        Some(p) => p.await.unwrap_or(false),
                        None => std::future::pending().await,
                    }
                }, if ping.is_some() => {
                    ping = None;
                    self.state.healthy.store(answered, Ordering::SeqCst);
                    let progressed = answered && self.replay_slice().await;
                    if self.spool.is_empty() {
                        spooling = false;
                        tracing::info!("recording store reachable again; the spool is replayed");
                        for w in waiters.drain(..) {
                            let _ = w.send(());
                        }
                    }
                    next_try = if progressed {
                        Instant::now()
                    } else {
                        Instant::now() + self.timing.retry_interval
                    };
                }
                _ = tokio::time::sleep_until(next_try), if ping.is_none() => {
                    if let Err(e) = self.spool.sync().await {
                        tracing::error!(error = %e, "cannot sync the recording spool");
                    }
                    let store = self.store.clone();
                    let limit = self.timing.write_timeout;
                    ping = Some(tokio::spawn(async move {
                        matches!(tokio::time::timeout(limit, store.ping()).await, Ok(Ok(())))
                    }));
                }
            }
        }
        if let Some(p) = ping {
            p.abort();
        }
        if let Err(e) = self.spool.sync().await {
            tracing::error!(error = %e, "cannot sync the recording spool");
        }
        if !self.spool.is_empty() {
            tracing::warn!(
                spool = %self.spool.path().display(),
                ops = self.spool.pending_ops(),
                "stopping with recording writes still spooled; they are replayed at the next start"
            );
        }
    }

    /// Writes ops (those queued together, in one transaction); true
    /// when they had to be spooled (switch to spooling): the store is
    /// unavailable, or the sessions queued more than the threshold while
    /// the write was in flight (the store is slow; the abandoned write is
    /// idempotent, so replaying it later is harmless).
    async fn write_direct(&mut self, ops: &[Op]) -> bool {
        let written = tokio::select! {
            r = self.write_many(ops) => Some(r),
            () = self.backlog() => None,
        };
        match written {
            Some(Ok(())) => false,
            None => {
                tracing::warn!(
                    queued_bytes = self.state.queued.load(Ordering::Relaxed),
                    "the recording store is slower than the sessions; spooling to disk"
                );
                self.spool_all(ops).await
            }
            Some(Err(e)) if e.is_unavailable() => {
                self.state.healthy.store(false, Ordering::SeqCst);
                tracing::error!(error = %e, "recording store unavailable; spooling to disk, new sessions are refused until it is back");
                self.spool_all(ops).await
            }
            Some(Err(e)) if ops.len() == 1 => {
                self.refused(&ops[0], &e);
                false
            }
            Some(Err(_)) => {
                // One op of the batch was refused and the transaction
                // rolled back: write them one by one to keep the others.
                for (i, op) in ops.iter().enumerate() {
                    match self.write(op).await {
                        Ok(()) => {}
                        Err(e) if e.is_unavailable() => {
                            self.state.healthy.store(false, Ordering::SeqCst);
                            return self.spool_all(ops.get(i..).unwrap_or_default()).await;
                        }
                        Err(e) => self.refused(op, &e),
                    }
                }
                false
            }
        }
    }

    async fn spool_all(&mut self, ops: &[Op]) -> bool {
        for op in ops {
            self.spool_op(op).await;
        }
        true
    }

    /// Ops in one transaction.
    async fn write_many(&self, ops: &[Op]) -> Result<(), StoreError> {
        let writes: Vec<_> = ops.iter().map(Op::as_write).collect();
        let result = tokio::time::timeout(self.timing.write_timeout, self.store.write(&writes))
            .await
            .unwrap_or(Err(StoreError::ConnectTimedOut(self.timing.write_timeout)));
        if result.is_ok() {
            self.state
                .written
                .fetch_add(ops.len() as u64, Ordering::Relaxed);
        }
        result
    }

    /// Completes once the queue in memory is past the spool threshold.
    async fn backlog(&self) {
        while self.state.queued.load(Ordering::Relaxed) <= self.spool_threshold {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn write(&self, op: &Op) -> Result<(), StoreError> {
        let result = tokio::time::timeout(self.timing.write_timeout, op.apply(&*self.store))
            .await
            .unwrap_or(Err(StoreError::ConnectTimedOut(self.timing.write_timeout)));
        if result.is_ok() {
            self.state.written.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Appends to the spool; always true (the writer is spooling now). A
    /// spool that cannot be written is the one case where an op is lost:
    /// it is logged with everything that identifies it.
    async fn spool_op(&mut self, op: &Op) -> bool {
        match self.spool.push(op).await {
            Ok(()) => {
                self.state.spooled.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.state.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, session = ?op.session_id(), op = op_name(op), "RECORDING LOST: cannot write to the store nor to the spool");
            }
        }
        self.publish_spool();
        true
    }

    /// Replays spooled ops while the store takes them, for at most one
    /// slice, and only while no backlog builds up in memory; true when at
    /// least one op was replayed.
    async fn replay_slice(&mut self) -> bool {
        let until = Instant::now() + self.timing.replay_slice;
        let mut progressed = false;
        while Instant::now() < until {
            let op = match self.spool.peek().await {
                Ok(Some(op)) => op,
                Ok(None) => break,
                Err(e) => {
                    // An unreadable frame cannot be replayed; skip it so the
                    // rest is not held up (the spool copied it aside at open
                    // if it was damaged on disk).
                    tracing::error!(error = %e, "skipping an unreadable spooled recording write");
                    self.state.failed.fetch_add(1, Ordering::Relaxed);
                    if self.spool.pop().await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let written = tokio::select! {
                r = self.write(&op) => Some(r),
                () = self.backlog() => None,
            };
            match written {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) if e.is_unavailable() => {
                    self.state.healthy.store(false, Ordering::SeqCst);
                    break;
                }
                Some(Err(e)) => self.refused(&op, &e),
            }
            if let Err(e) = self.spool.pop().await {
                tracing::error!(error = %e, "cannot advance the recording spool");
                break;
            }
            progressed = true;
        }
        self.publish_spool();
        progressed
    }

    /// At shutdown: replay what the store takes within a few slices.
    async fn last_chance(&mut self) {
        for _ in 0..20 {
            let ping = tokio::time::timeout(self.timing.write_timeout, self.store.ping()).await;
            if self.spool.is_empty() || !matches!(ping, Ok(Ok(()))) || !self.replay_slice().await {
                break;
            }
        }
    }

    fn refused(&self, op: &Op, e: &StoreError) {
        self.state.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, session = ?op.session_id(), op = op_name(op), "the recording store refused a write");
    }

    fn release(&self, permit: OwnedSemaphorePermit) {
        let n = permit.num_permits() as u64;
        self.state.queued.fetch_sub(n, Ordering::Relaxed);
        drop(permit);
    }

    fn publish_spool(&self) {
        self.state
            .spool_bytes
            .store(self.spool.pending_bytes(), Ordering::Relaxed);
        self.state
            .spool_ops
            .store(self.spool.pending_ops(), Ordering::Relaxed);
        let since = self
            .spool
            .pending_since()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let since_ms = since.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.state.spool_since_ms.store(since_ms, Ordering::Relaxed);
    }
}

/// Most ops written in one transaction, and most bytes of events. Many
/// sessions opening or closing at once queue several small rows each
/// (start, decisions, end); one commit for many of them is what keeps the
/// store up with them (SQLite syncs its file on every commit).
const BATCH_OPS: usize = 256;
const BATCH_BYTES: usize = 8 << 20;

/// Takes the ops queued right behind the first one in `ops` (without
/// waiting), up to the batch limits; returns the first message that is not
/// an op, to be handled next.
fn gather(
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    ops: &mut Vec<Op>,
    permits: &mut Vec<OwnedSemaphorePermit>,
) -> Option<Msg> {
    let mut bytes: usize = ops.iter().map(Op::weight).sum();
    while ops.len() < BATCH_OPS && bytes < BATCH_BYTES {
        match rx.try_recv() {
            Ok(Msg::Op(op, permit)) => {
                bytes += op.weight();
                ops.push(op);
                permits.push(permit);
            }
            Ok(other) => return Some(other),
            Err(_) => break,
        }
    }
    None
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Session(_) => "session",
        Op::Chunk(_) => "chunk",
        Op::Finish(..) => "finish",
        Op::Audit(_) => "audit",
    }
}
