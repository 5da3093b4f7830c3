//! Limits on unauthenticated connections, like sshd's `MaxStartups` and
//! `PerSourceMaxStartups`: a connection holds a [`StartupGuard`] until it
//! authenticates or goes away; past the limits new connections are dropped
//! before the SSH handshake.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counters of connections that have not authenticated yet.
#[derive(Debug)]
pub struct StartupLimits {
    overall: usize,
    per_source: usize,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One unauthenticated connection's slot; freed on drop.
#[derive(Debug)]
pub struct StartupGuard {
    limits: Arc<StartupLimits>,
    source: IpAddr,
}

impl StartupLimits {
    /// Limits of `overall` connections and `per_source` per address.
    pub fn new(overall: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            overall,
            per_source,
            state: Mutex::new(Counts::default()),
        })
    }

    /// A slot for a connection from `source`, or `None` when over a limit.
    pub fn try_acquire(self: &Arc<Self>, source: IpAddr) -> Option<StartupGuard> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let from_source = state.by_source.get(&source).copied().unwrap_or(0);
        if state.total >= self.overall || from_source >= self.per_source {
            return None;
        }
        state.total += 1;
        state.by_source.insert(source, from_source + 1);
        Some(StartupGuard {
            limits: self.clone(),
            source,
        })
    }

    /// Unauthenticated connections now.
    pub fn current(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

impl Drop for StartupGuard {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.by_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_overall_and_per_source_and_frees_on_drop() {
        let limits = StartupLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let g1 = limits.try_acquire(a).expect("first");
        let _g2 = limits.try_acquire(a).expect("second");
        assert!(limits.try_acquire(a).is_none(), "per source");
        let _g3 = limits.try_acquire(b).expect("other source");
        assert!(limits.try_acquire(b).is_none(), "overall");
        drop(g1);
        let _g4 = limits.try_acquire(b).expect("a slot was freed");
        assert_eq!(limits.current(), 3);
    }
}
