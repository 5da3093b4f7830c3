//! The process's open-files limit and the sessions it allows. At start the
//! soft limit is raised to the hard one (what Go's runtime and most servers
//! do: the soft limit is often a small default), and the gateway's session
//! capacity is what is left after a reserve, at [`FDS_PER_SESSION`]
//! descriptors each. A full gateway then refuses a new session with one
//! line (see `ssh::session_limits`) instead of failing mid-session when
//! `accept` or a WebSocket connect runs out of descriptors.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Descriptors one session holds in the gateway: the client's TCP
/// connection and the data channel's WebSocket.
pub const FDS_PER_SESSION: u64 = 2;
/// Descriptors kept for everything else: listeners, the database pool,
/// HTTP connections to AWS, logs, the sshd backend's keys, the runtime.
pub const RESERVED_FDS: u64 = 256;

/// What the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft limit now (after raising it); `None` = unlimited.
    pub limit: Option<u64>,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
    /// How many sessions fit.
    pub sessions: usize,
}

/// Raises the soft open-files limit to the hard one (when it is lower)
/// and works out how many sessions fit, keeping `reserve_extra`
/// descriptors (unauthenticated connections) besides [`RESERVED_FDS`].
pub fn raise_and_budget(reserve_extra: u64) -> FdBudget {
    let now = getrlimit(Resource::Nofile);
    let mut raised_from = None;
    let mut limit = now.current;
    if let (Some(soft), hard) = (now.current, now.maximum)
        && hard.is_none_or(|h| h > soft)
    {
        let mut wanted = now;
        wanted.current = hard;
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            raised_from = Some(soft);
            limit = getrlimit(Resource::Nofile).current;
        }
    }
    FdBudget {
        limit,
        raised_from,
        sessions: sessions_for(limit, reserve_extra),
    }
}

/// Sessions that fit in `limit` descriptors.
pub fn sessions_for(limit: Option<u64>, reserve_extra: u64) -> usize {
    match limit {
        None => usize::MAX,
        Some(limit) => {
            let free = limit.saturating_sub(RESERVED_FDS.saturating_add(reserve_extra));
            usize::try_from(free / FDS_PER_SESSION).unwrap_or(usize::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget() {
        assert_eq!(sessions_for(Some(20_000), 64), (20_000 - 256 - 64) / 2);
        assert_eq!(sessions_for(Some(100), 64), 0);
        assert_eq!(sessions_for(None, 64), usize::MAX);
        let b = raise_and_budget(64);
        assert!(b.sessions > 0, "{b:?}");
        // Raised to the hard limit (or it already was).
        assert_eq!(getrlimit(Resource::Nofile).current, b.limit);
    }
}
