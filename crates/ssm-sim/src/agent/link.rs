//! The simulator's side of one client WebSocket, with fault injection on
//! both directions. A session outlives its links: when the client
//! reconnects, the agent swaps in a new [`Link`].
//!
//! Writes go through a writer task of their own, as the Session Manager
//! service relays them: the agent never blocks on a client that is busy
//! writing (after a reconnect both ends resend everything unacknowledged at
//! once; two peers that each write before reading would deadlock once the
//! socket buffers are full).

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::config::FaultConfig;
use crate::faults::{Action, Faults};

/// Which way a delayed frame was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Agent → client.
    Out,
    /// Client → agent.
    In,
}

/// A frame whose delivery fault injection postponed.
pub type Delayed = (u64, Direction, Bytes);

/// One client socket plus the faults applied to it.
pub struct Link {
    ws: SplitStream<WebSocket>,
    /// Frames for the writer task.
    out: mpsc::UnboundedSender<WsMessage>,
    writer: tokio::task::JoinHandle<()>,
    /// Counts links of the session: frames delayed on an older link are
    /// discarded, as if they were lost with it.
    pub generation: u64,
    out_faults: Faults,
    in_faults: Faults,
    delayed: mpsc::UnboundedSender<Delayed>,
}

/// Writes queued messages, flushing whenever the queue runs dry.
async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<WsMessage>,
) {
    while let Some(msg) = rx.recv().await {
        let close = matches!(msg, WsMessage::Close(_));
        if sink.feed(msg).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if sink.feed(more).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() || close {
            return;
        }
    }
}

/// Something read from the socket.
pub enum Incoming {
    /// Binary frames to process (zero, one or more after faults).
    Frames(Vec<Bytes>),
    /// The socket is gone.
    Closed,
}

impl Link {
    /// Wraps a socket that already passed the open-frame check.
    pub fn new(
        ws: WebSocket,
        generation: u64,
        faults: &FaultConfig,
        delayed: mpsc::UnboundedSender<Delayed>,
    ) -> Self {
        let (sink, ws) = ws.split();
        let (out, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(sink, rx));
        Self {
            ws,
            out,
            writer,
            generation,
            out_faults: Faults::new(faults.clone(), generation.wrapping_mul(2)),
            in_faults: Faults::new(faults.clone(), generation.wrapping_mul(2) + 1),
            delayed,
        }
    }

    /// Queues a frame for the client through the outbound faults.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), axum::Error> {
        if self.out_faults.is_clean() {
            return self.send_raw(frame).await;
        }
        for action in self.out_faults.apply(frame) {
            self.act(action, Direction::Out).await?;
        }
        Ok(())
    }

    /// Queues a frame for the client, bypassing faults.
    pub async fn send_raw(&mut self, frame: Bytes) -> Result<(), axum::Error> {
        self.out
            .send(WsMessage::Binary(frame))
            .map_err(|_| axum::Error::new("the WebSocket writer has stopped"))
    }

    /// Fails once the socket cannot be written any more (the writer task
    /// flushes by itself).
    pub async fn flush(&mut self) -> Result<(), axum::Error> {
        if self.writer.is_finished() {
            return Err(axum::Error::new("the WebSocket writer has stopped"));
        }
        Ok(())
    }

    async fn act(&mut self, action: Action, direction: Direction) -> Result<(), axum::Error> {
        match action {
            Action::Send(frame) => self.send_raw(frame).await,
            Action::Delay(frame, after) => {
                let tx = self.delayed.clone();
                let generation = self.generation;
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send((generation, direction, frame));
                });
                Ok(())
            }
        }
    }

    /// Reads the next frame(s) from the client through the inbound faults.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    if self.in_faults.is_clean() {
                        return Incoming::Frames(vec![b]);
                    }
                    let mut now = Vec::new();
                    for action in self.in_faults.apply(b) {
                        match action {
                            Action::Send(f) => now.push(f),
                            Action::Delay(f, d) => {
                                let _ = self.act(Action::Delay(f, d), Direction::In).await;
                            }
                        }
                    }
                    return Incoming::Frames(now);
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return Incoming::Closed,
                // Text after the open frame, pings and pongs: nothing to do.
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Frames held back for reordering, released on a timer tick so that a
    /// quiet stream does not keep them forever.
    pub async fn release_held(&mut self) -> Result<Vec<Bytes>, axum::Error> {
        if let Some(frame) = self.out_faults.release_held() {
            self.send_raw(frame).await?;
        }
        Ok(self.in_faults.release_held().into_iter().collect())
    }

    /// Whether fault injection holds a frame back (released on a tick).
    pub fn holds_frames(&self) -> bool {
        self.out_faults.holds() || self.in_faults.holds()
    }

    /// True when fault injection wants this (first) socket cut now.
    pub fn should_cut(&self) -> bool {
        self.generation == 0
            && (self.out_faults.should_cut(true) || self.in_faults.should_cut(true))
    }

    /// Closes politely: what is queued goes out, then a close frame.
    pub async fn close(mut self) {
        let _ = self.out.send(WsMessage::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.writer).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A link dropped without close (cut, replaced) stops writing at once.
        self.writer.abort();
    }
}
