//! The AWS APIs as the gateway needs them: the [`SsmApi`] trait at the
//! seam, its real implementation [`Ssm`] over aws-sdk-ssm (sessions,
//! instances, hybrid nodes' tags), aws-sdk-resourcegroupstagging (EC2
//! instances' tags, see [`tags`]) and aws-sdk-sts (the account, see
//! [`identity`]), and [`SsmResumer`], which lets a data channel resume
//! through it. [`operations`] lists every AWS operation called here; the
//! IAM policy in `deploy/iam` is tested against it.
//!
//! Session tokens come back wrapped in [`Secret`] and never appear in
//! `Debug` output or errors. Every call has a timeout (see
//! [`DEFAULT_OPERATION_TIMEOUT`]), so a dead endpoint turns into
//! [`SsmError::Unreachable`] instead of a hung ssh prompt.

pub mod accounts;
mod errors;
pub mod identity;
pub mod operations;
pub mod session_role;
pub mod tags;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::HttpPool;
use aws_sdk_ssm::config::Region;
use aws_sdk_ssm::config::timeout::TimeoutConfig;
use aws_sdk_ssm::types::{InstanceInformation, InstanceInformationStringFilter};
use tokio::sync::OnceCell;

use errors::{CallContext, from_sdk};
pub use errors::{Service, SsmError};
use identity::Home;
pub use session_role::{SessionApis, SessionIdentity, SessionRole};
use ssm_datachannel::secret::Secret;
use ssm_datachannel::{ResumeError, Resumer};
pub use tags::TagMap;

/// Upper bound on one API call, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound on one attempt of an API call.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on establishing a connection to the endpoint.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `MaxResults` of each `DescribeInstanceInformation` page (the API's
/// maximum).
const PAGE_SIZE: i32 = 50;
/// Stop paginating after this many pages (a service that keeps handing out
/// tokens must not keep us looping): 50 000 instances.
const MAX_PAGES: usize = 1000;

/// The SSM operations the gateway uses.
#[async_trait::async_trait]
pub trait SsmApi: Send + Sync {
    /// `StartSession`.
    async fn start_session(&self, req: &StartRequest) -> Result<StartedSession, SsmError>;
    /// `ResumeSession`: a fresh token, or `None` when the response has no
    /// `TokenValue` (the session is over).
    async fn resume_session(&self, session_id: &str) -> Result<Option<Secret>, SsmError>;
    /// `TerminateSession`.
    async fn terminate_session(&self, session_id: &str) -> Result<(), SsmError>;
    /// `DescribeInstanceInformation`, every page.
    async fn describe_instances(&self) -> Result<Vec<InstanceInfo>, SsmError>;
    /// `DescribeInstanceInformation` with the filter `tag:<key>` =
    /// any of `values` (at most 100), every page.
    async fn describe_instances_by_tag(
        &self,
        key: &str,
        values: &[String],
    ) -> Result<Vec<InstanceInfo>, SsmError>;
    /// A hybrid node's (`mi-…`) tags: `ListTagsForResource` with
    /// `ResourceType=ManagedInstance`.
    async fn managed_instance_tags(&self, id: &str) -> Result<TagMap, SsmError>;
    /// EC2 instances' (`i-…`) tags: the Resource Groups Tagging API's
    /// `GetResources`, one call per 100 ids. Every id asked for is in the
    /// answer; untagged ones map to no tags.
    async fn ec2_instance_tags(&self, ids: &[String]) -> Result<HashMap<String, TagMap>, SsmError>;
}

/// What `StartSession` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartRequest {
    /// The instance id.
    pub target: String,
    /// The session document; `None` is SSM's default shell document.
    pub document: Option<String>,
    /// Document parameters.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// The `Reason` (see `gateway::reason::compose_reason`); empty ⇒ none
    /// sent.
    pub reason: String,
}

/// A started session. `Debug` shows the token as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    /// `SessionId`.
    pub session_id: String,
    /// `TokenValue`, for the data channel's open frame.
    pub token: Secret,
    /// `StreamUrl`, the data channel's WebSocket URL.
    pub stream_url: String,
}

/// One `InstanceInformation` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `InstanceId` (`i-…` or `mi-…`).
    pub id: String,
    /// `Name`: the activation's name, set for hybrid (`mi-`) instances.
    pub name: Option<String>,
    /// `ComputerName`: the host name the agent reports.
    pub computer_name: Option<String>,
    /// `Online`, `ConnectionLost` or `Inactive` (empty if absent).
    pub ping_status: String,
    /// `Linux`, `Windows` or `MacOS`.
    pub platform_type: String,
    /// e.g. `Amazon Linux`.
    pub platform_name: String,
    /// e.g. `2023`.
    pub platform_version: String,
    /// `EC2Instance` or `ManagedInstance`.
    pub resource_type: String,
    /// The SSM agent's version.
    pub agent_version: String,
    /// `IPAddress`.
    pub ip_address: Option<String>,
    /// `LastPingDateTime`.
    pub last_ping: Option<SystemTime>,
}

impl InstanceInfo {
    fn from_sdk(i: &InstanceInformation) -> Option<Self> {
        let s = |v: Option<&str>| v.unwrap_or("").to_owned();
        let opt = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
        Some(InstanceInfo {
            id: i.instance_id().filter(|id| !id.is_empty())?.to_owned(),
            name: opt(i.name()),
            computer_name: opt(i.computer_name()),
            ping_status: s(i.ping_status().map(|p| p.as_str())),
            platform_type: s(i.platform_type().map(|p| p.as_str())),
            platform_name: s(i.platform_name()),
            platform_version: s(i.platform_version()),
            resource_type: s(i.resource_type().map(|r| r.as_str())),
            agent_version: s(i.agent_version()),
            ip_address: opt(i.ip_address()),
            last_ping: i
                .last_ping_date_time()
                .and_then(|t| SystemTime::try_from(*t).ok()),
        })
    }
}

/// [`SsmApi`] over the real SDK clients, all made from one AWS
/// configuration.
#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
    sts: aws_sdk_sts::Client,
    /// The region of every client (instance ARNs name it).
    region: Option<String>,
    /// The gateway's account, asked of STS once.
    home: Arc<OnceCell<Home>>,
}

/// The AWS configuration from the standard chain (environment, profile,
/// SSO, IMDS, …), with an optional region and endpoint override; with
/// `real_credentials` false a fixed dummy key only `ssmgate sim` accepts.
/// Its HTTP client keeps at most `pool` idle connections per endpoint.
pub async fn load_config(
    region: Option<String>,
    endpoint: Option<String>,
    real_credentials: bool,
    pool: HttpPool,
) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .pool_max_idle_per_host(pool.max_idle_per_host)
        .pool_idle_timeout(pool.idle_timeout)
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if !real_credentials {
        loader = loader.credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "SSMGATESIM",
            "not-a-secret",
            None,
            None,
            "ssmgate-no-credentials",
        ));
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// `shared` with this module's timeouts where it sets none (and the
/// latest behavior version if it names none).
pub(crate) fn with_default_timeouts(shared: &SdkConfig) -> SdkConfig {
    let ours = TimeoutConfig::builder()
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
        .operation_timeout(DEFAULT_OPERATION_TIMEOUT);
    let merged = match shared.timeout_config() {
        Some(existing) => existing.to_builder().take_unset_from(ours).build(),
        None => ours.build(),
    };
    let mut builder = shared.to_builder();
    // The SDK clients refuse to be built without one.
    if shared.behavior_version().is_none() {
        builder.set_behavior_version(Some(BehaviorVersion::latest()));
    }
    builder.timeout_config(merged).build()
}

impl Ssm {
    /// Clients from `shared`. Timeouts it leaves unset get the defaults of
    /// this module.
    pub fn from_config(shared: &SdkConfig) -> Self {
        let shared = with_default_timeouts(shared);
        Ssm {
            client: aws_sdk_ssm::Client::new(&shared),
            tagging: aws_sdk_resourcegroupstagging::Client::new(&shared),
            sts: aws_sdk_sts::Client::new(&shared),
            region: shared.region().map(|r| r.as_ref().to_owned()),
            home: Arc::new(OnceCell::new()),
        }
    }

    async fn describe(
        &self,
        filter: Option<InstanceInformationStringFilter>,
    ) -> Result<Vec<InstanceInfo>, SsmError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = self
                .client
                .describe_instance_information()
                .max_results(PAGE_SIZE)
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_next_token(next.take())
                .send();
            let sent = async { call.await.map_err(|e| from_sdk(e, CallContext::default())) };
            let page = crate::ops::metrics::ssm_call("DescribeInstanceInformation", sent).await?;
            out.extend(
                page.instance_information_list()
                    .iter()
                    .filter_map(InstanceInfo::from_sdk),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(out),
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "DescribeInstanceInformation kept paginating; listing cut short"
        );
        Ok(out)
    }
}

#[async_trait::async_trait]
impl SsmApi for Ssm {
    async fn start_session(&self, req: &StartRequest) -> Result<StartedSession, SsmError> {
        let ctx = CallContext {
            target: Some(&req.target),
            document: req.document.as_deref(),
            service: Service::Ssm,
        };
        let mut call = self
            .client
            .start_session()
            .target(&req.target)
            .set_document_name(req.document.clone());
        if !req.reason.is_empty() {
            call = call.reason(&req.reason);
        }
        for (key, values) in &req.parameters {
            call = call.parameters(key, values.clone());
        }
        let sent = async { call.send().await.map_err(|e| from_sdk(e, ctx)) };
        let out = crate::ops::metrics::ssm_call("StartSession", sent).await?;
        let missing = |member: &str| SsmError::Other {
            service: Service::Ssm,
            code: "ResponseError".to_owned(),
            message: format!("StartSession's response has no {member}"),
        };
        Ok(StartedSession {
            session_id: out
                .session_id()
                .ok_or_else(|| missing("SessionId"))?
                .to_owned(),
            token: Secret::new(out.token_value().ok_or_else(|| missing("TokenValue"))?),
            stream_url: out
                .stream_url()
                .ok_or_else(|| missing("StreamUrl"))?
                .to_owned(),
        })
    }

    async fn resume_session(&self, session_id: &str) -> Result<Option<Secret>, SsmError> {
        let call = self.client.resume_session().session_id(session_id).send();
        let sent = async { call.await.map_err(|e| from_sdk(e, CallContext::default())) };
        let out = crate::ops::metrics::ssm_call("ResumeSession", sent).await?;
        Ok(out.token_value().filter(|t| !t.is_empty()).map(Secret::new))
    }

    async fn terminate_session(&self, session_id: &str) -> Result<(), SsmError> {
        let call = self
            .client
            .terminate_session()
            .session_id(session_id)
            .send();
        let sent = async { call.await.map_err(|e| from_sdk(e, CallContext::default())) };
        crate::ops::metrics::ssm_call("TerminateSession", sent).await?;
        Ok(())
    }

    async fn describe_instances(&self) -> Result<Vec<InstanceInfo>, SsmError> {
        self.describe(None).await
    }

    async fn describe_instances_by_tag(
        &self,
        key: &str,
        values: &[String],
    ) -> Result<Vec<InstanceInfo>, SsmError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let filter = InstanceInformationStringFilter::builder()
            .key(format!("tag:{key}"))
            .set_values(Some(values.iter().take(100).cloned().collect()))
            .build()
            .map_err(|e| SsmError::Validation(e.to_string()))?;
        self.describe(Some(filter)).await
    }

    async fn managed_instance_tags(&self, id: &str) -> Result<TagMap, SsmError> {
        let call = tags::managed_instance(&self.client, id);
        crate::ops::metrics::ssm_call("ListTagsForResource", call).await
    }

    async fn ec2_instance_tags(&self, ids: &[String]) -> Result<HashMap<String, TagMap>, SsmError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let region = self.region.as_deref().ok_or_else(|| SsmError::Other {
            service: Service::Tagging,
            code: "ClientError".to_owned(),
            message: "no AWS region is configured".to_owned(),
        })?;
        let home = self
            .home
            .get_or_try_init(|| identity::caller_home(&self.sts))
            .await?;
        let call = tags::ec2_instances(&self.tagging, home, region, ids);
        crate::ops::metrics::ssm_call("GetResources", call).await
    }
}

/// A data-channel [`Resumer`] that calls `ResumeSession` through an
/// [`SsmApi`].
#[derive(Clone)]
pub struct SsmResumer {
    api: Arc<dyn SsmApi>,
}

impl SsmResumer {
    /// Resumes through `api`.
    pub fn new(api: Arc<dyn SsmApi>) -> Self {
        SsmResumer { api }
    }
}

#[async_trait::async_trait]
impl Resumer for SsmResumer {
    async fn resume(&self, session_id: &str) -> Result<Option<Secret>, ResumeError> {
        let resumed = self.api.resume_session(session_id).await;
        crate::ops::metrics::datachannel_resume(resumed.as_ref().ok().map(Option::is_some));
        Ok(resumed?)
    }
}
