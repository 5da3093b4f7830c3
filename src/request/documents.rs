//! The SSM documents the gateway knows, and what kind of session each one
//! opens. The action a policy decides, the recording mode and the data
//! channel's behaviour all follow from the document's session type, never
//! from the SSH channel alone: a port or SSH document asked for on a shell
//! channel (`SetEnv SSMGATE_DOCUMENT=AWS-StartSSHSession`) would otherwise
//! carry an end-to-end encrypted stream decided and recorded as a shell.
//!
//! The session types are those of the documents' `sessionType` field
//! (AWS docs, "Session document schema"): `Standard_Stream`,
//! `InteractiveCommands`, `NonInteractiveCommands`, `Port`. For documents
//! not listed here (custom documents), the type is learnt from the agent's
//! handshake and checked against the channel before any byte flows.

/// The default interactive shell document.
pub const SHELL: &str = "SSM-SessionManagerRunShell";
/// A command with a terminal.
pub const INTERACTIVE_COMMAND: &str = "AWS-StartInteractiveCommand";
/// A command without a terminal (separate stdout/stderr, exit code).
pub const NON_INTERACTIVE_COMMAND: &str = "AWS-StartNonInteractiveCommand";
/// Raw bytes to the target's port 22 (ProxyJump).
pub const SSH: &str = "AWS-StartSSHSession";
/// Raw bytes to a port of the target.
pub const PORT_FORWARDING: &str = "AWS-StartPortForwardingSession";

pub use ssm_datachannel::SessionType;

/// The session type of an AWS-owned document, when known by name.
pub fn known_session_type(document: &str) -> Option<SessionType> {
    Some(match document {
        SHELL => SessionType::StandardStream,
        INTERACTIVE_COMMAND => SessionType::InteractiveCommands,
        NON_INTERACTIVE_COMMAND => SessionType::NonInteractiveCommands,
        SSH
        | PORT_FORWARDING
        | "AWS-StartPortForwardingSessionToRemoteHost"
        | "AWS-StartPortForwardingSessionToSocket" => SessionType::Port,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_documents_and_handshake_names() {
        assert_eq!(known_session_type(SSH), Some(SessionType::Port));
        assert_eq!(
            known_session_type("AWS-StartPortForwardingSessionToRemoteHost"),
            Some(SessionType::Port)
        );
        assert_eq!(
            known_session_type(NON_INTERACTIVE_COMMAND),
            Some(SessionType::NonInteractiveCommands)
        );
        assert_eq!(known_session_type("Custom-Shell"), None);
    }
}
