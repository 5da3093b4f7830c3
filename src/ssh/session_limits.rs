//! Caps on open channels (shells, commands, forwards), like sshd's
//! `MaxSessions` per connection, plus a cap per user over all of their
//! connections, so that one user cannot start a thousand SSM sessions and
//! starve everybody else (the session database pool, the SSM API quota,
//! file descriptors), and a cap on all channels of the gateway, derived
//! from its open-files limit, so that a full gateway refuses a new session
//! with one line instead of failing sessions midway when `accept` or a
//! WebSocket runs out of descriptors. A [`SessionSlot`] is held by each
//! channel task and frees its counts when the task ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The caps, shared by every connection of the server.
#[derive(Debug)]
pub struct SessionLimits {
    per_connection: usize,
    per_user: usize,
    /// All channels of the gateway.
    total: usize,
    /// Open channels of the gateway (changed under the `users` lock).
    open: AtomicUsize,
    users: Mutex<HashMap<String, usize>>,
}

/// One open channel's place in both counts; freed on drop.
#[derive(Debug)]
pub struct SessionSlot {
    limits: Arc<SessionLimits>,
    user: String,
    connection: Arc<AtomicUsize>,
}

/// Which cap refused a channel. Texts are for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    /// `[server] max_sessions_per_connection`.
    #[error(
        "ssmgate: too many sessions on this connection (at most {0}); close one or open another connection"
    )]
    Connection(usize),
    /// `[server] max_sessions_per_user`.
    #[error("ssmgate: you have too many open sessions (at most {0} per user); close one first")]
    User(usize),
    /// The gateway's capacity (its open-files limit).
    #[error(
        "ssmgate: this gateway is full ({0} open sessions, as many as its open-files limit allows); try again in a moment"
    )]
    Gateway(usize),
}

impl SessionLimits {
    /// Caps of `per_connection` channels per connection and `per_user`
    /// channels per user.
    pub fn new(per_connection: usize, per_user: usize) -> Arc<Self> {
        Self::with_total(per_connection, per_user, usize::MAX)
    }

    /// [`SessionLimits::new`], and at most `total` channels in all.
    pub fn with_total(per_connection: usize, per_user: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_connection,
            per_user,
            total,
            open: AtomicUsize::new(0),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Open channels of the gateway now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A slot for one more channel of `user` on the connection whose open
    /// channels `connection` counts.
    pub fn acquire(
        self: &Arc<Self>,
        user: &str,
        connection: &Arc<AtomicUsize>,
    ) -> Result<SessionSlot, LimitReached> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if connection.load(Ordering::SeqCst) >= self.per_connection {
            return Err(LimitReached::Connection(self.per_connection));
        }
        if self.open.load(Ordering::SeqCst) >= self.total {
            return Err(LimitReached::Gateway(self.total));
        }
        let count = users.entry(user.to_owned()).or_insert(0);
        if *count >= self.per_user {
            return Err(LimitReached::User(self.per_user));
        }
        *count += 1;
        connection.fetch_add(1, Ordering::SeqCst);
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok(SessionSlot {
            limits: self.clone(),
            user: user.to_owned(),
            connection: connection.clone(),
        })
    }

    /// Open channels of `user` now.
    pub fn of_user(&self, user: &str) -> usize {
        self.users
            .lock()
            .map(|u| u.get(user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut users = self.limits.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = users.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                users.remove(&self.user);
            }
        }
        self.connection.fetch_sub(1, Ordering::SeqCst);
        self.limits.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_connection_and_per_user_and_frees_on_drop() {
        let limits = SessionLimits::new(2, 3);
        let c1 = Arc::new(AtomicUsize::new(0));
        let c2 = Arc::new(AtomicUsize::new(0));
        let a = limits.acquire("alice", &c1).expect("1");
        let _b = limits.acquire("alice", &c1).expect("2");
        assert_eq!(
            limits.acquire("alice", &c1).err(),
            Some(LimitReached::Connection(2))
        );
        let _c = limits
            .acquire("alice", &c2)
            .expect("3 on another connection");
        assert_eq!(
            limits.acquire("alice", &c2).err(),
            Some(LimitReached::User(3))
        );
        let _bob = limits
            .acquire("bob", &c2)
            .expect("other users are not affected");
        drop(a);
        assert_eq!(limits.of_user("alice"), 2);
        let _d = limits.acquire("alice", &c1).expect("a slot was freed");
        assert_eq!(c1.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_gateway_total_caps_everybody_and_frees_on_drop() {
        let limits = SessionLimits::with_total(10, 10, 2);
        let (c1, c2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let a = limits.acquire("alice", &c1).expect("1");
        let _b = limits.acquire("bob", &c2).expect("2");
        let full = limits.acquire("carol", &c2).err();
        assert_eq!(full, Some(LimitReached::Gateway(2)));
        assert!(full.is_some_and(|f| f.to_string().contains("open-files limit")));
        assert_eq!(limits.open(), 2);
        drop(a);
        assert_eq!(limits.open(), 1);
        let _c = limits.acquire("carol", &c1).expect("a slot was freed");
    }
}
