//! The AWS APIs of one `[[aws.accounts]]` account in one region: its
//! inventory and tags are read with the account's `role_arn` (assumed
//! once, role session `ssmgate`, refreshed by the SDK before expiry),
//! and its sessions are opened with the same role assumed per user
//! ([`SessionRole`]: SourceIdentity, session tags). Without a `role_arn`
//! the gateway's own credentials serve both.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ssm::config::Region;

use super::{SessionApis, SessionRole, Ssm, SsmApi};

/// Role session name of the gateway's own (inventory) use of an account
/// role.
pub const INVENTORY_SESSION_NAME: &str = "ssmgate";

/// What one account and region is reached with.
pub struct AccountApis {
    /// Inventory, tags, and sessions when `sessions` is `None`.
    pub api: Arc<dyn SsmApi>,
    /// Per-user identities for sessions.
    pub sessions: Option<Arc<dyn SessionApis>>,
}

/// The APIs of the account `role_arn` leads to (or the gateway's own), in
/// `region`, from the gateway's configuration `shared`.
pub async fn for_account(shared: &SdkConfig, role_arn: Option<&str>, region: &str) -> AccountApis {
    let regional = shared
        .to_builder()
        .region(Region::new(region.to_owned()))
        .build();
    let Some(role) = role_arn else {
        return AccountApis {
            api: Arc::new(Ssm::from_config(&regional)),
            sessions: None,
        };
    };
    let provider = AssumeRoleProvider::builder(role)
        .session_name(INVENTORY_SESSION_NAME)
        .region(Region::new(region.to_owned()))
        .configure(&regional)
        .build()
        .await;
    let as_role = regional
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    AccountApis {
        api: Arc::new(Ssm::from_config(&as_role)),
        sessions: Some(Arc::new(SessionRole::new(&regional, role))),
    }
}
