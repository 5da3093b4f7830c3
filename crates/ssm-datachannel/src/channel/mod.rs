//! One open data channel, client side: the public async API
//! ([`open`] → [`DataChannel`] + [`Events`]) and the task that owns the
//! WebSocket.
//!
//! The task is the single owner of the socket and the [`Reliable`] state.
//! Writers talk to it through a bounded command queue and a window semaphore
//! (one permit per unacknowledged message), so a slow or absent peer holds
//! writers back instead of growing memory or dropping data. Received data
//! goes out through a bounded event queue: consumers must drain [`Events`]
//! concurrently with writing, or the channel stalls by design.

mod link;
mod task;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use super::message::PayloadType;
use super::payloads::{Flag, Size};
use super::reliable::{CHUNK, Limits, PeerGone, Reliable, Role};
use super::transport;
use crate::secret::Secret;

/// What kind of session the document starts; decides whether a handshake
/// precedes data and how input is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Standard_Stream or InteractiveCommands: no handshake, PTY semantics.
    Shell,
    /// NonInteractiveCommands: handshake, then stdout/stderr/exit code.
    Exec,
    /// Port: handshake, then raw bytes (no newline rewriting).
    Port,
}

/// Why a [`Resumer`] could not get a token: the caller's own error type
/// (an SSM API error), boxed, since this crate makes no API calls.
pub type ResumeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Obtains a fresh token after the WebSocket dropped (SSM ResumeSession).
#[async_trait::async_trait]
pub trait Resumer: Send + Sync {
    /// A new token, or `None` when the session is over (no TokenValue).
    async fn resume(&self, session_id: &str) -> Result<Option<Secret>, ResumeError>;
}

/// Retries after the WebSocket dropped.
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    /// Attempts in total, including the first.
    pub attempts: u32,
    /// Delay before retry k is `base · 2^k` with jitter in [base, 2·base).
    pub base_delay: Duration,
    /// Delays above this restart the doubling.
    pub max_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Everything needed to open a channel.
pub struct ChannelConfig {
    /// `StreamUrl` from StartSession, used as is.
    pub stream_url: String,
    /// `TokenValue` from StartSession.
    pub token: Secret,
    /// `SessionId` from StartSession.
    pub session_id: String,
    /// What the document starts.
    pub kind: SessionKind,
    /// Called for a fresh token when the socket drops; without it a dropped
    /// socket ends the session.
    pub resumer: Option<Arc<dyn Resumer>>,
    /// Reconnection retries.
    pub reconnect: ReconnectPolicy,
    /// Unacknowledged messages allowed in flight before writers wait.
    pub window: usize,
    /// Reorder-buffer and retransmission limits.
    pub limits: Limits,
    /// Capacity of the event queue.
    pub event_queue: usize,
    /// Largest input payload per message: 1024 like the plugin; larger
    /// values are for measuring our own overhead.
    pub max_payload: usize,
}

impl ChannelConfig {
    /// Defaults for everything but the session's identity.
    pub fn new(stream_url: String, token: Secret, session_id: String, kind: SessionKind) -> Self {
        Self {
            stream_url,
            token,
            session_id,
            kind,
            resumer: None,
            reconnect: ReconnectPolicy::default(),
            window: 4096,
            limits: Limits::default(),
            event_queue: 256,
            max_payload: CHUNK,
        }
    }
}

/// What the agent told us about the session at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionInfo {
    /// `Standard_Stream`, `InteractiveCommands`, `NonInteractiveCommands`
    /// or `Port`; `None` for a shell that had no handshake.
    pub session_type: Option<String>,
    /// Port sessions: the document properties (portNumber, type, …).
    pub properties: BTreeMap<String, String>,
    /// From the handshake, when there was one.
    pub agent_version: Option<String>,
    /// HandshakeComplete's CustomerMessage.
    pub customer_message: String,
}

/// Something that happened on the channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The session is ready for input (after the handshake, if any).
    /// Boxed: it comes once, and every slot of the event queue is as large
    /// as the largest event.
    Ready(Box<SessionInfo>),
    /// Terminal or port bytes.
    Output(Bytes),
    /// Standard error of an exec session.
    StdErr(Bytes),
    /// The exit code of an exec session.
    ExitCode(i32),
    /// A flag from the agent (e.g. ConnectToPortError).
    Flag(Flag),
    /// The socket dropped and the session resumed on a new one.
    Reconnected { attempts: u32 },
    /// The channel ended; no event follows.
    Closed(CloseReason),
}

/// Why a channel ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// The service sent `channel_closed` (its human-readable reason).
    ChannelClosed { output: String },
    /// [`DataChannel::close`] was called.
    Local,
    /// Something failed.
    Error(DataChannelError),
}

/// Errors of an open channel. Texts are for people and never hold tokens.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataChannelError {
    #[error("could not connect to the data channel: {0}")]
    Connect(String),
    #[error("the data channel connection was lost: {0}")]
    ConnectionLost(String),
    #[error(
        "the data channel connection was lost and resuming failed after {attempts} attempts: {last}"
    )]
    ReconnectFailed { attempts: u32, last: String },
    #[error("session {0} has ended; it can no longer be resumed")]
    SessionExpired(String),
    #[error("KMS-encrypted sessions are not supported yet")]
    KmsUnsupported,
    #[error("data channel protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    PeerGone(#[from] PeerGone),
    #[error("the data channel is closed")]
    Closed,
}

/// What a [`DataChannel`] handle asks of the channel's task.
enum Command {
    Send {
        payload_type: PayloadType,
        payload: Bytes,
    },
    Close,
}

/// Handle for writing to an open channel. Cheap to clone.
#[derive(Clone)]
pub struct DataChannel {
    commands: mpsc::Sender<Command>,
    window: Arc<Semaphore>,
    kind: SessionKind,
    session_id: Arc<str>,
    max_payload: usize,
}

/// The stream of [`Event`]s of one channel.
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` after [`Event::Closed`] has been taken.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

/// Connects to `StreamUrl`, authenticates and starts the channel's task.
/// A first connection failure is retried with the same token.
pub async fn open(config: ChannelConfig) -> Result<(DataChannel, Events), DataChannelError> {
    let client_id = Uuid::new_v4();
    let mut last = String::new();
    let mut ws = None;
    for attempt in 0..config.reconnect.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff(&config.reconnect, attempt)).await;
        }
        match transport::connect(&config.stream_url, &config.token, client_id).await {
            Ok(s) => {
                ws = Some(s);
                break;
            }
            Err(e) => {
                tracing::debug!(session = %config.session_id, error = %e, "data channel connect failed");
                last = e.to_string();
            }
        }
    }
    let ws = ws.ok_or(DataChannelError::Connect(last))?;
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(config.event_queue.max(1));
    let window = Arc::new(Semaphore::new(config.window.max(1)));
    let handle = DataChannel {
        commands: cmd_tx,
        window: window.clone(),
        kind: config.kind,
        session_id: Arc::from(config.session_id.as_str()),
        max_payload: config.max_payload.max(1),
    };
    let ready = config.kind == SessionKind::Shell;
    let task = task::ChannelTask {
        reliable: Reliable::new(Role::Client, config.limits.clone()),
        config,
        client_id,
        ws: link::Link::new(ws),
        commands: cmd_rx,
        events: ev_tx,
        window,
        ready,
        info: SessionInfo::default(),
        closing: None,
        backlog: VecDeque::new(),
    };
    // In the caller's span: its lines ("resuming", …) carry the caller's
    // context (the gateway's session ids).
    tokio::spawn(tracing::Instrument::in_current_span(task.run()));
    Ok((handle, Events { rx: ev_rx }))
}

impl DataChannel {
    /// Sends input bytes (PayloadType Output), in ≤1024-byte messages.
    /// Waits while the send window is full.
    pub async fn write(&self, data: Bytes) -> Result<(), DataChannelError> {
        let mut rest = data;
        while !rest.is_empty() {
            let chunk = rest.split_to(rest.len().min(self.max_payload));
            // The plugin turns a lone "\n" into "\r" for terminals (spec
            // §7.2); port sessions carry bytes untouched.
            let chunk = if self.kind != SessionKind::Port && chunk.as_ref() == b"\n" {
                Bytes::from_static(b"\r")
            } else {
                chunk
            };
            self.send(PayloadType::Output, chunk).await?;
        }
        Ok(())
    }

    /// Sends the terminal size.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), DataChannelError> {
        // Two u32 fields always serialise.
        let json = serde_json::to_vec(&Size { cols, rows }).unwrap_or_default();
        self.send(PayloadType::Size, Bytes::from(json)).await
    }

    /// Sends a flag (DisconnectToPort, TerminateSession).
    pub async fn send_flag(&self, flag: Flag) -> Result<(), DataChannelError> {
        self.send(
            PayloadType::Flag,
            Bytes::copy_from_slice(&flag.to_payload()),
        )
        .await
    }

    /// Ends the channel once what was written is acknowledged (at most 2 s).
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }

    /// The SSM session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    async fn send(
        &self,
        payload_type: PayloadType,
        payload: Bytes,
    ) -> Result<(), DataChannelError> {
        let permit = self
            .window
            .acquire()
            .await
            .map_err(|_| DataChannelError::Closed)?;
        // The task gives the permit back when the peer acknowledges.
        permit.forget();
        self.commands
            .send(Command::Send {
                payload_type,
                payload,
            })
            .await
            .map_err(|_| DataChannelError::Closed)
    }
}

pub(super) fn backoff(policy: &ReconnectPolicy, attempt: u32) -> Duration {
    let base = policy.base_delay.as_millis() as u64;
    let jitter = rand::random_range(base..base.saturating_mul(2).max(base + 1));
    let mut delay = Duration::from_millis(jitter.saturating_mul(1u64 << attempt.min(16)));
    if delay > policy.max_delay {
        delay = Duration::from_millis(jitter);
    }
    delay
}
