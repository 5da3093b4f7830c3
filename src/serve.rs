//! `ssmgate serve`: builds the gateway from its configuration — host key,
//! SSM client, inventory, identities, the recording store and recorder —
//! and runs the SSH server. The demo and
//! the end-to-end tests start it in-process with [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{AwsCredentials, Config};
use crate::gateway::Gateway;
use crate::gateway::grants::ReasonGrants;
use crate::inventory::Fleet;
use crate::keyfile;
use crate::ops::admin::{AdminServer, Readiness};
use crate::ops::cluster::Cluster;
use crate::ops::live::{LiveSessions, StopCause};
use crate::policy::PolicyEngine;
use crate::policy::reload::{ReloadHook, ReloadReport};
use crate::recording::{AuditKind, Recorder};
use crate::request::Justification;
use crate::ssh::auth::Identities;
use crate::ssh::context::ServerContext;
use crate::ssh::server::SshServer;
use crate::ssh::session_limits::SessionLimits;
use crate::sshd::SshdCarrier;
use crate::sshd::ca::UserCa;
use crate::sshd::hostkeys::HostTrust;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("host key: {0}")]
    HostKey(#[from] keyfile::KeyFileError),
    #[error("[sshd_backend] ca_key: {0}")]
    UserCa(keyfile::KeyFileError),
    #[error("policies: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("session database {url}: {source}")]
    Store {
        url: String,
        source: crate::recording::StoreError,
    },
    #[error("recording: {0}")]
    Recording(#[from] crate::recording::RecorderError),
}

/// A gateway running in this process.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `SHA256:…` of its host key.
    pub host_key_fingerprint: String,
    /// The host key's public half, OpenSSH format (for known_hosts).
    pub host_key_openssh: String,
    /// Where sessions are recorded.
    pub recorder: Recorder,
    /// Open channels per connection and per user.
    pub session_limits: Arc<SessionLimits>,
    /// Where the admin listener (`/healthz`, `/readyz`, `/metrics`)
    /// listens, when `[admin] listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// What `/readyz` reports; [`Readiness::set_draining`] on shutdown.
    pub readiness: Arc<Readiness>,
    /// This process's live sessions.
    pub live: Arc<LiveSessions>,
    /// This replica among those on the database.
    pub cluster: Arc<Cluster>,
    admin: Option<AdminServer>,
    /// Stops accepting SSH connections.
    stop_accepting: Option<oneshot::Sender<()>>,
    /// Disconnects every client (after `stop_accepting`).
    stop: Option<oneshot::Sender<()>>,
    cluster_stop: watch::Sender<bool>,
    cluster_task: Option<JoinHandle<()>>,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// The first half of a graceful stop: stops accepting connections,
    /// makes `/readyz` fail, tells every open session channel once, and
    /// waits up to `within` for the sessions to end by themselves (or
    /// until `cut_short` resolves: a second SIGTERM). Then ends those left
    /// (recorded as `terminated`, cause `shutdown`). [`shutdown`]
    /// (Self::shutdown) does the rest. Returns how many were ended.
    pub async fn drain(&mut self, within: Duration, cut_short: impl Future<Output = ()>) -> usize {
        self.readiness.set_draining();
        self.live.close();
        if let Some(stop) = self.stop_accepting.take() {
            let _ = stop.send(());
        }
        let open = self.live.len();
        tracing::info!(
            sessions = open,
            drain_secs = within.as_secs(),
            "draining: no new connections; waiting for open sessions to end"
        );
        if open > 0 && !within.is_zero() {
            self.live.notify(&format!(
                "ssmgate: this gateway is shutting down; this session will be ended in {} s. Reconnect to reach another gateway.",
                within.as_secs()
            ));
        }
        let live = self.live.clone();
        let emptied = async move {
            while !live.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = emptied => {}
            () = tokio::time::sleep(within) => {}
            () = cut_short => tracing::info!("draining cut short"),
        }
        let ended = self.live.stop_all(&StopCause::Shutdown);
        if ended > 0 {
            tracing::info!(sessions = ended, "draining: ending the sessions still open");
            // Each ends its pipe, tells its user and records its end.
            let live = self.live.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), async move {
                while !live.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
        }
        ended
    }

    /// Disconnects everyone, records the sessions' ends, and stops.
    pub async fn shutdown(mut self) {
        self.readiness.set_draining();
        if let Some(stop) = self.stop_accepting.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let _ = self.cluster_stop.send(true);
        if let Some(task) = self.cluster_task.take() {
            let _ = task.await;
        }
        if let Some(admin) = self.admin.take() {
            admin.shutdown().await;
        }
        self.recorder
            .audit(
                AuditKind::Admin,
                None,
                None,
                None,
                serde_json::json!({ "action": "gateway_stop", "listen": self.addr.to_string() }),
            )
            .await;
        self.recorder.close().await;
    }
}

/// Builds everything from `config` and starts serving in the background.
pub async fn start(config: &Config) -> Result<RunningGateway, ServeError> {
    let (host_key, generated) =
        keyfile::load_or_generate(&config.server.host_key, "ssmgate host key")?;
    let public = host_key.public_key().clone();
    let host_key_fingerprint = keyfile::fingerprint(&public);
    if generated {
        tracing::info!(path = %config.server.host_key.display(), fingerprint = %host_key_fingerprint, "generated a new host key");
    }
    let signed = config.aws.credentials == AwsCredentials::Chain;
    let aws = crate::aws::load_config(
        config.aws.region.clone(),
        config.aws.endpoint.clone(),
        signed,
        config.aws.http_pool,
    )
    .await;
    let fleet = Fleet::from_config(&config.aws, config.inventory.cache, &aws).await;
    let url = &config.database.url;
    let store = crate::recording::connect(url)
        .await
        .map_err(|source| ServeError::Store {
            url: crate::recording::redact_url(url),
            source,
        })?;
    let recorder = Recorder::start(store.clone(), config.recording.clone()).await?;
    let cluster = Cluster::register(
        store.clone(),
        recorder.clone(),
        LiveSessions::new(),
        config.cluster.clone(),
        advertised(config, config.server.listen),
    )
    .await
    .map_err(|source| ServeError::Store {
        url: crate::recording::redact_url(url),
        source,
    })?;
    let policy = Arc::new(PolicyEngine::load_with(
        &config.policy.dir,
        &config.policy.example_reason,
    )?);
    let mut gateway = Gateway::new(
        fleet,
        config.sessions.clone(),
        policy.clone(),
        recorder.clone(),
    )
    .with_grants(ReasonGrants::new(
        store.clone(),
        recorder.clone(),
        &config.justification,
    ))
    .with_cluster(cluster.clone());
    if config.sshd_backend.enabled {
        let backend = &config.sshd_backend;
        let (ca, generated) =
            UserCa::load_or_generate(&backend.ca_key).map_err(ServeError::UserCa)?;
        if generated {
            tracing::info!(path = %backend.ca_key.display(), fingerprint = %ca.fingerprint(), "generated the user CA of the sshd backend; targets must trust it (ssmgate ca public-key)");
        }
        let trust = HostTrust::new(&backend.host_cas, store.clone());
        let carrier = SshdCarrier::new(ca, trust, config.server.max_session);
        gateway = gateway.with_sshd_backend(backend.clone(), Arc::new(carrier));
    }
    let gateway = Arc::new(gateway);
    let fds = crate::fd_limit::raise_and_budget(u64::from(config.server.max_startups.full));
    tracing::info!(
        open_files_limit = ?fds.limit, raised_from = ?fds.raised_from, sessions = fds.sessions,
        "the open-files limit allows this many sessions at once; more are refused with a message"
    );
    let session_limits = SessionLimits::with_total(
        config.server.max_sessions_per_connection as usize,
        config.server.max_sessions_per_user as usize,
        fds.sessions,
    );
    let ctx = Arc::new(ServerContext {
        identities: Identities::from_config(config),
        justification: Justification::from_config(&config.justification),
        gateway,
        server: config.server.clone(),
        sessions: session_limits.clone(),
    });
    let listen = config.server.listen;
    let server = SshServer::bind(ctx, host_key)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = server.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let readiness = Readiness::new();
    readiness.set_ssh_bound(true);
    readiness.set_policies_loaded(true);
    let admin = match config.admin.listen {
        Some(at) => Some(
            crate::ops::admin::start(
                at,
                &config.admin,
                readiness.clone(),
                recorder.clone(),
                store.clone(),
            )
            .await
            .map_err(|source| ServeError::Bind { addr: at, source })?,
        ),
        None => None,
    };
    cluster.set_address(advertised(config, addr));
    let (cluster_stop, cluster_stopped) = watch::channel(false);
    let cluster_task = cluster.spawn(cluster_stopped);
    let (stop_accepting, accepting_stopped) = oneshot::channel::<()>();
    let (stop, stopped) = oneshot::channel::<()>();
    let (watch_stop, watch_stopped) = oneshot::channel::<()>();
    let watcher = policy.spawn_watcher(
        async {
            let _ = watch_stopped.await;
        },
        reload_auditor(&recorder),
    );
    recorder
        .audit(
            AuditKind::Admin,
            None,
            None,
            None,
            serde_json::json!({
                "action": "gateway_start",
                "listen": addr.to_string(),
                "version": env!("CARGO_PKG_VERSION"),
                "host_key": host_key_fingerprint,
                "policies": policy.snapshot().policies.len(),
                "replica": cluster.id(),
            }),
        )
        .await;
    let task = tokio::spawn(async move {
        server
            .run_until(accepting_stopped, async {
                let _ = stopped.await;
            })
            .await;
        let _ = watch_stop.send(());
        let _ = watcher.await;
    });
    Ok(RunningGateway {
        addr,
        host_key_fingerprint,
        host_key_openssh: public.to_openssh().unwrap_or_default(),
        recorder,
        session_limits,
        admin_addr: admin.as_ref().map(|a| a.addr),
        readiness,
        admin,
        live: cluster.live().clone(),
        cluster,
        stop_accepting: Some(stop_accepting),
        stop: Some(stop),
        cluster_stop,
        cluster_task: Some(cluster_task),
        task,
    })
}

/// The address shown for this replica: `[cluster] advertise`, or the host
/// name and the SSH port.
fn advertised(config: &Config, addr: SocketAddr) -> String {
    if let Some(a) = &config.cluster.advertise {
        return a.clone();
    }
    format!("{}:{}", crate::ops::host_name(), addr.port())
}

/// Records each policy reload (or rejected reload) in the audit trail.
fn reload_auditor(recorder: &Recorder) -> ReloadHook {
    let recorder = recorder.clone();
    Arc::new(move |report: ReloadReport| {
        let recorder = recorder.clone();
        let detail = match &report.result {
            Ok((policies, files)) => serde_json::json!({
                "trigger": report.trigger.as_str(), "outcome": "loaded",
                "policies": policies, "files": files,
            }),
            Err(e) => serde_json::json!({
                "trigger": report.trigger.as_str(), "outcome": "rejected", "error": e,
            }),
        };
        tokio::spawn(async move {
            recorder
                .audit(AuditKind::PolicyReload, None, None, None, detail)
                .await;
        });
    })
}
