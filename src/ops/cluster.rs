//! This replica among the others sharing its database: it registers
//! itself (its id is its recorder's audit-chain id, new at every start),
//! heartbeats every `[cluster] heartbeat_secs`, carries out the kill
//! requests addressed to it (`ssmgate sessions kill`), ends and refuses the
//! sessions of locked users (`ssmgate users lock`), and closes in the
//! record the sessions of replicas that stopped heartbeating
//! (`orphan_close_after_secs`; one replica claims each, by inserting a kill
//! request whose id is the session's).
//!
//! Kill requests and locks are read every second (SQLite, and Postgres
//! as a fallback) and at once on a Postgres `NOTIFY`, so a kill takes
//! effect within about a second. Everything done is audited by this
//! replica's recorder (`admin` events: `session_kill`, `session_lock_end`,
//! `orphan_closed`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::ClusterConfig;
use crate::ops::live::{LiveSessions, StopCause};
use crate::recording::{
    AuditKind, KillRow, LockRow, Recorder, ReplicaRow, SessionFilter, Store, StoreError, now,
};

/// How often kill requests and locks are read without a notice.
const POLL: Duration = Duration::from_secs(1);

/// This replica's part in the cluster.
pub struct Cluster {
    store: Arc<dyn Store>,
    recorder: Recorder,
    live: Arc<LiveSessions>,
    config: ClusterConfig,
    me: RwLock<ReplicaRow>,
    /// Locked users (refreshed every poll).
    locks: RwLock<HashMap<String, LockRow>>,
    /// Gone replicas found with no live session left: not looked at again
    /// (a gone replica never gets new sessions).
    swept: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.id()).finish()
    }
}

impl Cluster {
    /// Registers this replica (reachable at `address`) and reads the
    /// locked users.
    pub async fn register(
        store: Arc<dyn Store>,
        recorder: Recorder,
        live: Arc<LiveSessions>,
        config: ClusterConfig,
        address: String,
    ) -> Result<Arc<Self>, StoreError> {
        let at = now();
        let me = ReplicaRow {
            id: recorder.replica_id(),
            address,
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: at,
            heartbeat_at: at,
            stopped_at: None,
        };
        store.upsert_replica(&me).await?;
        let cluster = Arc::new(Self {
            store,
            recorder,
            live,
            config,
            me: RwLock::new(me),
            locks: RwLock::new(HashMap::new()),
            swept: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
        cluster.refresh_locks().await?;
        Ok(cluster)
    }

    /// The live sessions it ends on request.
    pub fn live(&self) -> &Arc<LiveSessions> {
        &self.live
    }

    /// Sets the address shown for this replica (once the SSH listener is
    /// bound); written with the next heartbeat.
    pub fn set_address(&self, address: String) {
        self.me.write().unwrap_or_else(|p| p.into_inner()).address = address;
    }

    /// This replica's id.
    pub fn id(&self) -> Uuid {
        self.me.read().unwrap_or_else(|p| p.into_inner()).id
    }

    /// Why `user` may not start sessions, when they are locked.
    pub fn lock_of(&self, user: &str) -> Option<LockRow> {
        self.locks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }

    /// [`lock_of`](Self::lock_of) as the database says now (a lock or
    /// unlock takes effect at once, not at the next poll); the last poll's
    /// answer when the database is down or does not answer within a
    /// second.
    pub async fn lock_now(&self, user: &str) -> Option<LockRow> {
        // While the recorder finds the database down, do not make every
        // new session wait for it.
        if !self.recorder.stats().healthy {
            return self.lock_of(user);
        }
        match tokio::time::timeout(Duration::from_secs(1), self.refresh_locks()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cluster: user locks unreadable; using the last ones read")
            }
            Err(_) => tracing::debug!("cluster: user locks slow; using the last ones read"),
        }
        self.lock_of(user)
    }

    /// Runs the heartbeat and the polls until `stop` turns true, then
    /// records a clean stop.
    pub fn spawn(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut notices = this.store.cluster_notices();
            let mut poll = tokio::time::interval(POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut beat = tokio::time::interval(this.config.heartbeat);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                let result = tokio::select! {
                    _ = stop.changed() => break,
                    _ = poll.tick() => this.poll().await,
                    Some(()) = recv(&mut notices) => this.poll().await,
                    _ = beat.tick() => this.beat().await,
                };
                match result {
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cluster: the database cannot be reached; kills, locks and heartbeats wait for it");
                    }
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("cluster: the database answers again");
                    }
                    _ => {}
                }
            }
            this.stopped().await;
        })
    }

    /// Carries out pending kills and enforces locks.
    async fn poll(&self) -> Result<(), StoreError> {
        let kills = self.store.pending_kills(self.id()).await?;
        for k in kills {
            self.kill(&k).await?;
        }
        self.refresh_locks().await?;
        let locks: Vec<LockRow> = self
            .locks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for lock in locks {
            let cause = StopCause::UserLocked {
                by: lock.locked_by.clone(),
                reason: lock.reason.clone(),
            };
            for id in self.live.stop_user(&lock.user, &cause) {
                tracing::info!(gateway_session = %id, user = %lock.user, "cluster: ending a session of a locked user");
                self.recorder
                    .audit(
                        AuditKind::Admin,
                        Some(&lock.user),
                        Some(id),
                        None,
                        serde_json::json!({
                            "action": "session_lock_end",
                            "by": lock.locked_by,
                            "reason": lock.reason,
                        }),
                    )
                    .await;
            }
        }
        Ok(())
    }

    async fn refresh_locks(&self) -> Result<(), StoreError> {
        let rows = self.store.user_locks().await?;
        let locks = rows.into_iter().map(|l| (l.user.clone(), l)).collect();
        *self.locks.write().unwrap_or_else(|p| p.into_inner()) = locks;
        Ok(())
    }

    /// Ends the session a kill request names, if it runs here.
    async fn kill(&self, k: &KillRow) -> Result<(), StoreError> {
        let cause = StopCause::Killed {
            by: k.requested_by.clone(),
            reason: k.reason.clone(),
        };
        let ended = self.live.stop(k.session_id, cause);
        let outcome = if ended { "ended" } else { "not_live" };
        tracing::info!(gateway_session = %k.session_id, by = %k.requested_by, outcome, "cluster: kill request");
        self.recorder
            .audit(
                AuditKind::Admin,
                None,
                Some(k.session_id),
                None,
                serde_json::json!({
                    "action": "session_kill",
                    "kill_id": k.id,
                    "by": k.requested_by,
                    "reason": k.reason,
                    "outcome": outcome,
                }),
            )
            .await;
        self.store.complete_kill(k.id, now(), outcome).await
    }

    /// Heartbeats, and closes the sessions of replicas gone long enough.
    async fn beat(&self) -> Result<(), StoreError> {
        let at = now();
        let me = {
            let mut me = self.me.write().unwrap_or_else(|p| p.into_inner());
            me.heartbeat_at = at;
            me.clone()
        };
        self.store.upsert_replica(&me).await?;
        self.close_orphans(at).await
    }

    async fn close_orphans(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let close_after = chrono::Duration::from_std(self.config.orphan_close_after)
            .unwrap_or(chrono::Duration::MAX);
        let gone: HashMap<Uuid, ReplicaRow> = self
            .store
            .replicas()
            .await?
            .into_iter()
            .filter(|r| r.id != self.id() && silent_since(r) < at - close_after)
            .filter(|r| !self.swept().contains(&r.id))
            .map(|r| (r.id, r))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let live = self
            .store
            .list_sessions(&SessionFilter {
                live_only: true,
                limit: None,
                ..SessionFilter::default()
            })
            .await?;
        let mut empty: std::collections::HashSet<Uuid> = gone.keys().copied().collect();
        for s in &live {
            if let Some(id) = s.replica {
                empty.remove(&id);
            }
        }
        self.swept().extend(empty);
        for s in live {
            let Some(r) = s.replica.and_then(|id| gone.get(&id)) else {
                continue;
            };
            let cause = format!(
                "orphaned: replica {} ({}) silent since {}; closed by replica {}; byte counts unknown",
                r.id,
                r.address,
                silent_since(r).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.id()
            );
            // One replica claims each orphan: the kill request's id is the
            // session's, so only the first insert succeeds.
            let claim = KillRow {
                id: s.id,
                session_id: s.id,
                replica_id: Some(r.id),
                requested_at: at,
                requested_by: format!("replica {}", self.id()),
                reason: cause.clone(),
                done_at: Some(at),
                outcome: Some("orphan_closed".into()),
            };
            if !self.store.insert_kill(&claim).await? {
                continue;
            }
            tracing::warn!(gateway_session = %s.id, replica = %r.id, "cluster: closing the record of a session whose replica is gone");
            self.recorder.close_orphan(&s, cause).await?;
        }
        Ok(())
    }

    fn swept(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Uuid>> {
        self.swept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a clean stop (sessions still open are ended by then).
    async fn stopped(&self) {
        let me = {
            let mut me = self.me.write().unwrap_or_else(|p| p.into_inner());
            me.stopped_at = Some(now());
            me.clone()
        };
        if let Err(e) = self.store.upsert_replica(&me).await {
            tracing::warn!(error = %e, "cluster: cannot record this replica's stop");
        }
    }
}

/// Since when a replica has been silent: its clean stop, or its last
/// heartbeat.
pub fn silent_since(r: &ReplicaRow) -> DateTime<Utc> {
    r.stopped_at.unwrap_or(r.heartbeat_at)
}

/// The next notice, or never when the database has none.
async fn recv(notices: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match notices {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
