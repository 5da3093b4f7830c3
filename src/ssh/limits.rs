//! Limits on unauthenticated connections, like sshd's `MaxStartups`
//! (`start:rate:full`, with random early drop) and `PerSourceMaxStartups`:
//! a connection holds a [`StartupGuard`] from accept until it
//! authenticates or goes away (the login grace time bounds that); new
//! connections are dropped before the SSH handshake, at random from
//! `start` on and always at `full`, so a flood of silent connections
//! degrades service for everyone a little instead of locking everyone out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::MaxStartups;

/// Counters of connections that have not authenticated yet.
#[derive(Debug)]
pub struct StartupLimits {
    overall: MaxStartups,
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
    pub fn new(overall: MaxStartups, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            overall,
            per_source,
            state: Mutex::new(Counts::default()),
        })
    }

    /// A slot for a connection from `source`, or why it is dropped.
    pub fn try_acquire(self: &Arc<Self>, source: IpAddr) -> Result<StartupGuard, Dropped> {
        self.try_acquire_with(source, rand::random_range(0..100))
    }

    /// [`Self::try_acquire`] with the random draw (0–99) given.
    fn try_acquire_with(
        self: &Arc<Self>,
        source: IpAddr,
        draw: u32,
    ) -> Result<StartupGuard, Dropped> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let from_source = state.by_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.per_source {
            return Err(Dropped::PerSource);
        }
        let total = u32::try_from(state.total).unwrap_or(u32::MAX);
        let chance = self.overall.drop_percent(total);
        if chance >= 100 {
            return Err(Dropped::Full);
        }
        if draw < chance {
            return Err(Dropped::Early { chance });
        }
        state.total += 1;
        state.by_source.insert(source, from_source + 1);
        crate::ops::metrics::preauth_connections(1.0);
        Ok(StartupGuard {
            limits: self.clone(),
            source,
        })
    }

    /// Unauthenticated connections now.
    pub fn current(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

/// Why a new connection was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// `max_startups_per_source` reached for its address.
    #[error("too many unauthenticated connections from this address")]
    PerSource,
    /// `full` unauthenticated connections reached.
    #[error("too many unauthenticated connections (max_startups full)")]
    Full,
    /// Random early drop between `start` and `full`.
    #[error("random early drop ({chance}% while over max_startups start)")]
    Early {
        /// The drop chance in percent at that moment.
        chance: u32,
    },
}

impl Drop for StartupGuard {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        state.total = state.total.saturating_sub(1);
        crate::ops::metrics::preauth_connections(-1.0);
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

    fn spec(s: &str) -> MaxStartups {
        MaxStartups::parse(s).expect("spec")
    }

    #[test]
    fn limits_overall_and_per_source_and_frees_on_drop() {
        let limits = StartupLimits::new(spec("3"), 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let g1 = limits.try_acquire(a).expect("first");
        let _g2 = limits.try_acquire(a).expect("second");
        assert_eq!(limits.try_acquire(a).err(), Some(Dropped::PerSource));
        let _g3 = limits.try_acquire(b).expect("other source");
        assert_eq!(limits.try_acquire(b).err(), Some(Dropped::Full));
        drop(g1);
        let _g4 = limits.try_acquire(b).expect("a slot was freed");
        assert_eq!(limits.current(), 3);
    }

    #[test]
    fn early_drop_between_start_and_full() {
        let limits = StartupLimits::new(spec("2:50:4"), 100);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let _g1 = limits.try_acquire_with(a, 0).expect("below start");
        let _g2 = limits.try_acquire_with(a, 0).expect("below start");
        // At start (2 open): 50 % chance; a draw under 50 drops.
        assert_eq!(
            limits.try_acquire_with(a, 49).err(),
            Some(Dropped::Early { chance: 50 })
        );
        let _g3 = limits.try_acquire_with(a, 50).expect("a lucky draw passes");
        // 3 open: 75 %.
        assert!(limits.try_acquire_with(a, 74).is_err());
        let _g4 = limits.try_acquire_with(a, 99).expect("passes");
        // Full: always dropped.
        assert_eq!(limits.try_acquire_with(a, 99).err(), Some(Dropped::Full));
    }
}
