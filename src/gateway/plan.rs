//! What a request will run as, decided before anything starts and shown to
//! the policies: the backend that carries it (SSM session documents, or the
//! target's own sshd), the SSM document with its StartSession parameters
//! and the data channel's kind, and the OS user. The agent's announced
//! session type is checked against the plan once the channel is up.

use std::collections::BTreeMap;

use ssm_datachannel::{SessionInfo, SessionKind};

use crate::config::{BackendKind, SshdBackendConfig};
use crate::gateway::error::GatewayError;
use crate::gateway::exit_marker::ExitMarker;
use crate::gateway::session::Gateway;
use crate::inventory::Target;
use crate::request::documents::{self, SessionType, known_session_type};
use crate::request::{Kind, SessionRequest};

/// How a request will be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// SSM documents or the target's sshd.
    pub backend: BackendKind,
    /// The SSM document started.
    pub document: String,
    /// Its StartSession parameters.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// How its data channel behaves.
    pub channel: SessionKind,
    /// The OS user the session logs in as (sshd backend) or runs as (SSM
    /// documents, with a session role: Session Manager's Run As).
    pub os_user: Option<String>,
    /// For a command with a terminal through AWS-StartInteractiveCommand:
    /// the marker its wrapper prints with the exit status.
    pub exit_marker: Option<ExitMarker>,
}

impl Plan {
    /// The StartSession parameters: the plan's, with the command wrapped
    /// when its exit status is recovered through a marker.
    pub fn start_parameters(&self) -> BTreeMap<String, Vec<String>> {
        let mut params = self.parameters.clone();
        if let Some(marker) = &self.exit_marker
            && let Some(command) = params.get_mut("command")
        {
            *command = command.iter().map(|c| marker.wrap(c)).collect();
        }
        params
    }

    /// What the policies see as `context.parameters`: the request's own
    /// (`command`, `subsystem`, `portNumber`), whatever the backend.
    pub fn policy_parameters(req: &SessionRequest) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        match &req.kind {
            Kind::Shell => {}
            Kind::Exec { command } => {
                p.insert("command".to_owned(), command.clone());
            }
            Kind::Subsystem { name } => {
                p.insert("subsystem".to_owned(), name.clone());
            }
            Kind::Port { port } => {
                p.insert("portNumber".to_owned(), port.to_string());
            }
        }
        p
    }
}

/// The backend `config` gives `target` for a request of `kind`: only
/// terminal sessions (shell, exec, subsystem) go through sshd; forwards
/// always ride SSM port sessions. A target's tag overrides the default.
pub fn backend_for(config: &SshdBackendConfig, kind: &Kind, target: &Target) -> BackendKind {
    if !config.enabled || matches!(kind, Kind::Port { .. }) {
        return BackendKind::Ssm;
    }
    match target.tags.get(&config.tag) {
        Some(value) => BackendKind::parse(value.trim()).unwrap_or_else(|| {
            tracing::warn!(target = %target.id, tag = %config.tag, value = %crate::untrusted::Untrusted(value), "unknown backend tag value; using the default");
            config.default
        }),
        None => config.default,
    }
}

impl Gateway {
    /// The plan for `req` on `target`; refusals name what is wrong.
    pub fn plan(&self, req: &SessionRequest, target: &Target) -> Result<Plan, GatewayError> {
        match backend_for(self.sshd_config(), &req.kind, target) {
            BackendKind::Ssm => self.ssm_plan(req, target),
            BackendKind::Sshd => Ok(self.sshd_plan(req)),
        }
    }

    /// Through the target's sshd: AWS-StartSSHSession to its port, as the
    /// user's `run_as` or the configured OS user. The user cannot choose
    /// the document here.
    fn sshd_plan(&self, req: &SessionRequest) -> Plan {
        let config = self.sshd_config();
        let os_user = req.user.run_as.clone().unwrap_or(config.os_user.clone());
        Plan {
            backend: BackendKind::Sshd,
            document: documents::SSH.to_owned(),
            parameters: BTreeMap::from([("portNumber".to_owned(), vec![config.port.to_string()])]),
            channel: SessionKind::Port,
            os_user: Some(os_user),
            exit_marker: None,
        }
    }

    /// Through SSM documents. The document's session type must fit the
    /// channel: a port or SSH document is never started for a shell or
    /// command (it would carry an unrecorded, end-to-end encrypted stream
    /// decided as a shell).
    fn ssm_plan(&self, req: &SessionRequest, target: &Target) -> Result<Plan, GatewayError> {
        let mut params = BTreeMap::new();
        match &req.kind {
            Kind::Shell => {}
            Kind::Exec { command } => {
                params.insert("command".to_owned(), vec![command.clone()]);
            }
            Kind::Subsystem { name } => {
                return Err(GatewayError::SubsystemNeedsSshd {
                    name: crate::untrusted::bounded(name),
                    user: req.user.name.clone(),
                });
            }
            Kind::Port { port } => {
                params.insert("portNumber".to_owned(), vec![port.to_string()]);
            }
        }
        let sessions = self.sessions_config();
        let default = req
            .kind
            .default_document(req.pty, &sessions.default_document);
        let document = req.document.clone().unwrap_or_else(|| default.to_owned());
        if !sessions.allowed_documents.iter().any(|d| d == &document) {
            return Err(GatewayError::DocumentNotAllowed {
                document: crate::untrusted::bounded(&document),
                allowed: sessions.allowed_documents.join(", "),
            });
        }
        let known = known_session_type(&document);
        let port = matches!(req.kind, Kind::Port { .. });
        let channel = match known {
            Some(SessionType::Port) | None if port => SessionKind::Port,
            Some(other) if port => {
                return Err(GatewayError::DocumentKindMismatch {
                    document,
                    session_type: other.as_str(),
                    channel: req.kind.as_str(),
                });
            }
            Some(SessionType::Port) => {
                return Err(GatewayError::DocumentKindMismatch {
                    document,
                    session_type: SessionType::Port.as_str(),
                    channel: req.kind.as_str(),
                });
            }
            Some(SessionType::NonInteractiveCommands) => SessionKind::Exec,
            Some(_) => SessionKind::Shell,
            // A custom document: its type is checked at the handshake.
            None if matches!(req.kind, Kind::Exec { .. }) && !req.pty => SessionKind::Exec,
            None => SessionKind::Shell,
        };
        // AWS-StartInteractiveCommand runs `sh -c <command>` in a PTY and
        // reports no status: the wrapper prints it (see exit_marker).
        let exit_marker = (req.pty
            && matches!(req.kind, Kind::Exec { .. })
            && document == documents::INTERACTIVE_COMMAND)
            .then(ExitMarker::new);
        Ok(Plan {
            backend: BackendKind::Ssm,
            document,
            parameters: params,
            channel,
            // Run As through SSM needs the session's own identity (the
            // SSMSessionRunAs tag of the assumed session role).
            os_user: req
                .user
                .run_as
                .clone()
                .filter(|_| self.has_session_identity(target)),
            exit_marker,
        })
    }
}

/// Checks the session type the agent announced against the plan: a
/// custom document that turns out to be a port session never reaches a
/// shell or command channel, and a port channel never gets a shell.
pub(super) fn check_announced_type(
    req: &SessionRequest,
    plan: &Plan,
    info: &SessionInfo,
) -> Result<(), GatewayError> {
    let wants_port = plan.channel == SessionKind::Port;
    let mismatch = |session_type: &'static str| GatewayError::DocumentKindMismatch {
        document: plan.document.clone(),
        session_type,
        channel: req.kind.as_str(),
    };
    let Some(announced) = info.session_type.as_deref() else {
        // Agents that skip the handshake only run shells.
        return if wants_port {
            Err(mismatch("Standard_Stream"))
        } else {
            Ok(())
        };
    };
    match SessionType::parse(announced) {
        Some(t) if t.is_terminal() != wants_port => Ok(()),
        Some(t) => Err(mismatch(t.as_str())),
        None => Err(mismatch("unknown")),
    }
}
