//! Forwarded connections (`ssh -J`, `-W`, `-L`), from request to recorded
//! end: [`Gateway::run_forward`] resolves the target once, asks the
//! policies, finds or starts the SSM port session, accepts the client's
//! connection only once a connection to the target is open (so a refusal
//! reaches the client as a channel-open failure), pipes it, and closes the
//! session after its last connection.
//!
//! `ssh -L 8080:web-1:80` opens one AWS-StartPortForwardingSession per
//! (target, port) and, when the agent speaks smux, carries every forwarded
//! connection as a stream inside it, as the plugin does. Which mode the
//! agent speaks is the protocol crate's business ([`PortSession`]). Each
//! connection is recorded as a ConnOpen/ConnClose pair with its byte counts
//! on the tap of the SSM session it rides on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use ssm_datachannel::{PortMode, PortSession, PortStream};
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use crate::aws::SsmApi;
use crate::gateway::error::GatewayError;
use crate::gateway::pipe::pipe_port;
use crate::gateway::record::{EndCause, end_of};
use crate::gateway::session::{Gateway, Link, Opened, terminate_later};
use crate::gateway::terminal::Ended;
use crate::inventory::Target;
use crate::ops::live::StopCause;
use crate::recording::{EndReason, SessionTap};
use crate::request::{Kind, SessionRequest};

/// The client's side of a forwarded connection, before it is accepted:
/// the SSH layer implements it over its channel-open reply.
#[async_trait::async_trait]
pub trait ForwardClient: Send {
    /// The connection's bytes once accepted.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send;
    /// Accepts the connection.
    async fn accept(self) -> Self::Stream;
    /// Refuses it with a message for the user.
    async fn refuse(self, message: String);
}

/// How a forwarded connection went.
#[derive(Debug)]
pub struct Forwarded {
    /// The resolved target.
    pub target: Target,
    /// Bytes client → target.
    pub up: u64,
    /// Bytes target → client.
    pub down: u64,
    /// How it ended.
    pub ended: Ended,
}

/// One SSM port session and the connections riding on it. Each connection
/// joins it ([`SharedPort::try_join`]) and leaves it when done; the last one
/// to leave closes it ([`SharedPort::close`]): TerminateSession and the end
/// of its recording happen there, awaited, not in a destructor.
struct SharedPort {
    port: PortSession,
    ssm_session_id: String,
    /// The API that started it, to end it with.
    api: Arc<dyn SsmApi>,
    /// The recording of the SSM session (taken by `close`).
    tap: tokio::sync::Mutex<Option<SessionTap>>,
    /// The gateway session id of the SSM session.
    session_id: Uuid,
    /// Connections riding on it now; 0 once it is closing, for good.
    users: Mutex<usize>,
    /// Why the gateway stopped it, when it did.
    stop: Mutex<Option<StopCause>>,
}

impl SharedPort {
    /// Counts one more connection; false once the session is closing.
    fn try_join(&self) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if *users == 0 {
            return false;
        }
        *users += 1;
        true
    }

    /// Counts one connection less; true for the last one, which must
    /// [`close`](Self::close) the session.
    fn leave(&self) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        *users = users.saturating_sub(1);
        *users == 0
    }

    /// Remembers why the gateway stops it (the first cause wins).
    fn stopped(&self, cause: StopCause) {
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        stop.get_or_insert(cause);
    }

    /// Ends the session: on the wire, TerminateSession, and its recording.
    /// A shared (smux) session ends because its clients left; a session of
    /// one connection ends as that connection did (`last`).
    async fn close(&self, cause: &EndCause, last: &Ended) {
        self.port.close().await;
        let (reason, exit) = match self.port.mode() {
            PortMode::Mux { .. } => (EndReason::ClientClosed, None),
            PortMode::Stream | PortMode::Basic => end_of(last),
        };
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (reason, exit, why) = match stop {
            Some(stop) => (stop.end_reason(), None, Some(stop.record_text())),
            None => {
                let (reason, why) = cause.resolve_caused(reason);
                (reason, exit, why)
            }
        };
        if let Some(tap) = self.tap.lock().await.take() {
            tap.finish_caused(reason, exit, why).await;
        }
        // Paced, without holding up the record.
        terminate_later(self.api.clone(), self.ssm_session_id.clone());
    }
}

impl Drop for SharedPort {
    fn drop(&mut self) {
        if *self.users.get_mut().unwrap_or_else(|p| p.into_inner()) != 0 {
            tracing::warn!(
                ssm_session = %self.ssm_session_id,
                "a port session was dropped without being closed; its recording ends as an error"
            );
        }
    }
}

/// The port sessions of one SSH connection.
#[derive(Default)]
pub struct PortSessions {
    /// Shared (smux) sessions by (target id, port).
    live: Mutex<HashMap<(String, u16), Weak<SharedPort>>>,
    /// Serialises session creation so parallel connections share one.
    opening: tokio::sync::Mutex<()>,
    /// Why the gateway cut the connection, if it did.
    cause: Arc<EndCause>,
}

impl PortSessions {
    /// The port sessions of a connection whose end cause is `cause`.
    pub fn new(cause: Arc<EndCause>) -> Self {
        Self {
            cause,
            ..Self::default()
        }
    }

    fn get(&self, target_id: &str, port: u16) -> Option<Arc<SharedPort>> {
        let live = self.live.lock().ok()?;
        let shared = live.get(&(target_id.to_owned(), port))?.upgrade()?;
        (!shared.port.is_closed()).then_some(shared)
    }

    fn insert(&self, target_id: &str, port: u16, shared: &Arc<SharedPort>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, w| w.strong_count() > 0);
            live.insert((target_id.to_owned(), port), Arc::downgrade(shared));
        }
    }
}

impl Gateway {
    /// Runs one forwarded connection for `req` (a port request): decides,
    /// opens (or rides on an open session), accepts the client, pipes,
    /// records. A refusal is shown to the client through
    /// [`ForwardClient::refuse`] and returned.
    pub async fn run_forward<C: ForwardClient>(
        &self,
        ports: &PortSessions,
        req: &SessionRequest,
        client: C,
    ) -> Result<Forwarded, GatewayError> {
        // The set-up (policy, StartSession, the data channel's handshake)
        // and the close are boxed: an async fn's future is as large as its
        // largest step for its whole life, and this one lives as long as
        // the forward, idle or not (thousands at once). Boxed, the pipe's
        // state is what an idle forward holds.
        // Registered under its own id while it opens (a new port session's
        // recorded id is this request's), so that a kill or a drain that
        // comes meanwhile is not missed.
        let opening = self.live().register(req.id, &req.user.name);
        let (shared, target, stream) = match Box::pin(self.connect(ports, req)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(gateway_session = %req.id, user = %req.user.name, error = %e, "forward refused");
                client
                    .refuse(format!("ssmgate: {}", e.for_user(req.id)))
                    .await;
                return Err(e);
            }
        };
        let client = client.accept().await;
        let conn = match shared.tap.lock().await.as_ref() {
            Some(tap) => Some(Box::pin(tap.conn_open()).await),
            None => None,
        };
        // Registered while it pipes: a kill, a user lock or the end of a
        // shutdown's drain stops every connection riding on the session.
        let mut live = self.live().register(shared.session_id, &req.user.name);
        if let Some(cause) = opening.cause() {
            self.live().stop(shared.session_id, cause);
        }
        drop(opening);
        let (up, down, ended) = pipe_port(client, stream, async {
            let cause = live.stopped().await;
            shared.stopped(cause);
        })
        .await;
        drop(live);
        if let (Some(tap), Some(conn)) = (shared.tap.lock().await.as_ref(), conn) {
            Box::pin(tap.conn_close(conn, up, down)).await;
        }
        if shared.leave() {
            Box::pin(shared.close(&ports.cause, &ended)).await;
        }
        Ok(Forwarded {
            target,
            up,
            down,
            ended,
        })
    }

    /// Finds or starts the port session for `req` and opens a connection
    /// on it. The target is resolved once, here.
    async fn connect(
        &self,
        ports: &PortSessions,
        req: &SessionRequest,
    ) -> Result<(Arc<SharedPort>, Target, PortStream), GatewayError> {
        let Kind::Port { port } = req.kind else {
            return Err(GatewayError::Internal("a forward needs a port request"));
        };
        let _guard = ports.opening.lock().await;
        let target = self.resolve_for(req).await?;
        if let Some(shared) = ports.get(&target.id, port) {
            // Each connection is its own request: the policies decide again
            // (with the target's current attributes) even when it rides on
            // an open session; the decision is audited under that session.
            let mut riding = req.clone();
            riding.id = shared.session_id;
            self.preflight_on(&riding, target.clone()).await?;
            if shared.try_join() {
                match shared.port.open_stream().await {
                    Ok(stream) => {
                        crate::logging::record_ssm_session(&shared.ssm_session_id);
                        return Ok((shared, target, stream));
                    }
                    Err(e) => {
                        if shared.leave() {
                            shared
                                .close(&ports.cause, &Ended::Error(e.to_string()))
                                .await;
                        }
                    }
                }
            }
        }
        let Opened {
            target,
            ssm_session_id,
            api,
            link:
                Link {
                    channel,
                    events,
                    info,
                },
            tap,
            ..
        } = self.open_on(req, target).await?;
        let shared = Arc::new(SharedPort {
            port: PortSession::new(channel, events, &info),
            ssm_session_id,
            api,
            session_id: tap.id(),
            tap: tokio::sync::Mutex::new(Some(tap)),
            users: Mutex::new(1),
            stop: Mutex::new(None),
        });
        let stream = match shared.port.open_stream().await {
            Ok(stream) => stream,
            Err(e) => {
                shared.leave();
                let ended = Ended::Error(e.to_string());
                shared.close(&ports.cause, &ended).await;
                return Err(GatewayError::NotReady(e.to_string()));
            }
        };
        if matches!(shared.port.mode(), PortMode::Mux { .. }) {
            ports.insert(&target.id, port, &shared);
        }
        Ok((shared, target, stream))
    }
}
