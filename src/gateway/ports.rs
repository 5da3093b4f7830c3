//! Port forwards that share one SSM session: `ssh -L 8080:web-1:80` opens
//! one AWS-StartPortForwardingSession per (target, port) and carries every
//! forwarded connection as an smux stream inside it, as the plugin does.
//! The SSM session ends when its last connection closes.
//!
//! Each forwarded connection is recorded as a ConnOpen/ConnClose pair with
//! its byte counts on the tap of the SSM session it rides on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use ssm_datachannel::io::byte_stream;
use ssm_datachannel::payloads::Flag;
use ssm_datachannel::port::PortMode;
use ssm_datachannel::smux;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::gateway::error::GatewayError;
use crate::gateway::pipe::{Ended, copy_counted, run_port_stream};
use crate::gateway::record::{EndCause, end_of};
use crate::gateway::session::{Gateway, Opened};
use crate::recording::{EndReason, SessionTap};
use crate::request::SessionRequest;

/// One shared SSM port session. Each forwarded connection riding on it
/// joins it ([`MuxSession::try_join`]) and leaves it when done; the last
/// one to leave closes it ([`MuxSession::close`]): TerminateSession and the
/// end of its recording happen there, awaited, not in a destructor.
pub struct MuxSession {
    smux: smux::Session,
    ssm_session_id: String,
    gateway: Arc<Gateway>,
    /// The recording of the shared session (taken by `close`).
    tap: tokio::sync::Mutex<Option<SessionTap>>,
    /// The gateway session id of the shared session.
    session_id: uuid::Uuid,
    /// Why the gateway cut the connection, if it did.
    cause: Arc<EndCause>,
    /// Connections riding on it now; 0 once it is closing, for good.
    users: Mutex<usize>,
}

impl MuxSession {
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

    /// Ends the shared session: closes the smux session, calls
    /// TerminateSession and finishes the recording.
    async fn close(&self) {
        self.smux.close();
        self.gateway.terminate(&self.ssm_session_id).await;
        if let Some(tap) = self.tap.lock().await.take() {
            tap.finish(self.cause.resolve(EndReason::ClientClosed), None)
                .await;
        }
    }
}

impl Drop for MuxSession {
    fn drop(&mut self) {
        if *self.users.get_mut().unwrap_or_else(|p| p.into_inner()) != 0 {
            tracing::warn!(
                ssm_session = %self.ssm_session_id,
                "a shared port session was dropped without being closed; its recording ends as an error"
            );
        }
    }
}

/// The shared port sessions of one SSH connection.
#[derive(Default)]
pub struct PortSessions {
    live: Mutex<HashMap<(String, u16), Weak<MuxSession>>>,
    /// Serialises session creation so parallel connections share one.
    opening: tokio::sync::Mutex<()>,
    /// Why the gateway cut the connection, if it did.
    cause: Arc<EndCause>,
}

/// What a forwarded connection rides on.
pub enum Forward {
    /// A stream inside a shared smux session.
    Mux(Arc<MuxSession>, smux::Stream),
    /// A session of its own (stream or basic mode).
    Own(Box<Opened>),
}

impl PortSessions {
    /// The port sessions of a connection whose end cause is `cause`.
    pub fn new(cause: Arc<EndCause>) -> Self {
        Self {
            cause,
            ..Self::default()
        }
    }

    /// Finds or starts the session for `req` (a port request) and opens a
    /// connection on it.
    pub async fn connect(
        &self,
        gateway: &Arc<Gateway>,
        req: &SessionRequest,
        target_id: &str,
        port: u16,
    ) -> Result<Forward, GatewayError> {
        let _guard = self.opening.lock().await;
        let existing = self.get(target_id, port);
        if let Some(mux) = existing {
            // Each connection is its own request: the policies decide again
            // (with the target's current attributes) even when it rides on
            // an open session; the decision is audited under that session.
            let mut riding = req.clone();
            riding.id = mux.session_id;
            gateway.preflight(&riding).await?;
            if mux.try_join() {
                match mux.smux.open_stream().await {
                    Ok(stream) => return Ok(Forward::Mux(mux, stream)),
                    Err(_) => {
                        if mux.leave() {
                            mux.close().await;
                        }
                    }
                }
            }
        }
        let opened = gateway.open(req).await?;
        let PortMode::Mux { keepalive } = PortMode::for_session(&opened.info) else {
            return Ok(Forward::Own(Box::new(opened)));
        };
        let Opened {
            ssm_session_id,
            channel,
            events,
            tap,
            ..
        } = opened;
        let session_id = tap.id();
        let bs = byte_stream(channel, events);
        let (r, w) = tokio::io::split(bs.stream);
        let mut config = smux::Config::default();
        if !keepalive {
            config.keepalive = None;
        }
        let mux = Arc::new(MuxSession {
            smux: smux::Session::client(r, w, config),
            ssm_session_id,
            gateway: gateway.clone(),
            tap: tokio::sync::Mutex::new(Some(tap)),
            session_id,
            cause: self.cause.clone(),
            users: Mutex::new(1),
        });
        let stream = match mux.smux.open_stream().await {
            Ok(stream) => stream,
            Err(e) => {
                mux.leave();
                mux.close().await;
                return Err(GatewayError::NotReady(e.to_string()));
            }
        };
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, w| w.strong_count() > 0);
            live.insert((target_id.to_owned(), port), Arc::downgrade(&mux));
        }
        Ok(Forward::Mux(mux, stream))
    }

    fn get(&self, target_id: &str, port: u16) -> Option<Arc<MuxSession>> {
        let live = self.live.lock().ok()?;
        let mux = live.get(&(target_id.to_owned(), port))?.upgrade()?;
        (!mux.smux.is_closed()).then_some(mux)
    }
}

/// Copies a forwarded connection until both directions are done; returns
/// bytes moved (client → target, target → client). A session of its own
/// is terminated at the end.
pub async fn run_forward<S>(
    gateway: &Gateway,
    ports: &PortSessions,
    forward: Forward,
    mut client: S,
) -> (u64, u64, Ended)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match forward {
        Forward::Mux(mux, mut stream) => {
            let conn = match mux.tap.lock().await.as_ref() {
                Some(tap) => Some(tap.conn_open().await),
                None => None,
            };
            let (up, down, result) = copy_counted(&mut client, &mut stream).await;
            drop(stream);
            let ended = match result {
                Ok(()) => Ended::ClientClosed,
                Err(e) => Ended::Error(e.to_string()),
            };
            if let (Some(tap), Some(conn)) = (mux.tap.lock().await.as_ref(), conn) {
                tap.conn_close(conn, up, down).await;
            }
            if mux.leave() {
                mux.close().await;
            }
            (up, down, ended)
        }
        Forward::Own(opened) => {
            let Opened {
                channel,
                events,
                info,
                tap,
                ssm_session_id,
                ..
            } = *opened;
            let basic = PortMode::for_session(&info) == PortMode::Basic;
            let conn = tap.conn_open().await;
            let (up, down, ended) = run_port_stream(channel.clone(), events, client).await;
            if basic {
                let _ = channel.send_flag(Flag::TerminateSession).await;
            }
            gateway.terminate(&ssm_session_id).await;
            tap.conn_close(conn, up, down).await;
            let (reason, exit) = end_of(&ended);
            tap.finish(ports.cause.resolve(reason), exit).await;
            (up, down, ended)
        }
    }
}
