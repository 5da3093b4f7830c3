//! [`SessionTap`]: what one session's pipes record through. It stamps each
//! event with its offset from the session start, batches events into
//! chunks (sealed into the hash chain when a chunk is big enough or a
//! second old), counts bytes both ways, and at the end records how the
//! session ended with the final chain head and chunk count (the recorder
//! seals chunks and the end as they are queued).
//!
//! Content (terminal input and output) is only kept when the session is
//! recorded in full; exits, resizes, forwarded connections and byte counts
//! are always kept.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use super::chain::ChainWriter;
use super::op::Op;
use super::recorder::Recorder;
use super::records::{AuditKind, EndReason, Event, EventKind, SessionEnd, now};

/// A chunk is sealed once its events carry this many bytes...
const CHUNK_BYTES: usize = 128 << 10;
/// ...or hold this many events...
const CHUNK_EVENTS: usize = 4096;
/// ...or its first event is this old.
const CHUNK_AGE: Duration = Duration::from_secs(1);

struct Pending {
    chain: ChainWriter,
    events: Vec<Event>,
    bytes: usize,
    first_at: Option<Instant>,
}

pub(crate) struct Inner {
    recorder: Recorder,
    id: Uuid,
    user: String,
    source_ip: IpAddr,
    content: bool,
    started: Instant,
    pending: Mutex<Pending>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    next_conn: AtomicU64,
    finished: AtomicBool,
    /// Its metrics (opened, live, bytes, ended).
    metrics: crate::ops::metrics::SessionMetrics,
    /// Woken when a chunk starts (its first event): the age timer runs
    /// only then, so an idle session costs no wake-ups.
    started_chunk: Arc<Notify>,
}

/// Records one session's events. Finish it with [`SessionTap::finish`];
/// a tap dropped unfinished records the session as ended by an error.
pub struct SessionTap {
    inner: Arc<Inner>,
    ticker: tokio::task::JoinHandle<()>,
}

impl SessionTap {
    pub(crate) fn new(
        recorder: Recorder,
        id: Uuid,
        user: String,
        source_ip: IpAddr,
        content: bool,
        kind: super::records::SessionKind,
    ) -> Self {
        let inner = Arc::new(Inner {
            recorder: recorder.clone(),
            id,
            user,
            source_ip,
            content,
            started: Instant::now(),
            pending: Mutex::new(Pending {
                chain: ChainWriter::new(id),
                events: Vec::new(),
                bytes: 0,
                first_at: None,
            }),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            next_conn: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            metrics: crate::ops::metrics::SessionMetrics::opened(kind),
            started_chunk: Arc::new(Notify::new()),
        });
        recorder.register(id, Arc::downgrade(&inner));
        let weak = Arc::downgrade(&inner);
        let started_chunk = inner.started_chunk.clone();
        // Seals a chunk once its first event is CHUNK_AGE old. It sleeps
        // until a chunk starts (a permit waits if one started meanwhile),
        // so thousands of idle sessions cost no timer wake-ups.
        let ticker = tokio::spawn(async move {
            loop {
                started_chunk.notified().await;
                tokio::time::sleep(CHUNK_AGE).await;
                let Some(inner) = weak.upgrade() else { return };
                inner
                    .seal_if(|p| p.first_at.is_some_and(|t| t.elapsed() >= CHUNK_AGE))
                    .await;
                // A chunk started during the sleep but is not old yet:
                // time it again.
                if inner.pending.lock().await.first_at.is_some() {
                    inner.started_chunk.notify_one();
                }
            }
        });
        Self { inner, ticker }
    }

    /// The gateway session id.
    pub fn id(&self) -> Uuid {
        self.inner.id
    }

    /// True when terminal content is recorded.
    pub fn records_content(&self) -> bool {
        self.inner.content
    }

    /// Bytes the target sent to the client.
    pub async fn output(&self, data: &Bytes) {
        self.inner
            .bytes_out
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.inner.metrics.bytes_out(data.len() as u64);
        if self.inner.content {
            self.inner.push(EventKind::Output, data.clone()).await;
        }
    }

    /// Bytes the client sent to the target.
    pub async fn input(&self, data: &Bytes) {
        self.inner
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.inner.metrics.bytes_in(data.len() as u64);
        if self.inner.content {
            self.inner.push(EventKind::Input, data.clone()).await;
        }
    }

    /// Counts bytes that are recorded some other way (an sftp session's
    /// packets, recorded as file operations): client → target, and back.
    pub fn count(&self, bytes_in: u64, bytes_out: u64) {
        self.inner.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.inner.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.inner.metrics.bytes(bytes_in, bytes_out);
    }

    /// The terminal was resized.
    pub async fn resize(&self, cols: u32, rows: u32) {
        let cols = u16::try_from(cols).unwrap_or(u16::MAX);
        let rows = u16::try_from(rows).unwrap_or(u16::MAX);
        self.inner
            .push(EventKind::Resize { cols, rows }, Bytes::new())
            .await;
    }

    /// The remote shell or command exited with `code`.
    pub async fn exit(&self, code: i32) {
        self.inner
            .push(EventKind::Exit { code }, Bytes::new())
            .await;
    }

    /// A file operation (sftp); recorded with the content.
    pub async fn file(&self, operation: &serde_json::Value) {
        if self.records_content() {
            let json = Bytes::from(operation.to_string());
            self.inner.push(EventKind::File, json).await;
        }
    }

    /// The recorder this tap writes to (for audit events of the session).
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// Records that a forwarded connection opened; its number.
    pub async fn conn_open(&self) -> u64 {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        self.inner
            .push(EventKind::ConnOpen { id }, Bytes::new())
            .await;
        id
    }

    /// A forwarded connection closed after carrying these bytes.
    pub async fn conn_close(&self, id: u64, bytes_in: u64, bytes_out: u64) {
        self.inner.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.inner.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.inner.metrics.bytes(bytes_in, bytes_out);
        self.inner
            .push(
                EventKind::ConnClose {
                    id,
                    bytes_in,
                    bytes_out,
                },
                Bytes::new(),
            )
            .await;
    }

    /// Bytes (client → target, target → client) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.inner.bytes_in.load(Ordering::Relaxed),
            self.inner.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Seals what is pending, records the end with the chain head, and
    /// audits it.
    pub async fn finish(self, reason: EndReason, exit_status: Option<i32>) {
        self.finish_caused(reason, exit_status, None).await;
    }

    /// [`finish`](Self::finish), with the cause when the gateway itself
    /// ended the session (`shutdown`, `killed by …`), recorded and sealed
    /// with the end.
    pub async fn finish_caused(
        self,
        reason: EndReason,
        exit_status: Option<i32>,
        cause: Option<String>,
    ) {
        self.ticker.abort();
        self.inner.finish(reason, exit_status, cause).await;
    }
}

impl Drop for SessionTap {
    fn drop(&mut self) {
        self.ticker.abort();
        if self.inner.finished.load(Ordering::SeqCst) {
            return;
        }
        // Dropped without finish (the task was cancelled): still record an
        // end, so no session stays "live" forever.
        let inner = self.inner.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { inner.finish(EndReason::Error, None, None).await });
        }
    }
}

impl Inner {
    async fn push(&self, kind: EventKind, data: Bytes) {
        let offset_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut p = self.pending.lock().await;
        if self.finished.load(Ordering::SeqCst) {
            return;
        }
        p.bytes += data.len();
        if p.first_at.is_none() {
            p.first_at = Some(Instant::now());
            self.started_chunk.notify_one();
        }
        p.events.push(Event {
            offset_ms,
            kind,
            data,
        });
        if p.bytes >= CHUNK_BYTES || p.events.len() >= CHUNK_EVENTS {
            self.seal(&mut p).await;
        }
    }

    async fn seal_if(&self, due: impl Fn(&Pending) -> bool) {
        let mut p = self.pending.lock().await;
        if !self.finished.load(Ordering::SeqCst) && due(&p) {
            self.seal(&mut p).await;
        }
    }

    /// Seals the pending events into the next chunk and queues it (under
    /// the lock, so chunks are queued in chain order).
    async fn seal(&self, p: &mut Pending) {
        if p.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut p.events);
        p.bytes = 0;
        p.first_at = None;
        let chunk = p.chain.seal(now(), events);
        self.recorder.submit(Op::Chunk(chunk)).await;
    }

    /// Records the end (once; later calls do nothing).
    pub(crate) async fn finish(
        &self,
        reason: EndReason,
        exit_status: Option<i32>,
        cause: Option<String>,
    ) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        self.recorder.unregister(self.id);
        self.metrics.ended(reason);
        let mut p = self.pending.lock().await;
        self.seal(&mut p).await;
        let end = SessionEnd {
            ended_at: now(),
            reason,
            exit_status,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            chain_head: p.chain.head(),
            chunk_count: u64::try_from(p.chain.next_seq()).ok(),
            seal: None,
            cause,
        };
        let detail = serde_json::json!({
            "reason": reason.as_str(),
            "cause": end.cause,
            "exit_status": exit_status,
            "bytes_in": end.bytes_in,
            "bytes_out": end.bytes_out,
            "chunks": p.chain.next_seq(),
        });
        // The audit event goes first: once the row shows the end, its
        // audit event is stored too (ops are written in order).
        self.recorder
            .audit(
                AuditKind::SessionEnd,
                Some(&self.user),
                Some(self.id),
                Some(self.source_ip),
                detail,
            )
            .await;
        self.recorder.submit(Op::Finish(self.id, end)).await;
        drop(p);
    }
}
