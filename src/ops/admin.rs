//! The admin HTTP listener (`[admin] listen`): `/healthz`, `/readyz` and
//! `/metrics`, served by axum beside the SSH listener. It owns the
//! [`Readiness`] flags (SSH listener bound, policies loaded, draining) and
//! the readiness rule:
//!
//! ready = SSH listener bound AND policies loaded AND not draining AND
//! (database ping ok OR (`[recording] fail_closed` is false AND spool
//! bytes ≤ `ready_spool_mib` AND oldest spooled write ≤
//! `ready_spool_age_secs`)).
//!
//! With `fail_closed` on, new sessions are refused while the database is
//! down, so such a replica is not ready. The database is pinged with a 1 s
//! timeout at most once a second (answers are reused in between).
//!
//! `/healthz` answers 200 while the process serves HTTP at all. `/readyz`
//! answers 200 or 503 with one line per check (`ssh: ok`, `database:
//! fail: …`) and a last line `ready` or `not ready`. `/metrics` sets the
//! state gauges ([`super::metrics::set_state`]) from the recorder and the
//! store, then renders every metric in the Prometheus text format.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use super::metrics;
use crate::config::AdminConfig;
use crate::recording::{Recorder, Store};

/// How long a database ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a ping's answer is reused.
const PING_FRESH: Duration = Duration::from_secs(1);
/// How long the live-grant count is reused.
const GRANTS_FRESH: Duration = Duration::from_secs(5);

/// What `/readyz` knows besides the database: set by `serve` as the
/// gateway starts, and on SIGTERM ([`Readiness::set_draining`]).
#[derive(Debug, Default)]
pub struct Readiness {
    ssh_bound: AtomicBool,
    policies_loaded: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Nothing ready yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The SSH listener is bound (or no longer).
    pub fn set_ssh_bound(&self, bound: bool) {
        self.ssh_bound.store(bound, Ordering::SeqCst);
    }

    /// The policies are loaded (or no longer).
    pub fn set_policies_loaded(&self, loaded: bool) {
        self.policies_loaded.store(loaded, Ordering::SeqCst);
    }

    /// The gateway is shutting down: `/readyz` fails from now on
    /// ("draining"), so load balancers send no new connections.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True once [`Readiness::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The inputs of the readiness rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyInputs {
    pub ssh_bound: bool,
    pub policies_loaded: bool,
    pub draining: bool,
    pub database_ok: bool,
    pub fail_closed: bool,
    pub spool_bytes: u64,
    pub spool_oldest_age: Option<Duration>,
    pub ready_spool_bytes: u64,
    pub ready_spool_age: Duration,
}

/// The readiness rule: ready or not, and one line per check.
pub fn evaluate(i: &ReadyInputs) -> (bool, String) {
    let mut ready = true;
    let mut body = String::new();
    let mut line = |name: &str, ok: bool, detail: String| {
        ready &= ok;
        let verdict = if ok { "ok" } else { "fail" };
        body.push_str(&format!("{name}: {verdict}{detail}\n"));
    };
    line(
        "ssh",
        i.ssh_bound,
        if i.ssh_bound {
            String::new()
        } else {
            " (the SSH listener is not bound)".into()
        },
    );
    line(
        "policies",
        i.policies_loaded,
        if i.policies_loaded {
            String::new()
        } else {
            " (no policies loaded)".into()
        },
    );
    line(
        "draining",
        !i.draining,
        if i.draining {
            " (draining: shutting down)".into()
        } else {
            String::new()
        },
    );
    let age = i.spool_oldest_age.unwrap_or_default();
    let spool = format!(
        "spool {} bytes (budget {}), oldest {}s (budget {}s)",
        i.spool_bytes,
        i.ready_spool_bytes,
        age.as_secs(),
        i.ready_spool_age.as_secs()
    );
    let (ok, detail) = if i.database_ok {
        (true, String::new())
    } else if i.fail_closed {
        (
            false,
            " (unreachable; [recording] fail_closed refuses new sessions)".into(),
        )
    } else if i.spool_bytes <= i.ready_spool_bytes && age <= i.ready_spool_age {
        (
            true,
            format!(" (unreachable, spooling within budget: {spool})"),
        )
    } else {
        (false, format!(" (unreachable, spool over budget: {spool})"))
    };
    line("database", ok, detail);
    body.push_str(if ready { "ready\n" } else { "not ready\n" });
    (ready, body)
}

struct AdminState {
    readiness: Arc<Readiness>,
    recorder: Recorder,
    store: Arc<dyn Store>,
    config: AdminConfig,
    /// The last ping: when, and whether it answered.
    ping: Mutex<Option<(Instant, bool)>>,
    /// The last live-grant count: when, and the count.
    grants: Mutex<Option<(Instant, Option<u64>)>>,
}

impl AdminState {
    /// Whether the database answers (a ping at most once per
    /// [`PING_FRESH`]).
    async fn database_ok(&self) -> bool {
        let mut last = self.ping.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < PING_FRESH
        {
            return ok;
        }
        let ok = matches!(
            tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        );
        *last = Some((Instant::now(), ok));
        ok
    }

    /// Live reason grants over all replicas (cached for [`GRANTS_FRESH`]).
    async fn grants_live(&self, database_ok: bool) -> Option<u64> {
        let mut last = self.grants.lock().await;
        if let Some((at, n)) = *last
            && at.elapsed() < GRANTS_FRESH
        {
            return n;
        }
        let n = if database_ok {
            let now = chrono::Utc::now();
            match tokio::time::timeout(PING_TIMEOUT, self.store.count_live_grants(now)).await {
                Ok(Ok(n)) => Some(n),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "metrics: cannot count live reason grants");
                    None
                }
                Err(_) => None,
            }
        } else {
            None
        };
        *last = Some((Instant::now(), n));
        n
    }

    async fn ready(&self) -> (bool, String) {
        let stats = self.recorder.stats();
        let inputs = ReadyInputs {
            ssh_bound: self.readiness.ssh_bound.load(Ordering::SeqCst),
            policies_loaded: self.readiness.policies_loaded.load(Ordering::SeqCst),
            draining: self.readiness.is_draining(),
            database_ok: self.database_ok().await,
            fail_closed: self.recorder.options().fail_closed,
            spool_bytes: stats.spool_bytes,
            spool_oldest_age: self.recorder.spool_oldest_age(),
            ready_spool_bytes: self.config.ready_spool_bytes,
            ready_spool_age: self.config.ready_spool_age,
        };
        evaluate(&inputs)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let (ready, body) = state.ready().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

async fn metrics_text(State(state): State<Arc<AdminState>>) -> Response {
    let database_up = state.database_ok().await;
    let stats = state.recorder.stats();
    metrics::set_state(&metrics::StateSample {
        queue_bytes: stats.queued_bytes,
        spool_bytes: stats.spool_bytes,
        spool_oldest_age: state.recorder.spool_oldest_age(),
        database_up,
        grants_live: state.grants_live(database_up).await,
    });
    match metrics::render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics are not installed\n",
        )
            .into_response(),
    }
}

/// The running admin listener.
pub struct AdminServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Stops serving (requests in flight finish first).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Installs the metrics recorder (once per process), binds `listen` and
/// serves the three routes in the background.
pub async fn start(
    listen: SocketAddr,
    config: &AdminConfig,
    readiness: Arc<Readiness>,
    recorder: Recorder,
    store: Arc<dyn Store>,
) -> std::io::Result<AdminServer> {
    metrics::install();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AdminState {
        readiness,
        recorder,
        store,
        config: config.clone(),
        ping: Mutex::new(None),
        grants: Mutex::new(None),
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    tracing::info!(%addr, "admin listener: /healthz, /readyz, /metrics");
    Ok(AdminServer {
        addr,
        stop: Some(stop),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ok() -> ReadyInputs {
        ReadyInputs {
            ssh_bound: true,
            policies_loaded: true,
            draining: false,
            database_ok: true,
            fail_closed: true,
            spool_bytes: 0,
            spool_oldest_age: None,
            ready_spool_bytes: 1000,
            ready_spool_age: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_readiness_rule() {
        let (ready, body) = evaluate(&all_ok());
        assert!(ready, "{body}");
        assert_eq!(
            body,
            "ssh: ok\npolicies: ok\ndraining: ok\ndatabase: ok\nready\n"
        );
        for broken in [
            ReadyInputs {
                ssh_bound: false,
                ..all_ok()
            },
            ReadyInputs {
                policies_loaded: false,
                ..all_ok()
            },
            ReadyInputs {
                draining: true,
                ..all_ok()
            },
            // Database down with fail_closed: sessions are refused.
            ReadyInputs {
                database_ok: false,
                ..all_ok()
            },
            // Spooling, over the byte budget …
            ReadyInputs {
                database_ok: false,
                fail_closed: false,
                spool_bytes: 1001,
                spool_oldest_age: Some(Duration::from_secs(1)),
                ..all_ok()
            },
            // … or the age budget.
            ReadyInputs {
                database_ok: false,
                fail_closed: false,
                spool_bytes: 10,
                spool_oldest_age: Some(Duration::from_secs(61)),
                ..all_ok()
            },
        ] {
            let (ready, body) = evaluate(&broken);
            assert!(!ready, "{broken:?}: {body}");
            assert!(body.ends_with("not ready\n"), "{body}");
        }
        let (ready, body) = evaluate(&ReadyInputs {
            draining: true,
            ..all_ok()
        });
        assert!(
            !ready && body.contains("draining: fail (draining"),
            "{body}"
        );
        // Spooling within both budgets is ready.
        let (ready, body) = evaluate(&ReadyInputs {
            database_ok: false,
            fail_closed: false,
            spool_bytes: 1000,
            spool_oldest_age: Some(Duration::from_secs(60)),
            ..all_ok()
        });
        assert!(ready, "{body}");
        assert!(body.contains("spooling within budget"), "{body}");
    }
}
