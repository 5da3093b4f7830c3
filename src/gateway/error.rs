//! Why a session was not opened: [`GatewayError`], with the one line a
//! user is shown ([`GatewayError::for_user`]) and the full text for the log.

use ssm_datachannel::DataChannelError;
use uuid::Uuid;

use crate::aws::SsmError;
use crate::inventory::ResolveError;

/// Why a session was not opened. [`GatewayError::for_user`] is what the
/// person at the prompt sees; the full text (`Display`) goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Resolve(#[from] ResolveError),
    #[error("target {id}{} is not connected to SSM (ping status {status})", name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())]
    NotConnected {
        id: String,
        name: Option<String>,
        status: String,
    },
    #[error("document {document} is not allowed here; allowed: {allowed}")]
    DocumentNotAllowed { document: String, allowed: String },
    #[error("document {document} opens a {session_type} session, which a {channel} channel cannot carry{}", if *session_type == "Port" { " (for SSH or port forwarding use ssh -J or ssh -L)" } else { "" })]
    DocumentKindMismatch {
        document: String,
        session_type: &'static str,
        channel: &'static str,
    },
    #[error("{0}")]
    Ssm(#[from] SsmError),
    #[error("the session could not be started: {0}")]
    DataChannel(#[from] DataChannelError),
    #[error("the session ended before it was ready: {0}")]
    NotReady(String),
    #[error("access denied: {message}")]
    Denied { message: String, needs_reason: bool },
    #[error("{0}")]
    RecordingUnavailable(#[from] crate::recording::RecordingUnavailable),
    #[error(
        "the {name} subsystem needs the sshd backend, which this target does not use; for sftp and scp through SSM documents, jump through the gateway: sftp -J {user}@GATEWAY user@TARGET"
    )]
    SubsystemNeedsSshd { name: String, user: String },
    /// The target's sshd could not be used (host key, login, requests).
    #[error("{0}")]
    Sshd(String),
    /// The session role could not be assumed for this user.
    #[error("the session's AWS identity could not be set up: {0}")]
    SessionRole(SsmError),
    /// The gateway is draining for a shutdown: no new sessions.
    #[error("this gateway is shutting down; reconnect to reach another one")]
    ShuttingDown,
    /// A caller broke the gateway's contract (a bug, not a refusal).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl GatewayError {
    /// One line for the user. Refusals they can act on (no such target,
    /// denied by policy, document not allowed, recording down, …) are
    /// shown as they are; internal failures (AWS errors that name the
    /// gateway's role, data channel and protocol errors) are summarised,
    /// naming the gateway session id under which the log has the details.
    pub fn for_user(&self, gateway_session: Uuid) -> String {
        let internal = |summary: &str| {
            format!(
                "{summary} (gateway session {gateway_session}; the gateway's log has the details)"
            )
        };
        match self {
            GatewayError::Resolve(ResolveError::Api(_)) => {
                internal("the target could not be looked up in SSM")
            }
            GatewayError::Resolve(ResolveError::Tags { id, source }) => {
                let cause = match source {
                    SsmError::Throttled { .. } => source.to_string(),
                    SsmError::AccessDenied(_) => "AWS denied the gateway access to them".to_owned(),
                    SsmError::Unreachable { service, .. } => {
                        format!("the {service} endpoint could not be reached")
                    }
                    _ => "AWS answered with an error".to_owned(),
                };
                internal(&format!(
                    "the tags of {id} could not be read ({cause}), so access to it cannot be decided; try again later"
                ))
            }
            GatewayError::Ssm(
                SsmError::TargetNotConnected { .. }
                | SsmError::InvalidDocument { .. }
                | SsmError::Throttled { .. }
                | SsmError::InvalidParameters(_),
            ) => one_line(&self.to_string()),
            GatewayError::Ssm(SsmError::AccessDenied(_)) => {
                internal("AWS refused to start the session (access denied)")
            }
            GatewayError::Ssm(_) => internal("SSM could not start the session"),
            GatewayError::DataChannel(DataChannelError::KmsUnsupported) => {
                one_line(&self.to_string())
            }
            GatewayError::DataChannel(_) | GatewayError::NotReady(_) => {
                internal("the session could not be started")
            }
            GatewayError::SessionRole(SsmError::Throttled { .. }) => one_line(&self.to_string()),
            GatewayError::SessionRole(_) => internal(
                "the session's AWS identity (the session role, assumed for you) could not be set up",
            ),
            GatewayError::Internal(_) => internal("internal error"),
            _ => one_line(&self.to_string()),
        }
    }
}

/// `text` on one line (any line break becomes a space).
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_summarised_with_the_session_id() {
        let id = Uuid::new_v4();
        let e = GatewayError::NotReady(
            "Error(ReconnectFailed { attempts: 6, last: \"User is not authorized to perform: ssm:ResumeSession\" })".into(),
        );
        let text = e.for_user(id);
        assert!(
            !text.contains("ReconnectFailed") && !text.contains("ssm:ResumeSession"),
            "{text}"
        );
        assert!(text.contains(&id.to_string()), "{text}");
        let e = GatewayError::Ssm(SsmError::AccessDenied(
            "User: arn:aws:sts::123456789012:assumed-role/gw is not authorized".into(),
        ));
        assert!(!e.for_user(id).contains("arn:aws"), "{}", e.for_user(id));
        let e = GatewayError::Denied {
            message: "only port 80 may be forwarded".into(),
            needs_reason: false,
        };
        assert_eq!(
            e.for_user(id),
            "access denied: only port 80 may be forwarded"
        );
    }
}
