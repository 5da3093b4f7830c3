//! Reason grants as the gateway keeps them: made, listed and revoked by the
//! `reason` command, found for channels that carry no reason of their own.
//! They live in the recording database, so every replica sees the same
//! grants; each change is audited (`reason_granted`, `reason_revoked`).
//! A grant's reason is checked against `[justification]` when it is made
//! and again when it is used (the rule may have changed since).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::config::JustificationConfig;
use crate::recording::{AuditKind, GrantRow, Recorder, Store, StoreError};
use crate::request::grant::format_duration;
use crate::request::{Justification, Reason, ReasonRefused, ReasonSource, TargetPattern};

/// Most live grants one user may hold (each channel without a reason of
/// its own reads them all).
pub const MAX_LIVE_GRANTS: usize = 32;

/// Why a grant could not be made, listed or revoked. Texts are for the user.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// `grant_max_secs = 0`.
    #[error("reason grants are turned off on this gateway")]
    Disabled,
    /// The reason does not pass the rule.
    #[error(transparent)]
    Reason(#[from] ReasonRefused),
    /// `--for` beyond the configured maximum, or zero.
    #[error("a grant lasts at least 1 minute and at most {max}; --for {asked} is out of range")]
    Duration {
        /// The maximum, formatted.
        max: String,
        /// What was asked, formatted.
        asked: String,
    },
    /// The user holds [`MAX_LIVE_GRANTS`] already.
    #[error(
        "you hold {MAX_LIVE_GRANTS} live reason grants already; revoke some first (ssh USER@GATEWAY reason --revoke)"
    )]
    TooMany,
    /// `--revoke ID` names no live grant, or several.
    #[error("{0}")]
    NoSuchGrant(String),
    /// The database could not be asked (nothing was changed). The cause
    /// is for the log, not the user (it may name hosts or paths).
    #[error("the database of reason grants could not be reached; nothing was changed")]
    Store(#[from] StoreError),
}

/// The reason grants of one gateway.
pub struct ReasonGrants {
    store: Arc<dyn Store>,
    recorder: Recorder,
    rule: Justification,
    default: Duration,
    max: Duration,
}

/// A grant found for a channel: its reason, and the source to record.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The reason.
    pub reason: Reason,
    /// `ReasonSource::Grant(id)`.
    pub source: ReasonSource,
}

impl ReasonGrants {
    /// Grants kept in `store`, audited through `recorder`, bounded by
    /// `[justification]`.
    pub fn new(store: Arc<dyn Store>, recorder: Recorder, config: &JustificationConfig) -> Self {
        Self {
            store,
            recorder,
            rule: Justification::from_config(config),
            default: config.grant_default,
            max: config.grant_max,
        }
    }

    /// Makes a grant for `user` from `source`.
    pub async fn grant(
        &self,
        user: &str,
        source: IpAddr,
        text: &str,
        duration: Option<Duration>,
        target: Option<&TargetPattern>,
    ) -> Result<GrantRow, GrantError> {
        if self.max.is_zero() {
            return Err(GrantError::Disabled);
        }
        // A grant without a reason means nothing, whatever `required` says.
        let reason = Justification {
            required: true,
            ..self.rule.clone()
        }
        .check(text)?;
        let duration = duration.unwrap_or(self.default);
        if duration < Duration::from_secs(60) || duration > self.max {
            return Err(GrantError::Duration {
                max: format_duration(self.max),
                asked: format_duration(duration),
            });
        }
        if self.live(user).await?.len() >= MAX_LIVE_GRANTS {
            return Err(GrantError::TooMany);
        }
        let now = crate::recording::truncate_micros(Utc::now());
        let expires = now
            + chrono::Duration::from_std(duration).unwrap_or_else(|_| chrono::Duration::hours(1));
        let row = GrantRow {
            id: Uuid::new_v4(),
            user: user.to_owned(),
            reason: reason.as_str().to_owned(),
            target_pattern: target.map(|t| t.as_str().to_owned()),
            source_ip: source,
            created_at: now,
            expires_at: expires,
        };
        self.store.insert_grant(&row).await?;
        tracing::info!(user, grant = %row.id, expires = %row.expires_at, target = ?row.target_pattern, "reason granted");
        self.recorder
            .audit(
                AuditKind::ReasonGranted,
                Some(user),
                None,
                Some(source),
                serde_json::json!({
                    "grant_id": row.id.to_string(),
                    "reason": row.reason,
                    "target_pattern": row.target_pattern,
                    "expires_at": row.expires_at.to_rfc3339(),
                    "duration_secs": duration.as_secs(),
                }),
            )
            .await;
        Ok(row)
    }

    /// `user`'s live grants, newest first.
    pub async fn live(&self, user: &str) -> Result<Vec<GrantRow>, StoreError> {
        self.store.live_grants(user, Utc::now()).await
    }

    /// Revokes one of `user`'s live grants (by id or its first characters)
    /// or, without `id`, all of them; returns the ids revoked.
    pub async fn revoke(
        &self,
        user: &str,
        source: IpAddr,
        id: Option<&str>,
    ) -> Result<Vec<Uuid>, GrantError> {
        let one = match id {
            None => None,
            Some(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                let live = self.live(user).await?;
                let found: Vec<&GrantRow> = live
                    .iter()
                    .filter(|g| g.id.to_string().starts_with(&prefix))
                    .collect();
                match found.as_slice() {
                    [g] if prefix.len() >= 4 => Some(g.id),
                    [] => {
                        return Err(GrantError::NoSuchGrant(format!(
                            "you have no live grant {}",
                            crate::untrusted::bounded(&prefix)
                        )));
                    }
                    _ => {
                        return Err(GrantError::NoSuchGrant(
                            "give more of the grant's id: several match (or fewer than 4 characters)".into(),
                        ));
                    }
                }
            }
        };
        let revoked = self.store.revoke_grants(user, one, Utc::now()).await?;
        if !revoked.is_empty() {
            tracing::info!(user, grants = ?revoked, "reason grants revoked");
            let ids: Vec<String> = revoked.iter().map(Uuid::to_string).collect();
            self.recorder
                .audit(
                    AuditKind::ReasonRevoked,
                    Some(user),
                    None,
                    Some(source),
                    serde_json::json!({ "grant_ids": ids }),
                )
                .await;
        }
        Ok(revoked)
    }

    /// The newest of the `live` grants that covers a target known by any
    /// of `names` (grants without a pattern cover every target; with no
    /// names, only those do) and whose reason still passes the rule.
    pub fn choose(&self, live: &[GrantRow], names: &[String]) -> Option<Granted> {
        live.iter().find_map(|g| {
            let covers = match &g.target_pattern {
                None => true,
                Some(p) => {
                    TargetPattern::parse(p).is_ok_and(|p| names.iter().any(|n| p.matches(n)))
                }
            };
            let reason = self.rule.check(&g.reason).ok()?;
            (covers && !reason.as_str().is_empty()).then_some(Granted {
                reason,
                source: ReasonSource::Grant(g.id),
            })
        })
    }
}
