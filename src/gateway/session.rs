//! The one pipeline every session goes through: resolve the target, plan
//! it (backend, document, OS user: [`crate::gateway::plan`]), ask the
//! policies, compose the Reason, StartSession, open the data channel and
//! wait until it is ready. Ending a session calls TerminateSession.
//!
//! Recording starts here too: every decision is audited, a new session is
//! refused while recording is unavailable (fail closed), and a started
//! session gets its row and a [`SessionTap`] in [`Opened`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ssm_datachannel::{
    self as datachannel, ChannelConfig, CloseReason, DataChannel, Event, Events, SessionInfo,
};

use crate::aws::{SessionIdentity, SsmApi, SsmResumer, StartRequest};
use crate::config::{SessionsConfig, SshdBackendConfig};
use crate::gateway::backend::Carrier;
use crate::gateway::error::GatewayError;
use crate::gateway::plan::{Plan, check_announced_type};
use crate::gateway::reason::compose_reason;
use crate::gateway::record::{Started, parameters_json, session_record};
use crate::inventory::{Fleet, ResolveError, Target};
use crate::policy::{AuthzRequest, ContextInput, Decision, PolicyEngine, Principal};
use crate::recording::{AuditKind, EndReason, Recorder, SessionTap};
use crate::request::{Reason, SessionRequest, TargetSpec};

use super::grants::ReasonGrants;

/// How long a handshake may take after StartSession.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens SSM sessions for authenticated users.
pub struct Gateway {
    /// Every account and region, with their APIs.
    fleet: Fleet,
    sessions: SessionsConfig,
    policy: Arc<PolicyEngine>,
    recorder: Recorder,
    sshd_config: SshdBackendConfig,
    /// Carries terminal sessions through a target's sshd, when enabled.
    sshd: Option<Arc<dyn Carrier>>,
    /// Reason grants, when a grant store is attached.
    grants: Option<Arc<ReasonGrants>>,
    /// This process's live sessions, to end one on request.
    live: Arc<crate::ops::live::LiveSessions>,
    /// The replicas on the same database (user locks), when joined.
    cluster: Option<Arc<crate::ops::cluster::Cluster>>,
}

/// What preflight found: the target, the plan, and the ids of the
/// policies that allowed it.
pub struct Preflight {
    pub target: Target,
    pub plan: Plan,
    pub policy_ids: Vec<String>,
}

/// A started session with its data channel ready for input.
pub struct Opened {
    /// The resolved target.
    pub target: Target,
    /// SSM's session id.
    pub ssm_session_id: String,
    /// The API the session was started with; end it with the same.
    pub api: Arc<dyn SsmApi>,
    /// How it is carried (backend, document, OS user).
    pub plan: Plan,
    /// The Reason sent to StartSession.
    pub reason: String,
    /// Its data channel, ready.
    pub link: Link,
    /// Where the session's events are recorded.
    pub tap: SessionTap,
}

/// A ready data channel.
pub struct Link {
    /// Write side.
    pub channel: DataChannel,
    /// Events (after Ready).
    pub events: Events,
    /// What the handshake said (session type, agent version).
    pub info: SessionInfo,
}

impl Gateway {
    /// A gateway over the accounts and regions of `fleet`, with the
    /// policies and the recorder.
    pub fn new(
        fleet: Fleet,
        sessions: SessionsConfig,
        policy: Arc<PolicyEngine>,
        recorder: Recorder,
    ) -> Self {
        Self {
            fleet,
            sessions,
            policy,
            recorder,
            sshd_config: SshdBackendConfig::disabled(),
            sshd: None,
            grants: None,
            live: crate::ops::live::LiveSessions::new(),
            cluster: None,
        }
    }

    /// Joins the replicas on the database: their user locks refuse new
    /// sessions, and the cluster's registry of live sessions is this one.
    pub fn with_cluster(mut self, cluster: Arc<crate::ops::cluster::Cluster>) -> Self {
        self.live = cluster.live().clone();
        self.cluster = Some(cluster);
        self
    }

    /// This process's live sessions (kill, lock, shutdown act on them).
    pub fn live(&self) -> &Arc<crate::ops::live::LiveSessions> {
        &self.live
    }

    /// Keeps reason grants with `grants`.
    pub fn with_grants(mut self, grants: ReasonGrants) -> Self {
        self.grants = Some(Arc::new(grants));
        self
    }

    /// The reason grants, when kept.
    pub fn grants(&self) -> Option<&ReasonGrants> {
        self.grants.as_deref()
    }

    /// The names a grant's pattern may match for `spec`: as written, and
    /// the id and name it resolves to (nothing more when it resolves to
    /// nothing; opening it will say why).
    pub async fn target_names(&self, spec: &TargetSpec) -> Vec<String> {
        let mut names = vec![spec.as_str().to_owned()];
        if let Ok(target) = self.fleet.resolve(spec.as_str()).await {
            names.push(target.id.clone());
            names.extend(target.name.clone());
        }
        names
    }

    /// Whether sessions on `target` run under their own AWS identity, so
    /// that a run-as OS user applies to SSM document sessions too.
    pub(super) fn has_session_identity(&self, target: &Target) -> bool {
        self.fleet
            .member_of(target)
            .is_some_and(|m| m.sessions.is_some())
    }

    /// The API `req`'s session on `target` is opened, resumed and ended
    /// with.
    async fn session_api(
        &self,
        req: &SessionRequest,
        target: &Target,
        plan: &Plan,
    ) -> Result<Arc<dyn SsmApi>, GatewayError> {
        let member = self
            .fleet
            .member_of(target)
            .ok_or(GatewayError::Internal("a target outside the fleet"))?;
        let Some(apis) = &member.sessions else {
            return Ok(member.api.clone());
        };
        let who = SessionIdentity {
            user: &req.user.name,
            gateway_session: &req.id.to_string(),
            run_as: match plan.backend {
                crate::config::BackendKind::Ssm => plan.os_user.as_deref(),
                crate::config::BackendKind::Sshd => None,
            },
        };
        match apis.for_session(&who).await {
            Ok(api) => Ok(api),
            Err(e) => {
                let detail = serde_json::json!({
                    "request_id": req.id.to_string(),
                    "target": req.target.as_str(),
                    "action": req.kind.action().as_str(),
                    "os_user": plan.os_user,
                    "message": format!("the session role could not be assumed: {e}"),
                });
                self.audit_denied(req, detail).await;
                Err(GatewayError::SessionRole(e))
            }
        }
    }

    /// Carries terminal sessions of the targets `config` selects through
    /// their sshd with `carrier`.
    pub fn with_sshd_backend(
        mut self,
        config: SshdBackendConfig,
        carrier: Arc<dyn Carrier>,
    ) -> Self {
        self.sshd_config = config;
        self.sshd = Some(carrier);
        self
    }

    /// `[sshd_backend]` as the gateway applies it.
    pub fn sshd_config(&self) -> &SshdBackendConfig {
        &self.sshd_config
    }

    /// The sshd carrier, if the backend is on.
    pub(super) fn sshd_carrier(&self) -> Option<&Arc<dyn Carrier>> {
        self.sshd.as_ref()
    }

    /// `[sessions]`.
    pub(super) fn sessions_config(&self) -> &SessionsConfig {
        &self.sessions
    }

    /// Where sessions and audit events are recorded.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The document interactive shells use.
    pub(super) fn shell_document(&self) -> &str {
        &self.sessions.default_document
    }

    /// The policies in force, shareable with blocking tasks.
    pub(super) fn policy_handle(&self) -> Arc<PolicyEngine> {
        self.policy.clone()
    }

    /// The policies in force.
    pub fn policy(&self) -> &PolicyEngine {
        &self.policy
    }

    /// Asks the policies whether `req` may open a session on `target` as
    /// `plan` says; logs the decision.
    pub fn authorize(&self, req: &SessionRequest, target: &Target, plan: &Plan) -> Decision {
        let action = req.kind.action();
        let document = plan.document.as_str();
        let context = ContextInput {
            document: plan.document.clone(),
            parameters: Plan::policy_parameters(req),
            reason: req.reason.as_ref().map(|r| r.as_str().to_owned()),
            source_ip: req.source.ip(),
            now: SystemTime::now(),
            recording: action.recording(),
            backend: plan.backend.as_str(),
            os_user: plan.os_user.clone(),
            reason_source: req.reason_source.as_str(),
        };
        let decision = self.policy.authorize(&AuthzRequest {
            principal: Principal {
                user: &req.user,
                auth: &req.auth,
            },
            action,
            target,
            context,
        });
        tracing::info!(
            gateway_session = %req.id, user = %req.user.name, target = %target.id, action = action.as_str(),
            document, allowed = decision.allowed, policies = ?decision.determining_policies,
            needs_reason = decision.needs_reason, errors = ?decision.errors, "policy decision"
        );
        decision
    }

    /// Every account and region, for the target picker.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Resolves the request's target; refuses targets that are offline.
    async fn resolve(&self, spec: &str) -> Result<Target, GatewayError> {
        let target = self.fleet.resolve(spec).await?;
        if !target.is_online() {
            return Err(GatewayError::NotConnected {
                id: target.id.clone(),
                name: target.name.clone(),
                status: target.ping_status.clone(),
            });
        }
        Ok(target)
    }

    /// Resolves `req`'s target. When it cannot be decided on because AWS
    /// could not be asked (its tags unreadable, SSM unreachable), the
    /// refusal is audited as a denied decision with the cause.
    pub(super) async fn resolve_for(&self, req: &SessionRequest) -> Result<Target, GatewayError> {
        let result = self.resolve(req.target.as_str()).await;
        if let Err(GatewayError::Resolve(e @ (ResolveError::Tags { .. } | ResolveError::Api(_)))) =
            &result
        {
            let detail = serde_json::json!({
                "request_id": req.id.to_string(),
                "target": req.target.as_str(),
                "action": req.kind.action().as_str(),
                "reason": req.reason,
                "undecidable": true,
                "message": e.to_string(),
            });
            self.audit_denied(req, detail).await;
        }
        result
    }

    /// Audits a refusal of `req` that no policy decided (AWS could not be
    /// asked what the decision needs).
    async fn audit_denied(&self, req: &SessionRequest, detail: serde_json::Value) {
        self.recorder
            .audit(
                AuditKind::DecisionDeny,
                Some(&req.user.name),
                Some(req.id),
                Some(req.source.ip()),
                detail,
            )
            .await;
    }

    /// Resolves the target and asks the policies, without starting
    /// anything: every request goes through here, including connections
    /// that will ride on an already open port session. The decision is
    /// audited either way.
    pub async fn preflight(&self, req: &SessionRequest) -> Result<Preflight, GatewayError> {
        let target = self.resolve_for(req).await?;
        self.preflight_on(req, target).await
    }

    /// [`preflight`](Self::preflight) on a target already resolved.
    pub async fn preflight_on(
        &self,
        req: &SessionRequest,
        target: Target,
    ) -> Result<Preflight, GatewayError> {
        if self.live.is_closing() {
            return Err(GatewayError::ShuttingDown);
        }
        let lock = match &self.cluster {
            Some(c) => c.lock_now(&req.user.name).await,
            None => None,
        };
        if let Some(lock) = lock {
            let detail = serde_json::json!({
                "request_id": req.id.to_string(),
                "target": target.id,
                "action": req.kind.action().as_str(),
                "locked": true,
                "locked_by": lock.locked_by,
                "message": lock.reason,
            });
            self.audit_denied(req, detail).await;
            return Err(GatewayError::Denied {
                message: format!("your access is locked by an administrator: {}", lock.reason),
                needs_reason: false,
            });
        }
        let mut plan = self.plan(req, &target)?;
        // Deny by default, before any call that starts anything.
        let mut decision = self.authorize(req, &target, &plan);
        // The permitting policy's @run_as picks the OS user, where the
        // backend can honour it. The policies must then allow the request
        // as that user too (context.os_user changed): a forbid on the OS
        // user is never bypassed by another policy's @run_as.
        if let Some(user) = decision.run_as.clone()
            && (plan.backend == crate::config::BackendKind::Sshd
                || self.has_session_identity(&target))
            && plan.os_user.as_deref() != Some(user.as_str())
        {
            plan.os_user = Some(user.clone());
            let again = self.authorize(req, &target, &plan);
            decision = if again.allowed && again.run_as.as_deref() == Some(user.as_str()) {
                again
            } else {
                Decision {
                    allowed: false,
                    message: format!(
                        "a policy runs this as OS user {user} (@run_as), but the policies do not allow it as {user}: {}",
                        again.message
                    ),
                    needs_reason: false,
                    run_as: None,
                    ..again
                }
            };
        }
        let kind = if decision.allowed {
            AuditKind::DecisionAllow
        } else {
            AuditKind::DecisionDeny
        };
        let detail = serde_json::json!({
            "request_id": req.id.to_string(),
            "target": target.id,
            "target_name": target.name,
            "action": req.kind.action().as_str(),
            "document": plan.document,
            "backend": plan.backend.as_str(),
            "os_user": plan.os_user,
            // The full parameters are in the session's row; the audit
            // keeps a bounded copy.
            "parameters": crate::untrusted::bounded_to(&parameters_json(&plan.parameters), 4096),
            "reason": req.reason,
            "reason_source": req.reason_source.as_str(),
            "grant_id": req.reason_source.grant_id().map(|id| id.to_string()),
            "policies": decision.determining_policies,
            "message": (!decision.allowed).then_some(&decision.message),
        });
        self.recorder
            .audit(
                kind,
                Some(&req.user.name),
                Some(req.id),
                Some(req.source.ip()),
                detail,
            )
            .await;
        if !decision.allowed {
            return Err(GatewayError::Denied {
                message: decision.message,
                needs_reason: decision.needs_reason,
            });
        }
        Ok(Preflight {
            target,
            plan,
            policy_ids: decision.determining_policies,
        })
    }

    /// Runs the pipeline up to a ready data channel.
    pub async fn open(&self, req: &SessionRequest) -> Result<Opened, GatewayError> {
        let target = self.resolve_for(req).await?;
        self.open_on(req, target).await
    }

    /// [`open`](Self::open) on a target already resolved.
    pub async fn open_on(
        &self,
        req: &SessionRequest,
        target: Target,
    ) -> Result<Opened, GatewayError> {
        let Preflight {
            target,
            plan,
            policy_ids,
        } = self.preflight_on(req, target).await?;
        // Fail closed: no session that could not be recorded.
        self.recorder.ensure_available().await?;
        let reason = compose_reason(
            &req.user.name,
            req.reason.as_ref().map(Reason::as_str),
            &req.id.to_string(),
        );
        let start = StartRequest {
            target: target.id.clone(),
            document: Some(plan.document.clone()),
            parameters: plan.start_parameters(),
            reason: reason.clone(),
        };
        let api = self.session_api(req, &target, &plan).await?;
        let started = api.start_session(&start).await?;
        crate::logging::record_ssm_session(&started.session_id);
        let tap = self
            .recorder
            .begin(session_record(&Started {
                req,
                target: &target,
                plan: &plan,
                ssm_session_id: &started.session_id,
                aws_reason: &reason,
                policy_ids: &policy_ids,
            }))
            .await;
        tracing::info!(
            gateway_session = %req.id, user = %req.user.name, target = %target.id, document = %plan.document,
            backend = plan.backend.as_str(), os_user = ?plan.os_user,
            ssm_session = %started.session_id, kind = req.kind.as_str(), "session started"
        );
        let mut config = ChannelConfig::new(
            started.stream_url.clone(),
            started.token.clone(),
            started.session_id.clone(),
            plan.channel,
        );
        config.resumer = Some(Arc::new(SsmResumer::new(api.clone())));
        let ssm_session_id = started.session_id.clone();
        let opened = async {
            let (channel, mut events) = datachannel::open(config).await?;
            let info = wait_ready(&mut events).await?;
            check_announced_type(req, &plan, &info)?;
            Ok::<_, GatewayError>((channel, events, info))
        }
        .await;
        match opened {
            Ok((channel, events, info)) => Ok(Opened {
                target,
                ssm_session_id,
                api,
                plan,
                reason,
                link: Link {
                    channel,
                    events,
                    info,
                },
                tap,
            }),
            Err(e) => {
                terminate(api.as_ref(), &ssm_session_id).await;
                tap.finish(EndReason::Error, None).await;
                Err(e)
            }
        }
    }
}

/// Most TerminateSession calls in flight at once, process-wide. Thousands
/// of sessions can end together (a client network drops, a replica drains);
/// calling for all of them at once only meets AWS's throttling and the
/// operation timeout (seen: 626 time-outs for 7,000 closes). The SDK's own
/// retry (with backoff) handles the throttling a paced queue still meets.
const TERMINATE_CONCURRENCY: usize = 16;

/// The pace of TerminateSession calls (see [`TERMINATE_CONCURRENCY`]).
static TERMINATING: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(TERMINATE_CONCURRENCY);

/// Ends an SSM session (TerminateSession) through the API that started
/// it, paced with every other call of the process; failures are logged.
pub async fn terminate(api: &dyn SsmApi, ssm_session_id: &str) {
    // The semaphore is never closed, so acquiring cannot fail; without a
    // permit the call simply goes unpaced.
    let _permit = TERMINATING.acquire().await.ok();
    if let Err(e) = api.terminate_session(ssm_session_id).await {
        tracing::warn!(ssm_session = %ssm_session_id, error = %e, "TerminateSession failed");
    }
}

/// [`terminate`] in the background: the session's end is recorded without
/// waiting for AWS.
pub fn terminate_later(api: Arc<dyn SsmApi>, ssm_session_id: String) {
    // In the session's span (the caller's), so its line carries the ids.
    let call = async move { terminate(api.as_ref(), &ssm_session_id).await };
    tokio::spawn(tracing::Instrument::in_current_span(call));
}

async fn wait_ready(events: &mut Events) -> Result<SessionInfo, GatewayError> {
    let wait = async {
        loop {
            match events.recv().await {
                Some(Event::Ready(info)) => return Ok(*info),
                Some(Event::Closed(reason)) => {
                    return Err(GatewayError::NotReady(match reason {
                        CloseReason::ChannelClosed { output } if output.is_empty() => {
                            "the service closed the channel".to_owned()
                        }
                        CloseReason::ChannelClosed { output } => {
                            format!("the service closed the channel: {output}")
                        }
                        CloseReason::Local => "closed locally".to_owned(),
                        CloseReason::Error(e) => e.to_string(),
                    }));
                }
                Some(_) => {}
                None => return Err(GatewayError::NotReady("no events".into())),
            }
        }
    };
    tokio::time::timeout(READY_TIMEOUT, wait)
        .await
        .map_err(|_| GatewayError::NotReady("the agent did not answer in time".into()))?
}
