//! The agent end of one simulated session (spec §11): the reliable stream
//! in the agent role, the handshake where the real agent does one, and the
//! backend (PTY shell, exec, TCP port forwarding) that does the work.
//!
//! One task owns a session from its first WebSocket to `channel_closed`.
//! Client sockets come and go ([`link`]): while none is attached the agent
//! keeps numbering and buffering output but sends nothing (as after a
//! `pause_publication`), and a new socket gets every unacknowledged message
//! again.

pub mod backend;
mod exec;
pub mod link;
mod port;
pub mod run_as;
mod shell;

use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use ssm_datachannel::message::{Message, MessageType, PayloadType, flags};
use ssm_datachannel::payloads::{
    Acknowledge, ChannelClosed, Flag, HandshakeComplete, HandshakeRequest, HandshakeResponse,
    RequestedClientAction, SessionTypeParameters, Size, action_status,
};
use ssm_datachannel::reliable::{Limits, RESEND_TICK, Reliable, Role};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use self::backend::{BackendIo, FromBackend, InboxSender, Outbox, ToBackend};
use self::link::{Delayed, Direction, Incoming, Link};
use crate::config::{FaultConfig, Mode};
use crate::documents::{ResolvedDocument, SessionType};
use crate::inventory::Instance;
use crate::registry::{Registry, SessionStatus};

/// How long the agent waits for the HandshakeResponse.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long output may wait for acknowledgement once the backend is done.
const DRAIN: Duration = Duration::from_secs(2);
/// A session with no client socket for this long is terminated.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(120);
/// Unacknowledged messages beyond which backend output waits.
const WINDOW: usize = 4096;

/// What a session's agent needs to know.
pub struct AgentContext {
    pub session_id: String,
    pub instance: Instance,
    pub document: ResolvedDocument,
    pub mode: Mode,
    pub faults: FaultConfig,
    pub registry: Registry,
    pub terminated: watch::Receiver<bool>,
    /// The caller's `SSMSessionRunAs` session tag: the OS user shell and
    /// command sessions run as ([`run_as`]).
    pub run_as: Option<String>,
}

/// Starts the agent of a session on its first socket; returns where later
/// sockets (reconnects) are to be sent.
pub fn spawn(ctx: AgentContext, first: WebSocket) -> mpsc::Sender<WebSocket> {
    let (attach_tx, attach_rx) = mpsc::channel(4);
    let (delayed_tx, delayed_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::channel(64);
    let link = Link::new(first, 0, &ctx.faults, delayed_tx.clone());
    let handshake = match ctx.document.session_type {
        SessionType::StandardStream | SessionType::InteractiveCommands => Handshake::Skipped,
        SessionType::NonInteractiveCommands | SessionType::Port => {
            Handshake::Pending(Instant::now())
        }
    };
    let agent = Agent {
        reliable: Reliable::new(
            Role::Agent,
            Limits {
                max_incoming: 100_000,
                max_attempts: u32::MAX,
            },
        ),
        link: Some(link),
        generations: 1,
        detached_since: None,
        attach: attach_rx,
        delayed_tx,
        delayed: delayed_rx,
        out_tx,
        out_rx,
        inbox: None,
        handshake,
        client_version: String::new(),
        ending: None,
        ctx,
    };
    tokio::spawn(agent.run());
    attach_tx
}

enum Handshake {
    Skipped,
    Pending(Instant),
    Done,
}

struct Agent {
    ctx: AgentContext,
    reliable: Reliable,
    link: Option<Link>,
    generations: u64,
    detached_since: Option<Instant>,
    attach: mpsc::Receiver<WebSocket>,
    delayed_tx: mpsc::UnboundedSender<Delayed>,
    delayed: mpsc::UnboundedReceiver<Delayed>,
    out_tx: mpsc::Sender<FromBackend>,
    out_rx: mpsc::Receiver<FromBackend>,
    inbox: Option<InboxSender>,
    handshake: Handshake,
    client_version: String,
    /// Set when the session is over: the Output for `channel_closed` and
    /// the deadline for draining unacknowledged output.
    ending: Option<(String, Instant)>,
}

impl Agent {
    async fn run(mut self) {
        self.ctx
            .registry
            .set_status(&self.ctx.session_id, SessionStatus::Connected);
        let output = self.run_loop().await;
        // Dropping the inbox tells the backend to stop (and kill its process).
        self.inbox = None;
        if let Some(mut link) = self.link.take() {
            let _ = link.send_raw(self.channel_closed(&output)).await;
            link.close().await;
        }
        self.ctx
            .registry
            .set_status(&self.ctx.session_id, SessionStatus::Terminated);
        tracing::debug!(session = %self.ctx.session_id, "sim session ended");
    }

    /// Runs until the session ends; returns `channel_closed`'s Output.
    async fn run_loop(&mut self) -> String {
        if matches!(self.handshake, Handshake::Skipped) {
            self.start_backend();
        } else if let Err(e) = self.send_handshake_request().await {
            return e;
        }
        let mut tick = tokio::time::interval(RESEND_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut terminated = self.ctx.terminated.clone();
        loop {
            if let Some(link) = self.link.as_mut()
                && link.flush().await.is_err()
            {
                self.detach();
            }
            if let Some((output, deadline)) = &self.ending
                && (self.reliable.unacked() == 0 || Instant::now() >= *deadline)
            {
                return output.clone();
            }
            let attached = self.link.is_some();
            let pull_output = attached
                && self.ending.is_none()
                && self.reliable.unacked() < WINDOW
                && !matches!(self.handshake, Handshake::Pending(_));
            // The timer runs only while it has something to time: an idle
            // session never wakes (10,000 of them would cost a core).
            let timed = self.reliable.unacked() > 0
                || !attached
                || matches!(self.handshake, Handshake::Pending(_))
                || self.link.as_ref().is_some_and(Link::holds_frames);
            tokio::select! {
                incoming = recv(&mut self.link) => match incoming {
                    Incoming::Frames(frames) => {
                        for frame in frames {
                            if let Err(e) = self.on_frame(frame).await {
                                return e;
                            }
                        }
                        if self.link.as_ref().is_some_and(Link::should_cut) {
                            tracing::info!(session = %self.ctx.session_id, "fault injection: cutting the WebSocket");
                            self.link = None;
                            self.detach();
                        }
                    }
                    Incoming::Closed => self.detach(),
                },
                ws = self.attach.recv() => {
                    if let Some(ws) = ws {
                        self.reattach(ws).await;
                    }
                }
                out = self.out_rx.recv(), if pull_output => match out {
                    Some(FromBackend::Data(payload_type, data)) => self.send_data(payload_type, data).await,
                    Some(FromBackend::Done(output)) => self.ending = Some((output, Instant::now() + DRAIN)),
                    None => self.ending = Some((String::new(), Instant::now() + DRAIN)),
                },
                Some((generation, direction, frame)) = self.delayed.recv() => {
                    self.on_delayed(generation, direction, frame).await;
                }
                _ = tick.tick(), if timed => {
                    if let Some(e) = self.on_tick().await {
                        return e;
                    }
                }
                changed = terminated.changed() => {
                    if changed.is_err() || *terminated.borrow() {
                        return String::new();
                    }
                }
            }
        }
    }

    fn detach(&mut self) {
        if self.link.take().is_some() || self.detached_since.is_none() {
            self.detached_since = Some(Instant::now());
        }
    }

    async fn reattach(&mut self, ws: WebSocket) {
        let link = Link::new(
            ws,
            self.generations,
            &self.ctx.faults,
            self.delayed_tx.clone(),
        );
        self.generations += 1;
        self.link = Some(link);
        self.detached_since = None;
        for frame in self.reliable.resend_all(Instant::now()) {
            self.send_frame(frame).await;
        }
    }

    async fn on_delayed(&mut self, generation: u64, direction: Direction, frame: Bytes) {
        // Frames delayed on a socket that has since gone are lost with it.
        if self.link.as_ref().map(|l| l.generation) != Some(generation) {
            return;
        }
        match direction {
            Direction::Out => {
                if let Some(link) = self.link.as_mut()
                    && link.send_raw(frame).await.is_err()
                {
                    self.detach();
                }
            }
            Direction::In => {
                let _ = self.on_frame(frame).await;
            }
        }
    }

    async fn on_tick(&mut self) -> Option<String> {
        if let Handshake::Pending(since) = self.handshake
            && since.elapsed() > HANDSHAKE_TIMEOUT
        {
            return Some("Handshake timed out. Please ensure that you have the latest version of the session manager plugin.".into());
        }
        if let Some(since) = self.detached_since
            && self.link.is_none()
            && since.elapsed() > ORPHAN_TIMEOUT
        {
            return Some("Session timed out without a client.".into());
        }
        if let Some(link) = self.link.as_mut() {
            match link.release_held().await {
                Ok(frames) => {
                    for frame in frames {
                        if let Err(e) = self.on_frame(frame).await {
                            return Some(e);
                        }
                    }
                }
                Err(_) => self.detach(),
            }
        }
        if self.link.is_some() {
            // The agent retransmits forever; max_attempts is unbounded.
            if let Ok(due) = self.reliable.due_retransmissions(Instant::now()) {
                for frame in due {
                    self.send_frame(frame).await;
                }
            }
        }
        None
    }

    async fn send_frame(&mut self, frame: Bytes) {
        if let Some(link) = self.link.as_mut()
            && link.send(frame).await.is_err()
        {
            self.detach();
        }
    }

    async fn send_data(&mut self, payload_type: PayloadType, data: Bytes) {
        match self.reliable.prepare(payload_type, data, Instant::now()) {
            Ok(frame) => self.send_frame(frame).await,
            Err(e) => {
                tracing::warn!(session = %self.ctx.session_id, error = %e, "cannot encode output")
            }
        }
    }

    /// One binary frame from the client. An error ends the session with
    /// that text.
    async fn on_frame(&mut self, frame: Bytes) -> Result<(), String> {
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session = %self.ctx.session_id, error = %e, "dropping an invalid client message");
                return Ok(());
            }
        };
        match msg.message_type {
            MessageType::InputStreamData => {
                let ready = self.inbox.as_ref().is_none_or(InboxSender::has_room);
                let received = self
                    .reliable
                    .on_stream_data(msg, ready)
                    .map_err(|e| e.to_string())?;
                if let Some(ack) = received.ack {
                    self.send_frame(ack).await;
                }
                for m in received.deliver {
                    self.on_input(m).await?;
                }
            }
            MessageType::Acknowledge => {
                if let Ok(ack) = serde_json::from_slice::<Acknowledge>(&msg.payload) {
                    self.reliable.on_ack(&ack, Instant::now());
                }
            }
            other => {
                tracing::debug!(session = %self.ctx.session_id, kind = other.as_str(), "ignoring client message");
            }
        }
        Ok(())
    }

    async fn on_input(&mut self, m: Message) -> Result<(), String> {
        if let Handshake::Pending(started) = self.handshake {
            if m.payload_type == PayloadType::HandshakeResponse {
                return self.on_handshake_response(&m.payload, started).await;
            }
            // The real agent acks and discards input before the handshake.
            return Ok(());
        }
        let Some(inbox) = &self.inbox else {
            return Ok(());
        };
        let item = match m.payload_type {
            PayloadType::Output => ToBackend::Data(m.payload),
            PayloadType::Size => match serde_json::from_slice::<Size>(&m.payload) {
                Ok(s) => ToBackend::Size {
                    cols: u16::try_from(s.cols).unwrap_or(u16::MAX),
                    rows: u16::try_from(s.rows).unwrap_or(u16::MAX),
                },
                Err(_) => return Ok(()),
            },
            PayloadType::Flag => match Flag::from_payload(&m.payload) {
                Some(flag) => ToBackend::Flag(flag),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        inbox.push(item);
        Ok(())
    }

    async fn send_handshake_request(&mut self) -> Result<(), String> {
        let properties = match self.ctx.document.session_type {
            SessionType::Port => Some(serde_json::json!(self.ctx.document.properties)),
            _ => None,
        };
        let params = SessionTypeParameters {
            session_type: self.ctx.document.session_type.as_str().to_owned(),
            properties,
        };
        let request = HandshakeRequest {
            agent_version: self.ctx.instance.agent_version.clone(),
            requested_client_actions: vec![RequestedClientAction {
                action_type: "SessionType".into(),
                action_parameters: serde_json::value::to_raw_value(&params)
                    .map_err(|e| e.to_string())?,
            }],
        };
        let json = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        self.send_data(PayloadType::HandshakeRequest, Bytes::from(json))
            .await;
        Ok(())
    }

    async fn on_handshake_response(
        &mut self,
        payload: &[u8],
        started: Instant,
    ) -> Result<(), String> {
        let response: HandshakeResponse = serde_json::from_slice(payload)
            .map_err(|e| format!("Invalid handshake response: {e}"))?;
        if let Some(failed) = response
            .processed_client_actions
            .iter()
            .find(|a| a.action_status != action_status::SUCCESS)
        {
            return Err(format!(
                "Handshake failed: action {} was not processed: {}",
                failed.action_type, failed.error
            ));
        }
        self.client_version = response.client_version;
        let complete = HandshakeComplete {
            handshake_time_to_complete: i64::try_from(started.elapsed().as_nanos())
                .unwrap_or(i64::MAX),
            customer_message: String::new(),
        };
        let json = serde_json::to_vec(&complete).map_err(|e| e.to_string())?;
        self.send_data(PayloadType::HandshakeComplete, Bytes::from(json))
            .await;
        self.handshake = Handshake::Done;
        self.start_backend();
        Ok(())
    }

    fn start_backend(&mut self) {
        let (tx, inbox) = backend::inbox();
        self.inbox = Some(tx);
        let io = BackendIo {
            inbox,
            out: Outbox {
                tx: self.out_tx.clone(),
                mode: self.ctx.mode,
            },
        };
        let doc = self.ctx.document.clone();
        let instance = self.ctx.instance.clone();
        let run_as = self.ctx.run_as.clone();
        match doc.session_type {
            SessionType::StandardStream | SessionType::InteractiveCommands => {
                tokio::spawn(shell::run(io, doc, instance, run_as));
            }
            SessionType::NonInteractiveCommands => {
                tokio::spawn(exec::run(io, doc, run_as));
            }
            SessionType::Port => {
                let client = self.client_version.clone();
                tokio::spawn(port::run(io, doc, instance, client));
            }
        }
    }

    fn channel_closed(&self, output: &str) -> Bytes {
        let id = Uuid::new_v4();
        let payload = ChannelClosed {
            message_id: id.hyphenated().to_string(),
            created_date: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            destination_id: self.ctx.instance.id.clone(),
            session_id: self.ctx.session_id.clone(),
            message_type: "channel_closed".into(),
            schema_version: 1,
            output: output.to_owned(),
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let mut m = Message::new(
            MessageType::ChannelClosed,
            0,
            flags::CONTROL,
            PayloadType::Unset,
            Bytes::from(json),
        );
        m.message_id = id;
        m.encode().unwrap_or_default()
    }
}

/// Reads from the link if there is one; otherwise never resolves.
async fn recv(link: &mut Option<Link>) -> Incoming {
    match link {
        Some(l) => l.recv().await,
        None => std::future::pending().await,
    }
}
