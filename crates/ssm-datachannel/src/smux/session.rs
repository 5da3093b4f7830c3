//! The smux session: the state shared by all streams and tasks (behind one
//! mutex) and the [`Session`] handle (open, accept, close).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::frame::{self, Cmd, Header};
use super::stream::Stream;
use super::{Config, SmuxError, tasks};

/// Peer-opened streams waiting for `accept_stream` before the reader pauses
/// (xtaci's accept backlog).
const ACCEPT_BACKLOG: usize = 1024;
/// Bytes of encoded frames queued for the writer before stream writes wait.
pub(super) const WRITE_QUEUE_LIMIT: usize = 256 * 1024;
/// Receive-budget charge per buffered chunk on top of its data, so that a
/// flood of tiny frames cannot grow bookkeeping memory without bound.
const CHUNK_OVERHEAD: usize = 64;
/// Frames below this size are coalesced into one transport write.
const COALESCE_BELOW: usize = 16 * 1024;
/// Largest coalesced transport write.
const COALESCE_MAX: usize = 64 * 1024;

/// A set of distinct wakers, all woken at once.
#[derive(Default)]
pub(super) struct WakerSet(Vec<Waker>);

impl WakerSet {
    pub(super) fn register(&mut self, waker: &Waker) {
        if !self.0.iter().any(|w| w.will_wake(waker)) {
            self.0.push(waker.clone());
        }
    }

    fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// One stream's state, owned by the session map until its handle drops.
#[derive(Default)]
pub(super) struct StreamState {
    /// Received data not yet read, oldest first.
    pub(super) recv: VecDeque<Bytes>,
    /// Total bytes in `recv`.
    pub(super) recv_len: usize,
    /// The peer sent FIN.
    pub(super) fin_received: bool,
    /// The task waiting to read.
    pub(super) read_waker: Option<Waker>,
    /// We queued our FIN.
    pub(super) fin_sent: bool,
    /// Sequence number of this stream's last queued frame.
    pub(super) last_seq: u64,
}

/// Everything behind the session mutex.
pub(super) struct State {
    pub(super) streams: HashMap<u32, StreamState>,
    /// Last stream id we used (the next is 2 higher).
    next_id: u32,
    accept_queue: VecDeque<u32>,
    accept_waiters: WakerSet,
    /// Receive budget in use: buffered data plus `CHUNK_OVERHEAD` per chunk.
    charged: usize,
    /// Data bytes buffered for the application.
    buffered: usize,
    peak_buffered: usize,
    reader_waker: Option<Waker>,
    pub(super) reader_paused: bool,
    pub(super) last_recv: Instant,
    /// Encoded frames for the writer, with their sequence numbers.
    queue: VecDeque<(Bytes, u64)>,
    /// Bytes queued or being written (plus reservations by stream writes).
    pub(super) queued_bytes: usize,
    next_seq: u64,
    /// Every frame up to this sequence number was written and flushed.
    pub(super) flushed_seq: u64,
    writer_waker: Option<Waker>,
    pub(super) write_waiters: WakerSet,
    pub(super) flush_waiters: WakerSet,
    pub(super) closed: Option<SmuxError>,
}

impl State {
    /// Queues a frame for the writer without checking the queue limit (used
    /// for control frames and for data whose room was reserved) and returns
    /// its sequence number. `counted` adds its size to `queued_bytes`.
    pub(super) fn push_frame(&mut self, frame: Bytes, counted: bool) -> u64 {
        self.next_seq += 1;
        if counted {
            self.queued_bytes += frame.len();
        }
        self.queue.push_back((frame, self.next_seq));
        wake(&mut self.writer_waker);
        self.next_seq
    }

    /// Returns budget after the application consumed `data` bytes and
    /// finished `chunks` chunks; resumes the reader when it fits again.
    pub(super) fn release(&mut self, data: usize, chunks: usize, max_receive: usize) {
        self.buffered = self.buffered.saturating_sub(data);
        self.charged = self.charged.saturating_sub(data + chunks * CHUNK_OVERHEAD);
        if self.can_read(max_receive) {
            wake(&mut self.reader_waker);
        }
    }

    fn can_read(&self, max_receive: usize) -> bool {
        self.charged < max_receive && self.accept_queue.len() < ACCEPT_BACKLOG
    }

    /// Applies one received frame.
    fn dispatch(&mut self, header: Header, data: Bytes) {
        let id = header.stream_id;
        match header.cmd {
            Cmd::Nop => {}
            Cmd::Syn => {
                if let Entry::Vacant(slot) = self.streams.entry(id) {
                    slot.insert(StreamState::default());
                    self.accept_queue.push_back(id);
                    self.accept_waiters.wake_all();
                }
            }
            Cmd::Fin => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.fin_received = true;
                    wake(&mut s.read_waker);
                }
            }
            Cmd::Psh => {
                let len = data.len();
                if len == 0 {
                    return;
                }
                // Data for an unknown (or already dropped) stream is discarded.
                if let Some(s) = self.streams.get_mut(&id) {
                    s.recv_len += len;
                    s.recv.push_back(data);
                    wake(&mut s.read_waker);
                    self.buffered += len;
                    self.charged += len + CHUNK_OVERHEAD;
                    self.peak_buffered = self.peak_buffered.max(self.buffered);
                }
            }
        }
    }
}

/// State shared by the session handle, its streams and its tasks.
pub(super) struct Shared {
    state: Mutex<State>,
    closed_tx: watch::Sender<Option<SmuxError>>,
    pub(super) config: Config,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the session (first reason wins) and wakes everyone waiting.
    pub(super) fn close_with(&self, reason: SmuxError) {
        let mut st = self.lock();
        if st.closed.is_some() {
            return;
        }
        st.closed = Some(reason.clone());
        st.queue.clear();
        st.queued_bytes = 0;
        // Streams nobody accepted can never be read or dropped: forget them.
        let unaccepted: Vec<u32> = st.accept_queue.drain(..).collect();
        for id in unaccepted {
            st.streams.remove(&id);
        }
        for s in st.streams.values_mut() {
            wake(&mut s.read_waker);
        }
        st.accept_waiters.wake_all();
        st.write_waiters.wake_all();
        st.flush_waiters.wake_all();
        wake(&mut st.reader_waker);
        wake(&mut st.writer_waker);
        drop(st);
        self.closed_tx.send_replace(Some(reason));
    }

    pub(super) async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        // The sender lives in `self`, so this only returns once closed.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Applies `frame` once the receive budget allows it.
    pub(super) fn poll_dispatch(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Option<(Header, Bytes)>,
    ) -> Poll<Result<(), SmuxError>> {
        let mut st = self.lock();
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(reason.clone()));
        }
        if !st.can_read(self.config.max_receive_buffer) {
            st.reader_paused = true;
            st.reader_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        st.reader_paused = false;
        st.last_recv = Instant::now();
        if let Some((header, data)) = frame.take() {
            st.dispatch(header, data);
        }
        Poll::Ready(Ok(()))
    }

    /// Takes the next frames to write into `out` (several when they are
    /// small), or asks for a flush when idle with unflushed bytes.
    pub(super) fn poll_next_write(
        &self,
        cx: &mut Context<'_>,
        dirty: bool,
        out: &mut Vec<Bytes>,
    ) -> Poll<Result<Option<u64>, SmuxError>> {
        let mut st = self.lock();
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(reason.clone()));
        }
        let Some((first, mut seq)) = st.queue.pop_front() else {
            if dirty {
                return Poll::Ready(Ok(None));
            }
            st.writer_waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let mut total = first.len();
        out.push(first);
        if total < COALESCE_BELOW {
            while let Some((next, _)) = st.queue.front() {
                if next.len() >= COALESCE_BELOW || total + next.len() > COALESCE_MAX {
                    break;
                }
                total += next.len();
                if let Some((next, next_seq)) = st.queue.pop_front() {
                    out.push(next);
                    seq = next_seq;
                }
            }
        }
        Poll::Ready(Ok(Some(seq)))
    }

    /// Records that `len` queued bytes reached the transport.
    pub(super) fn written(&self, len: usize) {
        let mut st = self.lock();
        st.queued_bytes = st.queued_bytes.saturating_sub(len);
        st.write_waiters.wake_all();
    }

    /// Records that frames up to `seq` were flushed.
    pub(super) fn flushed(&self, seq: u64) {
        let mut st = self.lock();
        st.flushed_seq = st.flushed_seq.max(seq);
        st.flush_waiters.wake_all();
    }
}

/// Counters describing a session's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    /// Streams currently known (open or half-closed, not yet dropped).
    pub streams: usize,
    /// Received data bytes buffered for the application, all streams.
    pub buffered: usize,
    /// Highest value `buffered` ever reached.
    pub peak_buffered: usize,
    /// Encoded bytes queued for (or being written to) the transport.
    pub queued: usize,
}

/// A running smux session; cheap to clone (all clones are the same session).
///
/// The session runs until [`Session::close`], a transport EOF or error, a
/// protocol error or a keepalive timeout; dropping the handles does not end
/// it. Its tasks are spawned on the current tokio runtime.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.shared.lock().closed)
            .finish()
    }
}

impl Session {
    /// Starts the client role (opens odd stream ids 3, 5, …).
    ///
    /// Must be called inside a tokio runtime.
    pub fn client<R, W>(reader: R, writer: W, config: Config) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(reader, writer, config, 1)
    }

    /// Starts the server role (opens even stream ids 2, 4, …).
    ///
    /// Must be called inside a tokio runtime.
    pub fn server<R, W>(reader: R, writer: W, config: Config) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(reader, writer, config, 0)
    }

    fn start<R, W>(reader: R, writer: W, config: Config, last_id: u32) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let config = config.normalized();
        let keepalive = config.keepalive;
        let state = State {
            streams: HashMap::new(),
            next_id: last_id,
            accept_queue: VecDeque::new(),
            accept_waiters: WakerSet::default(),
            charged: 0,
            buffered: 0,
            peak_buffered: 0,
            reader_waker: None,
            reader_paused: false,
            last_recv: Instant::now(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_seq: 0,
            flushed_seq: 0,
            writer_waker: None,
            write_waiters: WakerSet::default(),
            flush_waiters: WakerSet::default(),
            closed: None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            closed_tx: watch::Sender::new(None),
            config,
        });
        tokio::spawn(tasks::reader(Arc::clone(&shared), reader));
        tokio::spawn(tasks::writer(Arc::clone(&shared), writer));
        if let Some(ka) = keepalive {
            tokio::spawn(tasks::keepalive(Arc::clone(&shared), ka));
        }
        Self { shared }
    }

    /// Opens a stream: queues its SYN and returns at once.
    pub async fn open_stream(&self) -> Result<Stream, SmuxError> {
        let mut st = self.shared.lock();
        if let Some(reason) = &st.closed {
            return Err(reason.clone());
        }
        let mut id = st.next_id;
        loop {
            id = id.checked_add(2).ok_or(SmuxError::StreamIdsExhausted)?;
            // Skip an id the peer (wrongly) opened with our parity.
            if !st.streams.contains_key(&id) {
                break;
            }
        }
        st.next_id = id;
        let seq = st.push_frame(frame::control(Cmd::Syn, id), true);
        st.streams.insert(
            id,
            StreamState {
                last_seq: seq,
                ..StreamState::default()
            },
        );
        drop(st);
        Ok(Stream::new(Arc::clone(&self.shared), id))
    }

    /// Waits for the next stream opened by the peer; fails once the session
    /// has ended.
    pub async fn accept_stream(&self) -> Result<Stream, SmuxError> {
        let id = poll_fn(|cx| {
            let mut st = self.shared.lock();
            if let Some(reason) = &st.closed {
                return Poll::Ready(Err(reason.clone()));
            }
            if let Some(id) = st.accept_queue.pop_front() {
                if st.can_read(self.shared.config.max_receive_buffer) {
                    wake(&mut st.reader_waker);
                }
                return Poll::Ready(Ok(id));
            }
            st.accept_waiters.register(cx.waker());
            Poll::Pending
        })
        .await?;
        Ok(Stream::new(Arc::clone(&self.shared), id))
    }

    /// Ends the session: queued frames are discarded, the transport writer is
    /// shut down, and pending reads, writes and accepts fail.
    pub fn close(&self) {
        self.shared.close_with(SmuxError::Closed);
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Resolves when the session ends, with the reason.
    pub async fn closed(&self) -> SmuxError {
        self.shared.wait_closed().await;
        self.shared
            .lock()
            .closed
            .clone()
            .unwrap_or(SmuxError::Closed)
    }

    /// A snapshot of the session's buffer counters.
    pub fn stats(&self) -> SessionStats {
        let st = self.shared.lock();
        SessionStats {
            streams: st.streams.len(),
            buffered: st.buffered,
            peak_buffered: st.peak_buffered,
            queued: st.queued_bytes,
        }
    }
}
