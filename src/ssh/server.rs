//! The SSH listener: accepts connections (dropping them past the
//! unauthenticated-connection limits), runs russh on each, and enforces the
//! login grace time, the maximum session duration and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::context::ServerContext;
use super::handler::ConnectionHandler;
use super::limits::StartupLimits;
use crate::recording::EndReason;

/// A bound SSH server, ready to run.
pub struct SshServer {
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    russh: Arc<russh::server::Config>,
    limits: Arc<StartupLimits>,
}

impl SshServer {
    /// Binds the configured address with `host_key`.
    pub async fn bind(ctx: Arc<ServerContext>, host_key: PrivateKey) -> std::io::Result<Self> {
        let listener = TcpListener::bind(ctx.server.listen).await?;
        let s = &ctx.server;
        let russh = russh::server::Config {
            server_id: russh::SshId::Standard(
                format!("SSH-2.0-ssmgate_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..]),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            max_auth_attempts: s.max_auth_tries as usize,
            inactivity_timeout: s.idle_timeout,
            // Keepalive replies would count as activity and defeat the idle
            // timeout, so probe dead clients only when there is none.
            keepalive_interval: s.idle_timeout.is_none().then_some(Duration::from_secs(60)),
            nodelay: true,
            ..Default::default()
        };
        let limits = StartupLimits::new(s.max_startups, s.max_startups_per_source as usize);
        Ok(Self {
            listener,
            ctx,
            russh: Arc::new(russh),
            limits,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `stop_accepting` resolves (and closes the
    /// listening socket then), serves those it has until `disconnect`
    /// resolves, then disconnects every client — the two steps of a
    /// graceful drain.
    pub async fn run_until(
        self,
        stop_accepting: impl Future,
        disconnect: impl Future<Output = ()>,
    ) {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(stop_accepting);
        loop {
            let accepted = tokio::select! {
                _ = &mut stop_accepting => break,
                a = self.listener.accept() => a,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // russh applies `nodelay` only in its own accept loop.
            let _ = socket.set_nodelay(true);
            let guard = match self.limits.try_acquire(peer.ip()) {
                Ok(guard) => guard,
                Err(why) => {
                    crate::ops::metrics::connection_refused(&why);
                    tracing::warn!(%peer, reason = %why, "dropping a new connection");
                    continue;
                }
            };
            // The login grace time runs from accept, so a connection that
            // never sends a byte cannot hold its startup slot for ever.
            let login_deadline = tokio::time::Instant::now()
                + self.ctx.server.login_grace.max(Duration::from_secs(1));
            let handler = ConnectionHandler::new(self.ctx.clone(), peer, guard);
            tokio::spawn(connection(
                self.russh.clone(),
                self.ctx.clone(),
                socket,
                peer,
                handler,
                login_deadline,
                stop_rx.clone(),
            ));
        }
        drop(self.listener);
        disconnect.await;
        let _ = stop_tx.send(true);
        // Give connections a moment to say goodbye.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connection(
    config: Arc<russh::server::Config>,
    ctx: Arc<ServerContext>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: ConnectionHandler,
    login_deadline: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) {
    let authenticated = handler.authenticated.clone();
    let cause = handler.end_cause.clone();
    let started = tokio::time::timeout_at(
        login_deadline,
        russh::server::run_stream(config, socket, handler),
    )
    .await;
    let mut session = match started {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "SSH handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "login grace time over before the SSH handshake; disconnecting");
            return;
        }
    };
    let handle = session.handle();
    let grace = tokio::time::sleep_until(login_deadline);
    let lifetime = tokio::time::sleep(
        ctx.server
            .max_session
            .unwrap_or(Duration::from_secs(100 * 365 * 86_400)),
    );
    tokio::pin!(grace, lifetime);
    let mut grace_done = false;
    loop {
        tokio::select! {
            result = &mut session => {
                if let Err(russh::Error::InactivityTimeout) = &result {
                    cause.set(EndReason::TimedOut);
                }
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut grace, if !grace_done => {
                grace_done = true;
                if !authenticated.load(Ordering::Relaxed) {
                    tracing::info!(%peer, "login grace time over; disconnecting");
                    // Say goodbye if the client still reads, then drop the
                    // connection whatever it does (a client stalled in key
                    // exchange must not keep its startup slot).
                    let bye = handle.disconnect(russh::Disconnect::ByApplication, "login grace time exceeded".into(), "en".into());
                    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    return;
                }
            }
            _ = &mut lifetime => {
                tracing::info!(%peer, "maximum session duration reached; disconnecting");
                cause.set(EndReason::TimedOut);
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "maximum session duration reached".into(), "en".into()).await;
            }
            _ = stop.changed() => {
                cause.set_caused(EndReason::Terminated, Some("shutdown"));
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "the gateway is shutting down".into(), "en".into()).await;
            }
        }
    }
}
