//! Operating the gateway: the admin HTTP listener (health, readiness,
//! Prometheus metrics), the metrics themselves, the registry of this
//! process's live sessions (to end one on request or on shutdown) and the
//! cluster of replicas sharing one database (heartbeats, kill requests,
//! user locks, orphaned sessions).

/// This machine's host name (shown for a replica, and in who ran an
/// administrative command).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub mod admin;
pub mod cluster;
pub mod live;
pub mod metrics;
