//! The one pipeline every session goes through: resolve the target, choose
//! the document, compose the Reason, StartSession, open the data channel
//! and wait until it is ready. Ending a session calls TerminateSession.
//!
//! Recording starts here too: every decision is audited, a new session is
//! refused while recording is unavailable (fail closed), and a started
//! session gets its row and a [`SessionTap`] in [`Opened`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ssm_datachannel::{
    self as datachannel, ChannelConfig, CloseReason, DataChannel, Event, Events, SessionInfo,
    SessionKind,
};

use crate::aws::{SsmApi, SsmResumer, StartRequest};
use crate::config::SessionsConfig;
use crate::gateway::error::GatewayError;
use crate::gateway::reason::compose_reason;
use crate::gateway::record::{Started, parameters_json, session_record};
use crate::inventory::{Inventory, Target};
use crate::policy::{AuthzRequest, ContextInput, Decision, PolicyEngine, Principal};
use crate::recording::{AuditKind, EndReason, Recorder, SessionTap};
use crate::request::documents::{SessionType, known_session_type};
use crate::request::{Kind, SessionRequest};

/// How long a handshake may take after StartSession.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A document, its StartSession parameters, and how its channel behaves.
pub type DocumentChoice = (String, BTreeMap<String, Vec<String>>, SessionKind);

/// Opens SSM sessions for authenticated users.
pub struct Gateway {
    ssm: Arc<dyn SsmApi>,
    inventory: Inventory,
    sessions: SessionsConfig,
    policy: Arc<PolicyEngine>,
    recorder: Recorder,
}

/// What preflight found: the target, the document choice, and the ids of
/// the policies that allowed it.
pub struct Preflight {
    pub target: Target,
    pub choice: DocumentChoice,
    pub policy_ids: Vec<String>,
}

/// A started session with its data channel ready for input.
pub struct Opened {
    /// The resolved target.
    pub target: Target,
    /// SSM's session id.
    pub ssm_session_id: String,
    /// The document that was started.
    pub document: String,
    /// The Reason sent to StartSession.
    pub reason: String,
    /// Write side of the data channel.
    pub channel: DataChannel,
    /// Events of the data channel (after Ready).
    pub events: Events,
    /// What the handshake said (port mode, agent version).
    pub info: SessionInfo,
    /// Where the session's events are recorded.
    pub tap: SessionTap,
}

impl Gateway {
    /// A gateway over an SSM API, its inventory and the policies.
    pub fn new(
        ssm: Arc<dyn SsmApi>,
        inventory: Inventory,
        sessions: SessionsConfig,
        policy: Arc<PolicyEngine>,
        recorder: Recorder,
    ) -> Self {
        Self {
            ssm,
            inventory,
            sessions,
            policy,
            recorder,
        }
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

    /// Asks the policies whether `req` may open a session on `target` with
    /// `document`; logs the decision.
    pub fn authorize(
        &self,
        req: &SessionRequest,
        target: &Target,
        document: &str,
        parameters: &BTreeMap<String, Vec<String>>,
    ) -> Decision {
        let action = req.kind.action();
        let context = ContextInput {
            document: document.to_owned(),
            parameters: parameters
                .iter()
                .filter_map(|(k, v)| v.first().map(|first| (k.clone(), first.clone())))
                .collect(),
            reason: req.reason.clone(),
            source_ip: req.source.ip(),
            now: SystemTime::now(),
            recording: action.recording(),
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

    /// The inventory, for the target picker.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Resolves the request's target; refuses targets that are offline.
    pub async fn resolve(&self, spec: &str) -> Result<Target, GatewayError> {
        let target = self.inventory.resolve(spec).await?;
        if !target.is_online() {
            return Err(GatewayError::NotConnected {
                id: target.id.clone(),
                name: target.name.clone(),
                status: target.ping_status.clone(),
            });
        }
        Ok(target)
    }

    /// Resolves the target and asks the policies, without starting
    /// anything: every request goes through here, including connections
    /// that will ride on an already open port session. The decision is
    /// audited either way.
    pub async fn preflight(&self, req: &SessionRequest) -> Result<Preflight, GatewayError> {
        let target = self.resolve(&req.target).await?;
        let choice = self.document_for(req)?;
        // Deny by default, before any call that starts anything.
        let decision = self.authorize(req, &target, &choice.0, &choice.1);
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
            "document": choice.0,
            // The full parameters are in the session's row; the audit
            // keeps a bounded copy.
            "parameters": crate::untrusted::bounded_to(&parameters_json(&choice.1), 4096),
            "reason": req.reason,
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
            choice,
            policy_ids: decision.determining_policies,
        })
    }

    /// Runs the pipeline up to a ready data channel.
    pub async fn open(&self, req: &SessionRequest) -> Result<Opened, GatewayError> {
        let Preflight {
            target,
            choice: (document, parameters, kind),
            policy_ids,
        } = self.preflight(req).await?;
        // Fail closed: no session that could not be recorded.
        self.recorder.ensure_available().await?;
        let reason = compose_reason(&req.user.name, req.reason.as_deref(), &req.id.to_string());
        let start = StartRequest {
            target: target.id.clone(),
            document: Some(document.clone()),
            parameters: parameters.clone(),
            reason: reason.clone(),
        };
        let started = self.ssm.start_session(&start).await?;
        let tap = self
            .recorder
            .begin(session_record(&Started {
                req,
                target: &target,
                document: &document,
                parameters: &parameters,
                ssm_session_id: &started.session_id,
                aws_reason: &reason,
                policy_ids: &policy_ids,
            }))
            .await;
        tracing::info!(
            gateway_session = %req.id, user = %req.user.name, target = %target.id, document = %document,
            ssm_session = %started.session_id, kind = req.kind.as_str(), "session started"
        );
        let mut config = ChannelConfig::new(
            started.stream_url.clone(),
            started.token.clone(),
            started.session_id.clone(),
            kind,
        );
        config.resumer = Some(Arc::new(SsmResumer::new(self.ssm.clone())));
        let ssm_session_id = started.session_id.clone();
        let opened = async {
            let (channel, mut events) = datachannel::open(config).await?;
            let info = wait_ready(&mut events).await?;
            check_announced_type(req, &document, &info)?;
            Ok::<_, GatewayError>((channel, events, info))
        }
        .await;
        match opened {
            Ok((channel, events, info)) => Ok(Opened {
                target,
                ssm_session_id,
                document,
                reason,
                channel,
                events,
                info,
                tap,
            }),
            Err(e) => {
                self.terminate(&ssm_session_id).await;
                tap.finish(EndReason::Error, None).await;
                Err(e)
            }
        }
    }

    /// Ends an SSM session (TerminateSession); failures are logged.
    pub async fn terminate(&self, ssm_session_id: &str) {
        if let Err(e) = self.ssm.terminate_session(ssm_session_id).await {
            tracing::warn!(ssm_session = %ssm_session_id, error = %e, "TerminateSession failed");
        }
    }

    /// The document, its parameters and the data-channel kind for a
    /// request. The document's session type must fit the channel: a port
    /// or SSH document is never started for a shell or command (it would
    /// carry an unrecorded, end-to-end encrypted stream decided as a shell).
    fn document_for(&self, req: &SessionRequest) -> Result<DocumentChoice, GatewayError> {
        let mut params = BTreeMap::new();
        match &req.kind {
            Kind::Shell => {}
            Kind::Exec { command } => {
                params.insert("command".to_owned(), vec![command.clone()]);
            }
            Kind::Port { port } => {
                params.insert("portNumber".to_owned(), vec![port.to_string()]);
            }
        }
        let default = req
            .kind
            .default_document(req.pty, &self.sessions.default_document);
        let document = req.document.clone().unwrap_or_else(|| default.to_owned());
        if !self
            .sessions
            .allowed_documents
            .iter()
            .any(|d| d == &document)
        {
            return Err(GatewayError::DocumentNotAllowed {
                document: crate::untrusted::bounded(&document),
                allowed: self.sessions.allowed_documents.join(", "),
            });
        }
        let known = known_session_type(&document);
        let kind = match (&req.kind, known) {
            (Kind::Port { .. }, Some(SessionType::Port) | None) => SessionKind::Port,
            (Kind::Shell | Kind::Exec { .. }, Some(SessionType::Port)) => {
                return Err(GatewayError::DocumentKindMismatch {
                    document,
                    session_type: SessionType::Port.as_str(),
                    channel: req.kind.as_str(),
                });
            }
            (Kind::Shell | Kind::Exec { .. }, Some(SessionType::NonInteractiveCommands)) => {
                SessionKind::Exec
            }
            (Kind::Shell | Kind::Exec { .. }, Some(_)) => SessionKind::Shell,
            // A custom document: its type is checked at the handshake.
            (Kind::Exec { .. }, None) if !req.pty => SessionKind::Exec,
            (Kind::Shell | Kind::Exec { .. }, None) => SessionKind::Shell,
            (Kind::Port { .. }, Some(other)) => {
                return Err(GatewayError::DocumentKindMismatch {
                    document,
                    session_type: other.as_str(),
                    channel: req.kind.as_str(),
                });
            }
        };
        Ok((document, params, kind))
    }
}

/// Checks the session type the agent announced against the channel: a
/// custom document that turns out to be a port session never reaches a
/// shell or command channel, and a port channel never gets a shell.
fn check_announced_type(
    req: &SessionRequest,
    document: &str,
    info: &SessionInfo,
) -> Result<(), GatewayError> {
    let Some(announced) = info.session_type.as_deref() else {
        // Agents that skip the handshake only run shells.
        return if matches!(req.kind, Kind::Port { .. }) {
            Err(GatewayError::DocumentKindMismatch {
                document: document.to_owned(),
                session_type: "Standard_Stream",
                channel: req.kind.as_str(),
            })
        } else {
            Ok(())
        };
    };
    let fits = match SessionType::parse(announced) {
        Some(t) => t.is_terminal() != matches!(req.kind, Kind::Port { .. }),
        None => false,
    };
    if fits {
        Ok(())
    } else {
        Err(GatewayError::DocumentKindMismatch {
            document: document.to_owned(),
            session_type: SessionType::parse(announced).map_or("unknown", SessionType::as_str),
            channel: req.kind.as_str(),
        })
    }
}

async fn wait_ready(events: &mut Events) -> Result<SessionInfo, GatewayError> {
    let wait = async {
        loop {
            match events.recv().await {
                Some(Event::Ready(info)) => return Ok(info),
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
