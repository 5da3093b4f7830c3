//! One smux stream as a tokio `AsyncRead` + `AsyncWrite`: reads drain the
//! stream's receive buffer, writes queue PSH frames for the session writer,
//! shutdown sends FIN, and dropping the handle sends FIN and forgets the
//! stream.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::SmuxError;
use super::frame::{self, Cmd, HEADER_LEN};
use super::session::{Shared, WRITE_QUEUE_LIMIT};

/// A multiplexed byte stream of a [`super::Session`].
///
/// Reads return EOF once the peer's FIN arrived and the buffered data is
/// drained, and fail once the session has ended. `poll_shutdown` sends FIN
/// (our direction ends; reading keeps working) and waits until it is written.
/// Writes split data into PSH frames of at most `max_frame_size` bytes.
pub struct Stream {
    shared: Arc<Shared>,
    id: u32,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

fn session_error(kind: io::ErrorKind, reason: &SmuxError) -> io::Error {
    io::Error::new(kind, reason.clone())
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "smux stream is gone")
}

impl Stream {
    pub(super) fn new(shared: Arc<Shared>, id: u32) -> Self {
        Self { shared, id }
    }

    /// The stream id (odd when the client opened it, even for the server).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Ready once every frame queued by this stream is flushed.
    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        let Some(s) = st.streams.get(&self.id) else {
            return Poll::Ready(Err(gone()));
        };
        if s.last_seq <= st.flushed_seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(session_error(io::ErrorKind::BrokenPipe, reason)));
        }
        st.flush_waiters.register(cx.waker());
        Poll::Pending
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let max_receive = self.shared.config.max_receive_buffer;
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(gone()));
        };
        if s.recv_len > 0 {
            let mut copied = 0;
            let mut finished = 0;
            while buf.remaining() > 0 {
                let Some(front) = s.recv.front_mut() else {
                    break;
                };
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front[..n]);
                copied += n;
                if n == front.len() {
                    s.recv.pop_front();
                    finished += 1;
                } else {
                    front.advance(n);
                }
            }
            s.recv_len -= copied;
            st.release(copied, finished, max_receive);
            return Poll::Ready(Ok(()));
        }
        if s.fin_received {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(session_error(io::ErrorKind::ConnectionAborted, reason)));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let max_frame = self.shared.config.max_frame_size;
        // Reserve queue room under the lock, encode outside it.
        let (take, reserved) = {
            let mut st = self.shared.lock();
            if let Some(reason) = &st.closed {
                return Poll::Ready(Err(session_error(io::ErrorKind::BrokenPipe, reason)));
            }
            let Some(s) = st.streams.get(&self.id) else {
                return Poll::Ready(Err(gone()));
            };
            if s.fin_sent {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "smux stream write after shutdown",
                )));
            }
            if st.queued_bytes >= WRITE_QUEUE_LIMIT {
                st.write_waiters.register(cx.waker());
                return Poll::Pending;
            }
            let room = (WRITE_QUEUE_LIMIT - st.queued_bytes).max(max_frame);
            let take = buf.len().min(room);
            let reserved = take + take.div_ceil(max_frame) * HEADER_LEN;
            st.queued_bytes += reserved;
            (take, reserved)
        };
        let frames = frame::psh_frames(self.id, &buf[..take], max_frame);
        let mut st = self.shared.lock();
        if let Some(reason) = &st.closed {
            // Closing reset the queue and its counter, reservation included.
            return Poll::Ready(Err(session_error(io::ErrorKind::BrokenPipe, reason)));
        }
        debug_assert_eq!(reserved, frames.iter().map(|f| f.len()).sum::<usize>());
        let mut seq = 0;
        for f in frames {
            seq = st.push_frame(f, false);
        }
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.last_seq = seq;
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flushed(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut guard = self.shared.lock();
            let st = &mut *guard;
            let Some(s) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(gone()));
            };
            if !s.fin_sent {
                if let Some(reason) = &st.closed {
                    return Poll::Ready(Err(session_error(io::ErrorKind::BrokenPipe, reason)));
                }
                s.fin_sent = true;
                let seq = st.push_frame(frame::control(Cmd::Fin, self.id), true);
                if let Some(s) = st.streams.get_mut(&self.id) {
                    s.last_seq = seq;
                }
            }
        }
        self.poll_flushed(cx)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let max_receive = self.shared.config.max_receive_buffer;
        let mut st = self.shared.lock();
        let Some(removed) = st.streams.remove(&self.id) else {
            return;
        };
        st.release(removed.recv_len, removed.recv.len(), max_receive);
        if !removed.fin_sent && st.closed.is_none() {
            st.push_frame(frame::control(Cmd::Fin, self.id), true);
        }
        drop(st);
        drop(removed);
    }
}
