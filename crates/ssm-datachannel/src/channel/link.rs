//! The channel task's WebSocket, split in two: the task reads, and a writer
//! task of its own writes (flushing whenever its queue runs dry). The task
//! therefore never blocks on a peer that is itself busy writing — after a
//! reconnect both ends resend everything unacknowledged at once, and two
//! peers that each write before they read deadlock once the socket buffers
//! are full. The queue is bounded by the reliable layer: only unacknowledged
//! messages (at most the send window) and their retransmissions enter it.

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::transport::Ws;

/// How long a close waits for queued frames and the close frame to go out.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) struct Link {
    read: SplitStream<Ws>,
    write: mpsc::UnboundedSender<WsMessage>,
    writer: JoinHandle<()>,
}

impl Link {
    /// Splits `ws` and starts its writer.
    pub(super) fn new(ws: Ws) -> Self {
        let (mut sink, read) = ws.split();
        let (write, mut rx) = mpsc::unbounded_channel::<WsMessage>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let close = matches!(msg, WsMessage::Close(_));
                if sink.feed(msg).await.is_err() {
                    return;
                }
                // Let the channel task queue what it has ready (acks of a
                // burst of frames) so that one flush carries it all.
                tokio::task::yield_now().await;
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(more).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() || close {
                    return;
                }
            }
        });
        Self {
            read,
            write,
            writer,
        }
    }

    /// Queues a message; an error once the socket can no longer be written.
    pub(super) fn send(&self, msg: WsMessage) -> Result<(), String> {
        if self.writer.is_finished() {
            return Err("the WebSocket can no longer be written".into());
        }
        self.write
            .send(msg)
            .map_err(|_| "the WebSocket can no longer be written".to_owned())
    }

    /// The next message from the peer.
    pub(super) async fn next(&mut self) -> Option<Result<WsMessage, WsError>> {
        self.read.next().await
    }

    /// Sends what is queued, then a close frame, waiting briefly.
    pub(super) async fn close(&mut self) {
        let _ = self.write.send(WsMessage::Close(None));
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut self.writer).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A link replaced after a drop stops writing at once.
        self.writer.abort();
    }
}
