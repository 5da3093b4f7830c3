//! The service half of the simulated data channel (spec §11.1): accepts the
//! WebSocket at the StreamUrl, checks the token in the first TEXT frame, and
//! hands the socket to the session's agent — a new one on first open, the
//! running one on a reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use ssm_datachannel::payloads::OpenDataChannelInput;
use tokio::sync::mpsc;

use super::agent::{self, AgentContext};
use super::config::{FaultConfig, Mode};
use super::registry::{Registry, SessionHandle};

/// How long a client may take to send its open frame.
const OPEN_TIMEOUT: Duration = Duration::from_secs(45);

/// Shared state of the data-channel endpoint.
#[derive(Clone)]
pub struct DataChannelService {
    registry: Registry,
    mode: Mode,
    faults: FaultConfig,
    /// Running agents by session id: where reconnecting sockets go.
    agents: Arc<Mutex<HashMap<String, mpsc::Sender<WebSocket>>>>,
}

impl DataChannelService {
    /// A service over the sessions of `registry`.
    pub fn new(registry: Registry, mode: Mode, faults: FaultConfig) -> Self {
        Self {
            registry,
            mode,
            faults,
            agents: Arc::default(),
        }
    }

    /// The route `/v1/data-channel/{session_id}`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/data-channel/{session_id}", get(upgrade))
            .with_state(self)
    }

    async fn attach(self, session_id: String, mut ws: WebSocket) {
        let open = match tokio::time::timeout(OPEN_TIMEOUT, read_open_frame(&mut ws)).await {
            Ok(Some(open)) => open,
            Ok(None) | Err(_) => {
                tracing::info!(session = %session_id, "sim: no valid open frame; closing");
                refuse(ws, "expected an OpenDataChannelInput frame").await;
                return;
            }
        };
        let Some(handle) = self.registry.authorize_open(&session_id, &open.token_value) else {
            tracing::info!(session = %session_id, "sim: invalid or expired token; closing");
            refuse(ws, "invalid token").await;
            return;
        };
        if let Some(ws) = self.hand_over(session_id, handle, ws) {
            refuse(ws, "session is busy").await;
        }
    }

    /// Gives the socket to the session's running agent, or starts one.
    /// Returns the socket when the agent cannot take it.
    fn hand_over(
        &self,
        session_id: String,
        handle: SessionHandle,
        ws: WebSocket,
    ) -> Option<WebSocket> {
        let mut agents = match self.agents.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        agents.retain(|_, tx| !tx.is_closed());
        if let Some(tx) = agents.get(&session_id) {
            // A reconnect: the running agent takes the new socket.
            return match tx.try_send(ws) {
                Ok(()) => None,
                Err(
                    mpsc::error::TrySendError::Full(ws) | mpsc::error::TrySendError::Closed(ws),
                ) => Some(ws),
            };
        }
        let ctx = AgentContext {
            session_id: session_id.clone(),
            instance: handle.entry.instance.clone(),
            document: handle.entry.document.clone(),
            mode: self.mode,
            faults: self.faults.clone(),
            registry: self.registry.clone(),
            terminated: handle.terminated,
            run_as: handle
                .entry
                .caller
                .session_tag(agent::run_as::RUN_AS_TAG)
                .map(str::to_owned),
        };
        agents.insert(session_id, agent::spawn(ctx, ws));
        None
    }
}

async fn upgrade(
    Path(session_id): Path<String>,
    State(service): State<DataChannelService>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| service.attach(session_id, socket))
}

/// Reads frames until the first TEXT frame (pings may come first).
async fn read_open_frame(ws: &mut WebSocket) -> Option<OpenDataChannelInput> {
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            WsMessage::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            _ => return None,
        }
    }
    None
}

async fn refuse(mut ws: WebSocket, reason: &'static str) {
    let frame = CloseFrame {
        code: axum::extract::ws::close_code::POLICY,
        reason: reason.into(),
    };
    let _ = ws.send(WsMessage::Close(Some(frame))).await;
}
