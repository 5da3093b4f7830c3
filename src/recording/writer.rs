//! The writer task: the only place that writes the recorder's ops to the
//! store, one at a time and in the order they were queued.
//!
//! It runs in one of two modes:
//! - **direct**: each op goes straight to the store;
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
        loop {
            if !spooling {
                let Some(msg) = rx.recv().await else { break };
                match msg {
                    Msg::Op(op, permit) => {
                        let backlog = self.state.queued.load(Ordering::Relaxed);
                        if backlog > self.spool_threshold {
                            tracing::warn!(
                                queued_bytes = backlog,
                                "the recording store is slower than the sessions; spooling to disk"
                            );
                            spooling = self.spool_op(&op).await;
                        } else {
                            spooling = self.write_direct(&op).await;
                        }
                        self.release(permit);
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
                msg = rx.recv() => match msg {
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
                _ = tokio::time::sleep_until(next_try) => {
                    if let Err(e) = self.spool.sync().await {
                        tracing::error!(error = %e, "cannot sync the recording spool");
                    }
                    let progressed = self.replay_slice().await;
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
            }
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

    /// Writes one op; true when it had to be spooled (switch to spooling).
    async fn write_direct(&mut self, op: &Op) -> bool {
        match self.write(op).await {
            Ok(()) => false,
            Err(e) if e.is_unavailable() => {
                self.state.healthy.store(false, Ordering::SeqCst);
                tracing::error!(error = %e, "recording store unavailable; spooling to disk, new sessions are refused until it is back");
                self.spool_op(op).await
            }
            Err(e) => {
                self.refused(op, &e);
                false
            }
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
    /// slice; true when at least one op was replayed.
    async fn replay_slice(&mut self) -> bool {
        let ping = tokio::time::timeout(self.timing.write_timeout, self.store.ping()).await;
        if !matches!(ping, Ok(Ok(()))) {
            self.state.healthy.store(false, Ordering::SeqCst);
            return false;
        }
        self.state.healthy.store(true, Ordering::SeqCst);
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
            match self.write(&op).await {
                Ok(()) => {}
                Err(e) if e.is_unavailable() => {
                    self.state.healthy.store(false, Ordering::SeqCst);
                    break;
                }
                Err(e) => self.refused(&op, &e),
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
            if self.spool.is_empty() || !self.replay_slice().await {
                break;
            }
        }
    }

    fn refused(&self, op: &Op, e: &StoreError) {
        self.state.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, session = ?op.session_id(), op = op_name(op), "the recording store refused a write");
    }

    fn release(&self, permit: OwnedSemaphorePermit) {
        let n = u64::from(permit.num_permits() as u32);
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
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Session(_) => "session",
        Op::Chunk(_) => "chunk",
        Op::Finish(..) => "finish",
        Op::Audit(_) => "audit",
    }
}
