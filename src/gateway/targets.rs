//! Which targets a user may open a shell on: the picker's list
//! (`ssh alice@gateway` without a target), decided by the same policies
//! and the same context as a real request, off the connection threads.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::UserConfig;
use crate::gateway::Gateway;
use crate::inventory::{ResolveError, Target};
use crate::policy::{ContextInput, Principal};
use crate::request::{Action, AuthMethod, Reason, ReasonSource};

/// Who asks for the list.
#[derive(Debug, Clone)]
pub struct Asker {
    /// The user's config entry.
    pub user: Arc<UserConfig>,
    /// How they authenticated.
    pub auth: AuthMethod,
    /// The reason they gave, if any.
    pub reason: Option<Reason>,
    /// Where it came from.
    pub reason_source: ReasonSource,
    /// Where they connect from.
    pub source: IpAddr,
}

impl Gateway {
    /// Online targets on which the policies let `who` open a shell with
    /// the shell document, sorted by name then id.
    pub async fn openable_targets(&self, who: Asker) -> Result<Vec<Target>, ResolveError> {
        let online: Vec<Target> = self
            .fleet()
            .list()
            .await?
            .into_iter()
            .filter(Target::is_online)
            .collect();
        let context = ContextInput {
            document: self.shell_document().to_owned(),
            parameters: Default::default(),
            reason: who.reason.map(|r| r.as_str().to_owned()),
            source_ip: who.source,
            now: SystemTime::now(),
            recording: Action::Shell.recording(),
            // The list is decided once for all targets, with the backend a
            // target without the tag gets.
            backend: if self.sshd_config().enabled {
                self.sshd_config().default.as_str()
            } else {
                "ssm"
            },
            os_user: self.sshd_config().enabled.then(|| {
                who.user
                    .run_as
                    .clone()
                    .unwrap_or(self.sshd_config().os_user.clone())
            }),
            reason_source: who.reason_source.as_str(),
        };
        // Deciding for thousands of targets is CPU work: keep it off the
        // connection tasks' threads.
        let policy = self.policy_handle();
        let (user, auth) = (who.user, who.auth);
        let mut targets: Vec<Target> = tokio::task::spawn_blocking(move || {
            let principal = Principal {
                user: &user,
                auth: &auth,
            };
            policy
                .permitted(&principal, Action::Shell, &online, &context)
                .into_iter()
                .cloned()
                .collect::<Vec<Target>>()
        })
        .await
        .unwrap_or_default();
        targets.sort_by(|a, b| a.display_name().cmp(b.display_name()).then(a.id.cmp(&b.id)));
        Ok(targets)
    }
}
