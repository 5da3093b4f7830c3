//! This process's live sessions, by their recorded id, each with a switch
//! that ends it: what `ssmgate sessions kill`, `users lock` and a graceful
//! shutdown act on. A session registers when it starts piping
//! ([`LiveSessions::register`]) and leaves when its [`LiveGuard`] drops;
//! the pipeline waits on [`LiveGuard::stopped`] beside its pipe and, when
//! it fires, ends the session with the [`Stop`]'s reason and tells the user
//! its message. Sessions registered with a [`Notifier`] can be told things
//! while they run ([`LiveSessions::notify`]: "the gateway is shutting
//! down").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

use crate::recording::EndReason;

/// Why the gateway ends a session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// The gateway is shutting down (after its drain time).
    Shutdown,
    /// An administrator killed it (`ssmgate sessions kill`).
    Killed {
        /// Who (`user@host`).
        by: String,
        /// Why.
        reason: String,
    },
    /// Its user was locked (`ssmgate users lock`).
    UserLocked {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

impl StopCause {
    /// The end reason recorded.
    pub fn end_reason(&self) -> EndReason {
        EndReason::Terminated
    }

    /// The cause recorded with the end (`sessions show`: "end cause").
    pub fn record_text(&self) -> String {
        match self {
            StopCause::Shutdown => "shutdown".into(),
            StopCause::Killed { by, reason } => format!("killed by {by}: {reason}"),
            StopCause::UserLocked { by, reason } => format!("user locked by {by}: {reason}"),
        }
    }

    /// The line shown to the user whose session it ends.
    pub fn user_text(&self) -> String {
        match self {
            StopCause::Shutdown => {
                "ssmgate: the gateway is shutting down; this session has ended".into()
            }
            StopCause::Killed { reason, .. } => {
                format!("ssmgate: an administrator ended this session: {reason}")
            }
            StopCause::UserLocked { reason, .. } => {
                format!("ssmgate: your access was locked by an administrator: {reason}")
            }
        }
    }
}

/// Puts a line on a session's stderr (a session channel's; forwards have
/// none).
pub type Notifier = Arc<dyn Fn(Arc<str>) + Send + Sync>;

/// One live session as registered.
struct Entry {
    user: String,
    stop: watch::Sender<Option<StopCause>>,
    notifier: Option<Notifier>,
}

/// The registry. Cheap to share (`Arc`).
#[derive(Default)]
pub struct LiveSessions {
    entries: Mutex<HashMap<Uuid, Entry>>,
    /// Draining for a shutdown: no new sessions.
    closing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("live", &self.len())
            .finish()
    }
}

/// A registered session; leaves the registry on drop.
pub struct LiveGuard {
    live: Arc<LiveSessions>,
    id: Uuid,
    stop: watch::Receiver<Option<StopCause>>,
}

impl LiveSessions {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers session `id` of `user`. A second registration of the
    /// same id (a shared port session's next connection) shares the
    /// first's switch.
    pub fn register(self: &Arc<Self>, id: Uuid, user: &str) -> LiveGuard {
        self.register_with(id, user, None)
    }

    /// [`register`](Self::register), with a way to tell its user things
    /// ([`notify`](Self::notify)).
    pub fn register_with(
        self: &Arc<Self>,
        id: Uuid,
        user: &str,
        notifier: Option<Notifier>,
    ) -> LiveGuard {
        let mut entries = self.entries();
        let entry = entries.entry(id).or_insert_with(|| Entry {
            user: user.to_owned(),
            stop: watch::channel(None).0,
            notifier,
        });
        LiveGuard {
            live: self.clone(),
            id,
            stop: entry.stop.subscribe(),
        }
    }

    /// Ends session `id`; false when it is not live here.
    pub fn stop(&self, id: Uuid, cause: StopCause) -> bool {
        match self.entries().get(&id) {
            Some(e) => {
                e.stop.send_if_modified(|c| {
                    let first = c.is_none();
                    if first {
                        *c = Some(cause);
                    }
                    first
                });
                true
            }
            None => false,
        }
    }

    /// Ends every live session of `user`; returns their ids.
    pub fn stop_user(&self, user: &str, cause: &StopCause) -> Vec<Uuid> {
        let ids: Vec<Uuid> = self
            .entries()
            .iter()
            .filter(|(_, e)| e.user == user)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter(|id| self.stop(*id, cause.clone()))
            .collect()
    }

    /// Ends every live session.
    pub fn stop_all(&self, cause: &StopCause) -> usize {
        let ids: Vec<Uuid> = self.entries().keys().copied().collect();
        ids.into_iter()
            .filter(|id| self.stop(*id, cause.clone()))
            .count()
    }

    /// From now on new sessions are refused (a shutdown's drain).
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether new sessions are refused.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether session `id` is live here.
    pub fn contains(&self, id: Uuid) -> bool {
        self.entries().contains_key(&id)
    }

    /// Live sessions now.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells every live session that has a way to be told (one stderr
    /// line each); returns how many were told.
    pub fn notify(&self, text: &str) -> usize {
        let text: Arc<str> = Arc::from(text);
        let notifiers: Vec<Notifier> = self
            .entries()
            .values()
            .filter_map(|e| e.notifier.clone())
            .collect();
        for n in &notifiers {
            n(text.clone());
        }
        notifiers.len()
    }
}

impl LiveGuard {
    /// The session's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Resolves when the session is to end, with why; never otherwise.
    pub async fn stopped(&mut self) -> StopCause {
        loop {
            if let Some(cause) = self.stop.borrow_and_update().clone() {
                return cause;
            }
            if self.stop.changed().await.is_err() {
                // The registry went away: never fire.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Why it was stopped, if it was.
    pub fn cause(&self) -> Option<StopCause> {
        self.stop.borrow().clone()
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut entries = self.live.entries();
        // The entry goes with its last guard (a shared port session has
        // one per connection riding on it).
        if entries
            .get(&self.id)
            .is_some_and(|e| e.stop.receiver_count() <= 1)
        {
            entries.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_reaches_the_session_once_with_the_first_cause() {
        let live = LiveSessions::new();
        let id = Uuid::new_v4();
        let mut g = live.register(id, "alice");
        assert!(live.contains(id));
        let killed = StopCause::Killed {
            by: "root@admin".into(),
            reason: "INC-1".into(),
        };
        assert!(live.stop(id, killed.clone()));
        assert!(live.stop(id, StopCause::Shutdown));
        assert_eq!(g.stopped().await, killed);
        assert_eq!(killed.record_text(), "killed by root@admin: INC-1");
        drop(g);
        assert!(!live.contains(id));
        assert!(!live.stop(id, StopCause::Shutdown));
    }

    #[tokio::test]
    async fn users_and_everyone_can_be_stopped() {
        let live = LiveSessions::new();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut ga = live.register(a, "alice");
        let gb = live.register(b, "bob");
        let gc = live.register(c, "alice");
        let lock = StopCause::UserLocked {
            by: "x".into(),
            reason: "y".into(),
        };
        let mut stopped = live.stop_user("alice", &lock);
        stopped.sort();
        let mut want = vec![a, c];
        want.sort();
        assert_eq!(stopped, want);
        assert_eq!(ga.stopped().await, lock);
        assert_eq!(gb.cause(), None);
        assert_eq!(live.stop_all(&StopCause::Shutdown), 3);
        assert_eq!(gb.cause(), Some(StopCause::Shutdown));
        // The first cause stays.
        assert_eq!(gc.cause(), Some(lock));
    }

    #[tokio::test]
    async fn a_shared_entry_leaves_with_its_last_guard() {
        let live = LiveSessions::new();
        let id = Uuid::new_v4();
        let g1 = live.register(id, "alice");
        let g2 = live.register(id, "alice");
        drop(g1);
        assert!(live.contains(id));
        assert!(live.stop(id, StopCause::Shutdown));
        assert_eq!(g2.cause(), Some(StopCause::Shutdown));
        drop(g2);
        assert!(live.is_empty());
    }
}
