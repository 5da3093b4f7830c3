//! A data channel as a plain byte stream (`AsyncRead + AsyncWrite`), for
//! port sessions: what is written goes out as Output payloads, Output
//! received comes back as bytes. Used for smux and for simple pipes.
//!
//! Two pump tasks join the channel to one end of an in-memory duplex; the
//! caller gets the other end. The read side ends (EOF) when the channel
//! closes; [`ByteStream::closed`] tells why.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

use super::channel::{CloseReason, DataChannel, Event, Events};
use super::reliable::CHUNK;

/// Buffer of the in-memory pipe between the caller and the pumps.
const PIPE: usize = 256 * 1024;

/// A channel seen as bytes.
pub struct ByteStream {
    /// Read what the agent sends, write what it should receive.
    pub stream: DuplexStream,
    /// Resolves with the reason once the channel has closed.
    pub closed: oneshot::Receiver<CloseReason>,
}

/// Turns an open (and ready) channel into a byte stream.
pub fn byte_stream(channel: DataChannel, mut events: Events) -> ByteStream {
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let reason = loop {
            match events.recv().await {
                Some(Event::Output(data)) => {
                    if wr.write_all(&data).await.is_err() {
                        // The caller dropped its end: keep draining events so
                        // the channel's task can finish.
                        continue;
                    }
                }
                Some(Event::Closed(reason)) => break reason,
                Some(_) => {}
                None => break CloseReason::Local,
            }
        };
        let _ = wr.shutdown().await;
        let _ = closed_tx.send(reason);
    });
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match rd.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {
                    if channel.write(buf.split().freeze()).await.is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    ByteStream {
        stream: theirs,
        closed: closed_rx,
    }
}
