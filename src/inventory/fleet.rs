//! Several accounts and regions as one inventory: a [`Fleet`] of
//! [`Member`]s, one per (account, region), each with its own
//! [`Inventory`] and the AWS APIs of that account and region.
//!
//! Targets may be qualified: `prod/web-1` searches the regions of account
//! `prod`, `prod/eu-west-1/web-1` one region. An unqualified name searches
//! every member at once; found in more than one, it is refused as
//! ambiguous, listing each candidate qualified (`prod/us-east-1/i-…`).
//! Fails closed: when any member searched cannot answer (its API errs),
//! the request is refused with that error rather than decided on the
//! members that did answer, which might not hold the only match.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use futures_util::future::join_all;

use super::{DEFAULT_ACCOUNT, Inventory, Location, ResolveError, Target, quote};
use crate::aws::{SessionApis, SessionRole, Ssm, SsmApi, accounts};
use crate::config::AwsConfig;
use crate::request::target::split_qualified;

/// One account and region.
pub struct Member {
    /// Its instances.
    pub inventory: Inventory,
    /// Its SSM API (the account's role, or the gateway's own identity).
    pub api: Arc<dyn SsmApi>,
    /// Per-user identities for its sessions, if configured.
    pub sessions: Option<Arc<dyn SessionApis>>,
}

impl Member {
    /// Where it is.
    pub fn location(&self) -> &Location {
        self.inventory.location()
    }
}

/// Every account and region the gateway reaches.
pub struct Fleet {
    members: Vec<Member>,
}

impl Fleet {
    /// A fleet of `members` (at least one).
    pub fn new(members: Vec<Member>) -> Self {
        Fleet { members }
    }

    /// The fleet `[aws]` describes, from the gateway's AWS configuration
    /// `shared`: one member per `[[aws.accounts]]` account and region, or
    /// without accounts the gateway's own account in its region
    /// ([`DEFAULT_ACCOUNT`]), whose sessions use `session_role_arn` when
    /// set. Inventories cache for `cache`.
    pub async fn from_config(aws: &AwsConfig, cache: Duration, shared: &SdkConfig) -> Fleet {
        if aws.accounts.is_empty() {
            let api: Arc<dyn SsmApi> = Arc::new(Ssm::from_config(shared));
            let inventory = Inventory::new(api.clone(), cache).in_location(Location {
                account: DEFAULT_ACCOUNT.to_owned(),
                region: shared.region().map(|r| r.to_string()).unwrap_or_default(),
            });
            let sessions = aws.session_role_arn.as_deref().map(|role| {
                tracing::info!(role, "sessions use the session role, assumed per user");
                Arc::new(SessionRole::new(shared, role)) as Arc<dyn SessionApis>
            });
            return Fleet::new(vec![Member {
                inventory,
                api,
                sessions,
            }]);
        }
        let mut members = Vec::new();
        for account in &aws.accounts {
            for region in &account.regions {
                let apis = accounts::for_account(shared, account.role_arn.as_deref(), region).await;
                let inventory = Inventory::new(apis.api.clone(), cache).in_location(Location {
                    account: account.name.clone(),
                    region: region.clone(),
                });
                members.push(Member {
                    inventory,
                    api: apis.api,
                    sessions: apis.sessions,
                });
            }
        }
        tracing::info!(
            accounts = aws.accounts.len(),
            locations = members.len(),
            "targets in several accounts and regions"
        );
        Fleet::new(members)
    }

    /// Its members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member holding `target`.
    pub fn member_of(&self, target: &Target) -> Option<&Member> {
        self.members.iter().find(|m| {
            m.location().account == target.account && m.location().region == target.region
        })
    }

    /// The one managed instance `spec` names (see the module docs).
    pub async fn resolve(&self, spec: &str) -> Result<Target, ResolveError> {
        let (account, region, name) = split_qualified(spec);
        let searched: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| account.is_none_or(|a| a == m.location().account))
            .filter(|m| region.is_none_or(|r| r == m.location().region))
            .collect();
        if searched.is_empty() {
            return Err(ResolveError::UnknownLocation {
                spec: quote(spec),
                known: self
                    .members
                    .iter()
                    .map(|m| format!("{}/{}", m.location().account, m.location().region))
                    .collect(),
            });
        }
        if let [only] = searched[..] {
            return only
                .inventory
                .resolve(name)
                .await
                .map_err(|e| qualify(e, spec));
        }
        let answers = join_all(searched.iter().map(|m| m.inventory.resolve(name))).await;
        let mut found: Vec<Target> = Vec::new();
        let mut candidates: Vec<(String, String)> = Vec::new();
        for (member, answer) in searched.iter().zip(answers) {
            let at = member.location();
            match answer {
                Ok(t) => found.push(t),
                Err(ResolveError::NotFound { .. }) => {}
                Err(ResolveError::Ambiguous { candidates: c, .. }) => candidates.extend(
                    c.into_iter()
                        .map(|(id, name)| (format!("{}/{}/{id}", at.account, at.region), name)),
                ),
                Err(e) => return Err(e),
            }
        }
        if found.len() == 1 && candidates.is_empty() {
            return Ok(found.remove(0));
        }
        candidates.extend(found.iter().map(|t| {
            (
                format!("{}/{}/{}", t.account, t.region, t.id),
                quote(t.display_name()),
            )
        }));
        match candidates.len() {
            0 => Err(ResolveError::NotFound { spec: quote(spec) }),
            _ => {
                candidates.sort();
                Err(ResolveError::Ambiguous {
                    spec: quote(spec),
                    candidates,
                })
            }
        }
    }

    /// Every managed instance of every member, in the members' order, each
    /// member's sorted as [`Inventory::list`] does.
    pub async fn list(&self) -> Result<Vec<Target>, ResolveError> {
        let lists = join_all(self.members.iter().map(|m| m.inventory.list())).await;
        let mut out = Vec::new();
        for list in lists {
            out.extend(list?);
        }
        Ok(out)
    }
}

/// A single member's error, with the qualified spec the user typed.
fn qualify(e: ResolveError, spec: &str) -> ResolveError {
    match e {
        ResolveError::NotFound { .. } => ResolveError::NotFound { spec: quote(spec) },
        ResolveError::Ambiguous { candidates, .. } => ResolveError::Ambiguous {
            spec: quote(spec),
            candidates,
        },
        other => other,
    }
}
