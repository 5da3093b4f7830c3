//! The human behind every session's AWS calls: with `[aws]
//! session_role_arn`, a session's `StartSession`, `ResumeSession` and
//! `TerminateSession` are made with that role, assumed for the gateway
//! user (STS `AssumeRole`):
//!
//! - `RoleSessionName` and `SourceIdentity` = the user name (reduced to
//!   STS's `[\w+=,.@-]`, 2–64 characters), so CloudTrail names the person
//!   for every call and Session Manager's history shows
//!   `assumed-role/ROLE/USER` as the session's owner; a source identity
//!   cannot be changed by later role chaining;
//! - session tags `ssmgate-user` (the user), `ssmgate-session` (the
//!   gateway session that assumed the role) and, when a run-as OS user
//!   applies, `SSMSessionRunAs`, which Session Manager's Run As support
//!   (enabled in the account's preferences) uses as the OS user.
//!
//! Credentials are cached per (user, run-as) and reused until
//! [`REFRESH_BEFORE`] before they expire, so `ssmgate-session` names the
//! session that obtained them; every `StartSession` also carries its own
//! gateway session id in its Reason. One AssumeRole runs at a time per
//! (user, run-as); failures are not cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::types::Tag;

use super::errors::{CallContext, Service, SsmError, from_sdk};
use super::{Ssm, SsmApi};

/// Lifetime asked of STS (its default).
pub const DURATION_SECS: i32 = 3600;
/// Credentials this close to expiry are replaced.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// The session tag Session Manager's Run As reads.
pub const RUN_AS_TAG: &str = "SSMSessionRunAs";

/// Who a session is for.
#[derive(Debug, Clone, Copy)]
pub struct SessionIdentity<'a> {
    /// The gateway user.
    pub user: &'a str,
    /// The gateway session id.
    pub gateway_session: &'a str,
    /// The OS user the session should run as, if any.
    pub run_as: Option<&'a str>,
}

/// Gives each session the API it must use.
#[async_trait::async_trait]
pub trait SessionApis: Send + Sync {
    /// The SSM API to open, resume and end `who`'s session with.
    async fn for_session(&self, who: &SessionIdentity<'_>) -> Result<Arc<dyn SsmApi>, SsmError>;
}

struct Cached {
    api: Arc<Ssm>,
    expires: Option<SystemTime>,
}

impl Cached {
    fn usable(&self) -> bool {
        self.expires.is_none_or(|at| {
            at.duration_since(SystemTime::now())
                .is_ok_and(|left| left > REFRESH_BEFORE)
        })
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// [`SessionApis`] by STS AssumeRole on one role.
pub struct SessionRole {
    role_arn: String,
    shared: SdkConfig,
    sts: aws_sdk_sts::Client,
    slots: Mutex<HashMap<(String, Option<String>), Slot>>,
}

impl SessionRole {
    /// Assumes `role_arn` with the gateway's own credentials from
    /// `shared`; the sessions' clients use `shared` otherwise.
    pub fn new(shared: &SdkConfig, role_arn: &str) -> Self {
        let shared = super::with_default_timeouts(shared);
        SessionRole {
            role_arn: role_arn.to_owned(),
            sts: aws_sdk_sts::Client::new(&shared),
            shared,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, who: &SessionIdentity<'_>) -> Slot {
        let key = (who.user.to_owned(), who.run_as.map(str::to_owned));
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot_usable(slot));
        slots.entry(key).or_default().clone()
    }

    async fn assume(&self, who: &SessionIdentity<'_>) -> Result<Cached, SsmError> {
        let name = sts_name(who.user);
        let tag = |key: &str, value: &str| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| SsmError::Validation(e.to_string()))
        };
        let mut tags = vec![
            tag("ssmgate-user", who.user)?,
            tag("ssmgate-session", who.gateway_session)?,
        ];
        if let Some(run_as) = who.run_as {
            tags.push(tag(RUN_AS_TAG, run_as)?);
        }
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&name)
            .source_identity(&name)
            .duration_seconds(DURATION_SECS)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(e, CallContext::of(Service::Sts)))?;
        let creds = out.credentials().ok_or_else(|| SsmError::Other {
            service: Service::Sts,
            code: "ResponseError".to_owned(),
            message: "AssumeRole answered without credentials".to_owned(),
        })?;
        let expires = SystemTime::try_from(*creds.expiration()).ok();
        let provider = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            expires,
            "ssmgate-session-role",
        );
        let config = self
            .shared
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        tracing::info!(
            user = who.user, run_as = ?who.run_as, role = %self.role_arn,
            assumed = out.assumed_role_user().map(|u| u.arn()).unwrap_or(""),
            "assumed the session role"
        );
        Ok(Cached {
            api: Arc::new(Ssm::from_config(&config)),
            expires,
        })
    }
}

fn slot_usable(slot: &Slot) -> bool {
    slot.try_lock()
        .map(|cached| cached.as_ref().is_some_and(Cached::usable))
        .unwrap_or(true)
}

#[async_trait::async_trait]
impl SessionApis for SessionRole {
    async fn for_session(&self, who: &SessionIdentity<'_>) -> Result<Arc<dyn SsmApi>, SsmError> {
        let slot = self.slot(who);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.usable()) {
            return Ok(c.api.clone());
        }
        let fresh = self.assume(who).await?;
        let api = fresh.api.clone();
        *cached = Some(fresh);
        Ok(api)
    }
}

/// `user` as an STS role session name and source identity: characters
/// outside `[\w+=,.@-]` become `_`, at least 2 (padded with `_`) and at
/// most 64 characters.
pub fn sts_name(user: &str) -> String {
    let mut name: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    while name.chars().count() < 2 {
        name.push('_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_names() {
        assert_eq!(sts_name("alice"), "alice");
        assert_eq!(sts_name("a"), "a_");
        assert_eq!(sts_name(""), "__");
        assert_eq!(sts_name("jo é/x"), "jo___x");
        assert_eq!(sts_name(&"x".repeat(100)).len(), 64);
        assert_eq!(sts_name("ops.bot@corp"), "ops.bot@corp");
    }

    #[test]
    fn credentials_near_expiry_are_replaced() {
        let api = Arc::new(Ssm::from_config(&SdkConfig::builder().build()));
        let at = |secs: u64| Cached {
            api: api.clone(),
            expires: Some(SystemTime::now() + Duration::from_secs(secs)),
        };
        assert!(at(3600).usable());
        assert!(!at(60).usable());
        assert!(!at(0).usable());
        assert!(Cached { api, expires: None }.usable());
    }
}
