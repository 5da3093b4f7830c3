//! Port forwards that share one SSM session: `ssh -L 8080:web-1:80` opens
//! one AWS-StartPortForwardingSession per (target, port) and carries every
//! forwarded connection as an smux stream inside it, as the plugin does.
//! The SSM session ends when its last connection closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::datachannel::io::byte_stream;
use crate::datachannel::payloads::Flag;
use crate::datachannel::port::PortMode;
use crate::datachannel::smux;
use crate::gateway::pipe::{Ended, run_port_stream};
use crate::gateway::request::{GatewayError, SessionRequest};
use crate::gateway::session::{Gateway, Opened};

/// One shared SSM port session.
pub struct MuxSession {
    smux: smux::Session,
    ssm_session_id: String,
    gateway: Arc<Gateway>,
}

impl Drop for MuxSession {
    fn drop(&mut self) {
        self.smux.close();
        let gateway = self.gateway.clone();
        let id = self.ssm_session_id.clone();
        // The last connection is gone: end the SSM session too.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { gateway.terminate(&id).await });
        }
    }
}

/// The shared port sessions of one SSH connection.
#[derive(Default)]
pub struct PortSessions {
    live: Mutex<HashMap<(String, u16), Weak<MuxSession>>>,
    /// Serialises session creation so parallel connections share one.
    opening: tokio::sync::Mutex<()>,
}

/// What a forwarded connection rides on.
pub enum Forward {
    /// A stream inside a shared smux session.
    Mux(Arc<MuxSession>, smux::Stream),
    /// A session of its own (stream or basic mode).
    Own(Box<Opened>),
}

impl PortSessions {
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
            // an open session.
            gateway.preflight(req).await?;
            if let Ok(stream) = mux.smux.open_stream().await {
                return Ok(Forward::Mux(mux, stream));
            }
        }
        let opened = gateway.open(req).await?;
        let PortMode::Mux { keepalive } = PortMode::for_session(&opened.info) else {
            return Ok(Forward::Own(Box::new(opened)));
        };
        let ssm_session_id = opened.ssm_session_id.clone();
        let bs = byte_stream(opened.channel, opened.events);
        let (r, w) = tokio::io::split(bs.stream);
        let mut config = smux::Config::default();
        if !keepalive {
            config.keepalive = None;
        }
        let mux = Arc::new(MuxSession {
            smux: smux::Session::client(r, w, config),
            ssm_session_id,
            gateway: gateway.clone(),
        });
        let stream = mux
            .smux
            .open_stream()
            .await
            .map_err(|e| GatewayError::NotReady(e.to_string()))?;
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
pub async fn run_forward<S>(gateway: &Gateway, forward: Forward, mut client: S) -> (u64, u64, Ended)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match forward {
        Forward::Mux(mux, mut stream) => {
            let result = tokio::io::copy_bidirectional(&mut client, &mut stream).await;
            drop(stream);
            drop(mux);
            match result {
                Ok((up, down)) => (up, down, Ended::ClientClosed),
                Err(e) => (0, 0, Ended::Error(e.to_string())),
            }
        }
        Forward::Own(opened) => {
            let channel = opened.channel.clone();
            let id = opened.ssm_session_id.clone();
            let basic = PortMode::for_session(&opened.info) == PortMode::Basic;
            let result = run_port_stream(*opened, client).await;
            if basic {
                let _ = channel.send_flag(Flag::TerminateSession).await;
            }
            gateway.terminate(&id).await;
            result
        }
    }
}
