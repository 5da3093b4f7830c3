//! The session's background tasks: the reader (transport → frames → stream
//! buffers, paused by the receive budget), the writer (frame queue →
//! transport, coalescing small frames) and the optional keepalive.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

use super::frame::{self, Cmd};
use super::session::{Shared, WRITE_QUEUE_LIMIT};
use super::{Keepalive, SmuxError};
use crate::read_size::ReadSize;

/// Most spare room kept in the transport read buffer (it starts at 1 KiB
/// and grows while reads fill it: see [`ReadSize`]).
const READ_CHUNK: usize = 64 * 1024;
/// Flush the transport at least this often under sustained load.
const FLUSH_EVERY: usize = 256 * 1024;
/// How long the writer task waits for the transport to shut down at the end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The reader task: runs until the transport or the peer fails, or the
/// session is closed.
pub(super) async fn reader<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut reader: R) {
    let reason = tokio::select! {
        reason = read_loop(&shared, &mut reader) => reason,
        () = shared.wait_closed() => return,
    };
    tracing::debug!(%reason, "smux session ended by the reader");
    shared.close_with(reason);
}

/// Reads and applies frames until the transport or the peer fails.
async fn read_loop<R: AsyncRead + Unpin>(shared: &Shared, reader: &mut R) -> SmuxError {
    let mut size = ReadSize::up_to(READ_CHUNK);
    let mut buf = BytesMut::new();
    loop {
        loop {
            let mut frame = match frame::decode(&mut buf) {
                Ok(Some(frame)) => Some(frame),
                Ok(None) => break,
                Err(e) => return e,
            };
            if let Err(reason) = poll_fn(|cx| shared.poll_dispatch(cx, &mut frame)).await {
                return reason;
            }
        }
        buf.reserve(size.get());
        match reader.read_buf(&mut buf).await {
            Ok(0) => return SmuxError::TransportEof,
            Ok(n) => size.read(n),
            Err(e) => return SmuxError::from_io(&e),
        }
    }
}

/// The writer task: runs until the transport fails or the session is closed,
/// then shuts the transport writer down.
pub(super) async fn writer<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut writer: W) {
    let failure = tokio::select! {
        reason = write_loop(&shared, &mut writer) => Some(reason),
        () = shared.wait_closed() => None,
    };
    if let Some(reason) = failure {
        tracing::debug!(%reason, "smux session ended by the writer");
        shared.close_with(reason);
    }
    // Let the peer see EOF; a stuck transport must not keep the task alive.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, writer.shutdown()).await;
}

/// Writes queued frames until the session ends or the transport fails.
async fn write_loop<W: AsyncWrite + Unpin>(shared: &Shared, writer: &mut W) -> SmuxError {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut batch = BytesMut::new();
    let mut unflushed = 0usize;
    let mut last_seq = 0u64;
    loop {
        frames.clear();
        let next = match poll_fn(|cx| shared.poll_next_write(cx, unflushed > 0, &mut frames)).await
        {
            Ok(next) => next,
            Err(reason) => return reason,
        };
        if let Some(seq) = next {
            let result = match frames.as_slice() {
                [one] => writer.write_all(one).await,
                many => {
                    batch.clear();
                    for f in many {
                        batch.extend_from_slice(f);
                    }
                    writer.write_all(&batch).await
                }
            };
            if let Err(e) = result {
                return SmuxError::from_io(&e);
            }
            let len: usize = frames.iter().map(Bytes::len).sum();
            shared.written(len);
            last_seq = seq;
            unflushed += len;
            if unflushed < FLUSH_EVERY {
                continue;
            }
        }
        if let Err(e) = writer.flush().await {
            return SmuxError::from_io(&e);
        }
        unflushed = 0;
        shared.flushed(last_seq);
    }
}

/// The keepalive task: pings and ends the session when the peer fell silent.
pub(super) async fn keepalive(shared: Arc<Shared>, ka: Keepalive) {
    tokio::select! {
        reason = keepalive_loop(&shared, ka) => {
            tracing::debug!(%reason, "smux session ended by keepalive");
            shared.close_with(reason);
        }
        () = shared.wait_closed() => {}
    }
}

/// Sends NOPs and watches for silence; returns when the peer fell silent.
async fn keepalive_loop(shared: &Shared, ka: Keepalive) -> SmuxError {
    let mut next_ping = Instant::now() + ka.interval;
    let mut deadline = Instant::now() + ka.timeout;
    loop {
        tokio::select! {
            () = sleep_until(next_ping) => {
                let mut st = shared.lock();
                // A full queue means data is flowing; skip this ping.
                if st.closed.is_none() && st.queued_bytes < WRITE_QUEUE_LIMIT {
                    st.push_frame(frame::control(Cmd::Nop, 0), true);
                }
                next_ping = (next_ping + ka.interval).max(Instant::now());
            }
            () = sleep_until(deadline) => {
                let st = shared.lock();
                let now = Instant::now();
                if st.reader_paused {
                    // Not reading because of backpressure: not the peer's fault.
                    deadline = now + ka.timeout;
                } else if st.last_recv + ka.timeout <= now {
                    return SmuxError::KeepaliveTimeout(ka.timeout);
                } else {
                    deadline = st.last_recv + ka.timeout;
                }
            }
        }
    }
}
