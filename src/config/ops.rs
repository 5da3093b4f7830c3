//! The operations sections of `ssmgate.toml`: `[log]` (format and level of
//! the process's log lines), `[admin]` (the health, readiness and metrics
//! listener) and `[cluster]` (how replicas sharing one database see each
//! other: heartbeats, orphaned sessions, kill requests).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::raw::Invalid;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// A tracing filter (`info`, `ssmgate=debug,info`); the environment's
    /// `SSMGATE_LOG` or `RUST_LOG` replaces it when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The `[admin]` section: the HTTP listener for `/healthz`, `/readyz` and
/// `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens; `None` (no `listen` key) switches it off.
    pub listen: Option<SocketAddr>,
    /// While the database is unreachable, `/readyz` still succeeds as long
    /// as the spool holds at most this many bytes …
    pub ready_spool_bytes: u64,
    /// … and its oldest write is at most this old.
    pub ready_spool_age: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: None,
            ready_spool_bytes: 64 << 20,
            ready_spool_age: Duration::from_secs(300),
        }
    }
}

/// The `[cluster]` section: replicas on one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How often a replica writes its heartbeat and looks for kill
    /// requests, user locks and orphaned sessions.
    pub heartbeat: Duration,
    /// A replica whose heartbeat is older than this is gone: its live
    /// sessions are shown as `orphaned`.
    pub orphan_after: Duration,
    /// … and sessions orphaned this long are closed in the record by any
    /// other replica (`terminated`, cause `orphaned`).
    pub orphan_close_after: Duration,
    /// The address shown for this replica in `sessions list --live`
    /// (default: the host name and the SSH listen port).
    pub advertise: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            orphan_after: Duration::from_secs(30),
            orphan_close_after: Duration::from_secs(120),
            advertise: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl RawLog {
    pub(super) fn build(self) -> Result<LogConfig, Invalid> {
        let format = match self.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err((
                    "log.format".into(),
                    format!("must be \"text\" or \"json\" (got \"{other}\")"),
                ));
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return Err((
                "log.level".into(),
                format!("must be a tracing filter such as \"info\" or \"ssmgate=debug,info\": {e}"),
            ));
        }
        Ok(LogConfig {
            format,
            level: self.level,
        })
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<String>,
    ready_spool_mib: u64,
    ready_spool_age_secs: u64,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: None,
            ready_spool_mib: 64,
            ready_spool_age_secs: 300,
        }
    }
}

impl RawAdmin {
    pub(super) fn build(self) -> Result<AdminConfig, Invalid> {
        let listen = match &self.listen {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                (
                    "admin.listen".to_owned(),
                    format!(
                        "must be an IP address and port such as 127.0.0.1:9090 (got \"{text}\")"
                    ),
                )
            })?),
        };
        if self.ready_spool_mib > 1 << 20 {
            return Err((
                "admin.ready_spool_mib".into(),
                "must be at most 1048576".into(),
            ));
        }
        if self.ready_spool_age_secs == 0 || self.ready_spool_age_secs > 86_400 {
            return Err((
                "admin.ready_spool_age_secs".into(),
                "must be between 1 and 86400".into(),
            ));
        }
        Ok(AdminConfig {
            listen,
            ready_spool_bytes: self.ready_spool_mib << 20,
            ready_spool_age: Duration::from_secs(self.ready_spool_age_secs),
        })
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCluster {
    heartbeat_secs: u64,
    orphan_after_secs: u64,
    orphan_close_after_secs: u64,
    advertise: Option<String>,
}

impl Default for RawCluster {
    fn default() -> Self {
        let d = ClusterConfig::default();
        Self {
            heartbeat_secs: d.heartbeat.as_secs(),
            orphan_after_secs: d.orphan_after.as_secs(),
            orphan_close_after_secs: d.orphan_close_after.as_secs(),
            advertise: None,
        }
    }
}

impl RawCluster {
    pub(super) fn build(self) -> Result<ClusterConfig, Invalid> {
        if !(1..=300).contains(&self.heartbeat_secs) {
            return Err((
                "cluster.heartbeat_secs".into(),
                "must be between 1 and 300".into(),
            ));
        }
        if self.orphan_after_secs < 2 * self.heartbeat_secs {
            return Err((
                "cluster.orphan_after_secs".into(),
                format!(
                    "must be at least twice heartbeat_secs ({}), or a replica that is only slow looks gone",
                    2 * self.heartbeat_secs
                ),
            ));
        }
        if self.orphan_close_after_secs < self.orphan_after_secs {
            return Err((
                "cluster.orphan_close_after_secs".into(),
                format!(
                    "must be at least orphan_after_secs ({})",
                    self.orphan_after_secs
                ),
            ));
        }
        if let Some(a) = &self.advertise
            && (a.is_empty() || a.len() > 255 || a.chars().any(char::is_control))
        {
            return Err((
                "cluster.advertise".into(),
                "must be 1-255 characters without control characters".into(),
            ));
        }
        Ok(ClusterConfig {
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            orphan_after: Duration::from_secs(self.orphan_after_secs),
            orphan_close_after: Duration::from_secs(self.orphan_close_after_secs),
            advertise: self.advertise,
        })
    }
}
