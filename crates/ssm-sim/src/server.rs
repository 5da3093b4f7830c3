//! Runs `ssmgate sim`: binds one port and serves the SSM API (`POST /`) and
//! the data-channel WebSocket (`/v1/data-channel/{id}`) on it, until told to
//! stop. Tests and the demo start it in-process with [`SimServer::start`].

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api;
use super::config::SimConfig;
use super::registry::Registry;
use super::service::DataChannelService;

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the simulator's server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// A simulator running in this process.
pub struct SimServer {
    /// Where it listens; the SSM endpoint is `http://{addr}`.
    pub addr: SocketAddr,
    /// Its session registry, for tests that look inside.
    pub registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl SimServer {
    /// Binds `listen` (port 0 picks a free one) and serves in the background.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        let registry = registry_for(&config, addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, registry.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            registry,
            stop: Some(stop),
            task,
        })
    }

    /// The endpoint URL for the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every live session (clients get `channel_closed`), stops
    /// accepting, lets open requests finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        for session in self.registry.describe(true) {
            let _ = self.registry.terminate(&session.session_id);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Serve(std::io::Error::other(e))),
        }
    }
}

/// The registry for a simulator listening on `addr`.
pub fn registry_for(config: &SimConfig, addr: SocketAddr) -> Registry {
    let registry = Registry::new(
        config.inventory(),
        format!("ws://{addr}"),
        config.faults.clone(),
    )
    .in_location(crate::registry::Location {
        region: config.region.clone(),
        account: config.account.clone(),
    })
    .with_accounts(config.hosted_accounts());
    registry.api_faults().apply(&config.api_faults);
    registry
        .identities()
        .set_role_max_session_duration(config.role_max_session_duration);
    registry
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let data = DataChannelService::new(registry.clone(), config.mode, config.faults.clone());
    let app = api::router(registry).merge(data.router());
    // Keystrokes and acks are small: no Nagle delay on the data channel.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
