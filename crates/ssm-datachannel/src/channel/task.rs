//! The task that owns one data channel's WebSocket and reliable-stream
//! state: it turns commands into numbered messages, frames into events,
//! retransmits, and reconnects through ResumeSession.
//!
//! Writes never block the task: they go to the link's writer task (see
//! [`super::link`]), so reading goes on while bulk resends are sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use super::link::Link;
use super::{ChannelConfig, CloseReason, Command, DataChannelError, Event, SessionInfo, backoff};
use crate::handshake;
use crate::message::{Message, MessageType, PayloadType};
use crate::payloads::{
    Acknowledge, ChannelClosed, Flag, HandshakeComplete, HandshakeRequest, parse_exit_code,
};
use crate::reliable::{RESEND_TICK, Reliable};
use crate::transport;

/// How long a local close waits for outstanding acknowledgements.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// WebSocket ping period (the plugin pings every 5 minutes).
const PING_INTERVAL: Duration = Duration::from_secs(60);
/// Commands taken per wake-up before the loop looks at the socket again.
const BATCH: usize = 64;
/// Undelivered events beyond which new data is refused (not acknowledged).
const BACKLOG: usize = 64;

/// Signals that the task must stop, with the reason to report.
struct Stop(CloseReason);

impl From<DataChannelError> for Stop {
    fn from(e: DataChannelError) -> Self {
        Stop(CloseReason::Error(e))
    }
}

pub(super) struct ChannelTask {
    pub(super) config: ChannelConfig,
    pub(super) client_id: Uuid,
    pub(super) reliable: Reliable,
    pub(super) ws: Link,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) window: Arc<Semaphore>,
    /// Input may flow (no handshake, or HandshakeComplete seen).
    pub(super) ready: bool,
    pub(super) info: SessionInfo,
    /// Set by a local close: the deadline for draining acks.
    pub(super) closing: Option<Instant>,
    /// Events not yet taken by the consumer. While it is long, new data is
    /// refused unacknowledged and the agent retransmits it later: the
    /// protocol's own "not ready" backpressure, which never blocks this task.
    pub(super) backlog: VecDeque<Event>,
}

impl ChannelTask {
    pub(super) async fn run(mut self) {
        let reason = match self.run_loop().await {
            Ok(()) => CloseReason::Local,
            Err(Stop(reason)) => reason,
        };
        if let CloseReason::Error(e) = &reason {
            tracing::warn!(session = %self.config.session_id, error = %e, "data channel ended");
        }
        self.window.close();
        self.ws.close().await;
        self.backlog.push_back(Event::Closed(reason));
        while let Some(event) = self.backlog.pop_front() {
            if self.events.send(event).await.is_err() {
                break;
            }
        }
    }

    async fn run_loop(&mut self) -> Result<(), Stop> {
        if self.ready {
            self.emit(Event::Ready(Box::new(self.info.clone())));
        }
        let mut tick = tokio::time::interval(RESEND_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(deadline) = self.closing
                && (self.reliable.unacked() == 0 || Instant::now() >= deadline)
            {
                return Ok(());
            }
            let accept_commands = self.ready && self.closing.is_none();
            let events = self.events.clone();
            tokio::select! {
                permit = events.reserve(), if !self.backlog.is_empty() => {
                    let Ok(permit) = permit else {
                        // The consumer is gone: nobody will read more events.
                        self.backlog.clear();
                        continue;
                    };
                    if let Some(event) = self.backlog.pop_front() {
                        permit.send(event);
                    }
                    while !self.backlog.is_empty() {
                        let Ok(permit) = events.try_reserve() else { break };
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                }
                frame = self.ws.next() => match frame {
                    Some(Ok(WsMessage::Binary(b))) => self.on_frame(b).await?,
                    Some(Ok(WsMessage::Text(t))) => self.on_frame(Bytes::from(t)).await?,
                    Some(Ok(WsMessage::Close(_))) => self.reconnect("the service closed the WebSocket".into()).await?,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => self.reconnect(e.to_string()).await?,
                    None => self.reconnect("the WebSocket ended".into()).await?,
                },
                cmd = self.commands.recv(), if accept_commands => {
                    self.on_command(cmd).await?;
                    for _ in 1..BATCH {
                        match self.commands.try_recv() {
                            Ok(cmd) => self.on_command(Some(cmd)).await?,
                            Err(_) => break,
                        }
                    }
                }
                // Armed only while something is unacknowledged: an idle
                // channel does not wake ten times a second.
                _ = tick.tick(), if self.reliable.unacked() > 0 => {
                    let due = self.reliable.due_retransmissions(Instant::now()).map_err(DataChannelError::from)?;
                    for frame in due {
                        self.feed(frame).await?;
                    }
                }
                _ = ping.tick() => {
                    let ping = WsMessage::Ping(Bytes::from_static(b"keepalive"));
                    if let Err(e) = self.ws.send(ping) {
                        self.reconnect(e).await?;
                    }
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Option<Command>) -> Result<(), Stop> {
        match cmd {
            Some(Command::Send {
                payload_type,
                payload,
            }) => self.send_data(payload_type, payload).await,
            Some(Command::Close) | None => {
                self.closing = Some(Instant::now() + CLOSE_DRAIN);
                Ok(())
            }
        }
    }

    async fn send_data(&mut self, payload_type: PayloadType, payload: Bytes) -> Result<(), Stop> {
        // Buffer first, send second: once numbered, a message is kept until
        // acknowledged, whatever happens to this write.
        let frame = self
            .reliable
            .prepare(payload_type, payload, Instant::now())
            .map_err(|e| DataChannelError::Protocol(e.to_string()))?;
        self.feed(frame).await
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), Stop> {
        if let Err(e) = self.ws.send(WsMessage::Binary(frame)) {
            self.reconnect(e).await?;
        }
        Ok(())
    }

    fn emit(&mut self, event: Event) {
        self.backlog.push_back(event);
    }

    async fn on_frame(&mut self, frame: Bytes) -> Result<(), Stop> {
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session = %self.config.session_id, error = %e, "dropping an invalid data-channel message");
                return Ok(());
            }
        };
        match msg.message_type {
            MessageType::OutputStreamData => {
                let accept = self.backlog.len() < BACKLOG;
                let received = self
                    .reliable
                    .on_stream_data(msg, accept)
                    .map_err(|e| DataChannelError::Protocol(e.to_string()))?;
                if let Some(ack) = received.ack {
                    self.feed(ack).await?;
                }
                for m in received.deliver {
                    self.deliver(m).await?;
                }
            }
            MessageType::Acknowledge => match serde_json::from_slice::<Acknowledge>(&msg.payload) {
                Ok(ack) => {
                    if self.reliable.on_ack(&ack, Instant::now()) {
                        self.window.add_permits(1);
                    }
                }
                Err(e) => {
                    tracing::warn!(session = %self.config.session_id, error = %e, "ignoring a malformed acknowledge")
                }
            },
            MessageType::ChannelClosed => {
                let output = serde_json::from_slice::<ChannelClosed>(&msg.payload)
                    .map(|c| c.output)
                    .unwrap_or_default();
                return Err(Stop(CloseReason::ChannelClosed { output }));
            }
            MessageType::StartPublication | MessageType::PausePublication => {
                tracing::debug!(session = %self.config.session_id, kind = msg.message_type.as_str(), "publication notice");
            }
            other => {
                tracing::debug!(session = %self.config.session_id, kind = other.as_str(), "ignoring a message of unexpected type");
            }
        }
        Ok(())
    }

    async fn deliver(&mut self, m: Message) -> Result<(), Stop> {
        match m.payload_type {
            PayloadType::HandshakeRequest => self.on_handshake_request(&m.payload).await,
            PayloadType::HandshakeComplete => {
                let done: HandshakeComplete = serde_json::from_slice(&m.payload).map_err(|e| {
                    DataChannelError::Protocol(format!("bad HandshakeComplete: {e}"))
                })?;
                self.info.customer_message = done.customer_message;
                if !self.ready {
                    self.ready = true;
                    self.emit(Event::Ready(Box::new(self.info.clone())));
                }
                Ok(())
            }
            PayloadType::EncChallengeRequest => Err(DataChannelError::KmsUnsupported.into()),
            PayloadType::Output => {
                self.emit(Event::Output(m.payload));
                Ok(())
            }
            PayloadType::StdErr => {
                self.emit(Event::StdErr(m.payload));
                Ok(())
            }
            PayloadType::ExitCode => {
                let event = match parse_exit_code(&m.payload) {
                    Some(code) => Event::ExitCode(code),
                    None => Event::StdErr(m.payload),
                };
                self.emit(event);
                Ok(())
            }
            PayloadType::Flag => {
                if let Some(flag) = Flag::from_payload(&m.payload) {
                    self.emit(Event::Flag(flag));
                }
                Ok(())
            }
            other => {
                tracing::debug!(session = %self.config.session_id, payload_type = other.to_u32(), "ignoring payload");
                Ok(())
            }
        }
    }

    async fn on_handshake_request(&mut self, payload: &[u8]) -> Result<(), Stop> {
        let req: HandshakeRequest = serde_json::from_slice(payload)
            .map_err(|e| DataChannelError::Protocol(format!("bad HandshakeRequest: {e}")))?;
        let answer = handshake::answer(&req);
        self.info.agent_version = Some(req.agent_version.clone());
        if let Some(session_type) = answer.session_type {
            self.info.session_type = Some(session_type);
            self.info.properties = answer.properties;
        }
        let json = serde_json::to_vec(&answer.response)
            .map_err(|e| DataChannelError::Protocol(e.to_string()))?;
        self.send_data(PayloadType::HandshakeResponse, Bytes::from(json))
            .await?;
        if answer.kms_requested {
            return Err(DataChannelError::KmsUnsupported.into());
        }
        Ok(())
    }

    /// Re-opens the socket after it failed: ResumeSession for a new token,
    /// the same StreamUrl, a new open frame; then everything unacknowledged
    /// is sent again. Sequence numbers and buffers carry over.
    ///
    /// Boxed: the WebSocket and TLS connect is by far the largest step of
    /// the task, and an async fn's future is as large as its largest step
    /// for its whole life; every idle session would carry it otherwise.
    fn reconnect(
        &mut self,
        cause: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Stop>> + Send + '_>> {
        Box::pin(self.reconnect_now(cause))
    }

    async fn reconnect_now(&mut self, cause: String) -> Result<(), Stop> {
        if self.closing.is_some() {
            return Err(Stop(CloseReason::Local));
        }
        let Some(resumer) = self.config.resumer.clone() else {
            return Err(DataChannelError::ConnectionLost(cause).into());
        };
        tracing::info!(session = %self.config.session_id, cause = %cause, "data channel dropped; resuming");
        let policy = self.config.reconnect.clone();
        let mut last = cause;
        for attempt in 0..policy.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff(&policy, attempt)).await;
            }
            let token = match resumer.resume(&self.config.session_id).await {
                Ok(Some(token)) => token,
                Ok(None) => {
                    return Err(
                        DataChannelError::SessionExpired(self.config.session_id.clone()).into(),
                    );
                }
                Err(e) => {
                    last = format!("ResumeSession failed: {e}");
                    continue;
                }
            };
            match transport::connect(&self.config.stream_url, &token, self.client_id).await {
                Ok(ws) => {
                    self.ws = Link::new(ws);
                    self.config.token = token;
                    // Everything unacknowledged goes again; a failed write
                    // shows at the next send, which reconnects once more.
                    for frame in self.reliable.resend_all(Instant::now()) {
                        if self.ws.send(WsMessage::Binary(frame)).is_err() {
                            break;
                        }
                    }
                    self.emit(Event::Reconnected {
                        attempts: attempt + 1,
                    });
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(DataChannelError::ReconnectFailed {
            attempts: policy.attempts.max(1),
            last,
        }
        .into())
    }
}
