//! Hot reload: on SIGHUP, and when the policy files change (their names,
//! sizes or modification times, polled every [`RELOAD_POLL_INTERVAL`]), the
//! engine re-reads its directory. A set that fails to parse or validate is
//! rejected and logged; the previous one stays in force. Sessions already
//! open are not affected: policies decide when a session opens.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use super::PolicyEngine;
use super::loader::{FileStamp, stamps};

/// How often the policy files are checked for changes.
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload was attempted (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Hangup,
    /// The policy files changed.
    FilesChanged,
}

impl Trigger {
    /// `sighup` or `files_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hangup => "sighup",
            Self::FilesChanged => "files_changed",
        }
    }
}

/// One reload attempt that changed something or failed, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// What prompted it.
    pub trigger: Trigger,
    /// `(policies, files)` now in force, or why the new set was rejected.
    pub result: Result<(usize, usize), String>,
}

/// Called after each reload that changed the set or was rejected.
pub type ReloadHook = Arc<dyn Fn(ReloadReport) + Send + Sync>;

impl PolicyEngine {
    /// Watches for SIGHUP and file changes (every
    /// [`RELOAD_POLL_INTERVAL`]) until `shutdown` completes; logs each
    /// outcome and reports it to `hook`.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        shutdown: impl Future<Output = ()> + Send + 'static,
        hook: ReloadHook,
    ) -> JoinHandle<()> {
        self.spawn_watcher_with(RELOAD_POLL_INTERVAL, shutdown, hook)
    }

    /// [`PolicyEngine::spawn_watcher`] with another polling interval and no
    /// hook.
    pub fn spawn_watcher_every(
        self: &Arc<Self>,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        self.spawn_watcher_with(every, shutdown, Arc::new(|_| {}))
    }

    /// [`PolicyEngine::spawn_watcher`] with another polling interval.
    pub fn spawn_watcher_with(
        self: &Arc<Self>,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
        hook: ReloadHook,
    ) -> JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut hangup = match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGHUP; policy files are still polled");
                    None
                }
            };
            let mut seen: Vec<FileStamp> = engine.snapshot().stamps.clone();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tokio::pin!(shutdown);
            loop {
                let trigger = tokio::select! {
                    _ = &mut shutdown => return,
                    _ = hangup_recv(&mut hangup) => Trigger::Hangup,
                    _ = tick.tick() => {
                        let dir = engine.dir().to_owned();
                        let now = tokio::task::spawn_blocking(move || stamps(&dir)).await;
                        match now {
                            Ok(Ok(now)) if now != seen => {
                                seen = now;
                                Trigger::FilesChanged
                            }
                            Ok(Ok(_)) => continue,
                            Ok(Err(e)) => {
                                // Log a vanished directory once, not every tick.
                                if !seen.is_empty() {
                                    tracing::error!(error = %e, "cannot list the policy directory; the current policies stay in force");
                                    seen.clear();
                                }
                                continue;
                            }
                            Err(_) => continue,
                        }
                    }
                };
                let worker = Arc::clone(&engine);
                let result = tokio::task::spawn_blocking(move || worker.reload()).await;
                match result {
                    Ok(Ok(outcome)) => {
                        seen = engine.snapshot().stamps.clone();
                        for w in &outcome.warnings {
                            tracing::warn!(warning = %w, "policy warning");
                        }
                        if outcome.changed {
                            hook(ReloadReport {
                                trigger,
                                result: Ok((outcome.policies, outcome.files)),
                            });
                            tracing::info!(
                                ?trigger,
                                policies = outcome.policies,
                                files = outcome.files,
                                "policies reloaded"
                            );
                        } else {
                            tracing::debug!(?trigger, "policies unchanged");
                        }
                    }
                    Ok(Err(e)) => {
                        hook(ReloadReport {
                            trigger,
                            result: Err(e.to_string()),
                        });
                        tracing::error!(?trigger, error = %e, "policy reload rejected; the previous policies stay in force");
                    }
                    Err(e) => {
                        tracing::error!(?trigger, error = %e, "policy reload failed; the previous policies stay in force");
                    }
                }
            }
        })
    }
}

/// Waits for SIGHUP, or forever when it cannot be watched.
async fn hangup_recv(hangup: &mut Option<Signal>) {
    match hangup {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
