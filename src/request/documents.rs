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

/// A document's `sessionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// `Standard_Stream`: an interactive shell.
    StandardStream,
    /// `InteractiveCommands`: a command with a terminal.
    InteractiveCommands,
    /// `NonInteractiveCommands`: a command without a terminal.
    NonInteractiveCommands,
    /// `Port`: a byte stream to a TCP port (SSH, port forwarding).
    Port,
}

impl SessionType {
    /// The type of an AWS-owned document, when known by name.
    pub fn of_known(document: &str) -> Option<Self> {
        Some(match document {
            SHELL => Self::StandardStream,
            INTERACTIVE_COMMAND => Self::InteractiveCommands,
            NON_INTERACTIVE_COMMAND => Self::NonInteractiveCommands,
            SSH
            | PORT_FORWARDING
            | "AWS-StartPortForwardingSessionToRemoteHost"
            | "AWS-StartPortForwardingSessionToSocket" => Self::Port,
            _ => return None,
        })
    }

    /// The type as the agent's handshake names it.
    pub fn from_handshake(name: &str) -> Option<Self> {
        Some(match name {
            "Standard_Stream" => Self::StandardStream,
            "InteractiveCommands" => Self::InteractiveCommands,
            "NonInteractiveCommands" => Self::NonInteractiveCommands,
            "Port" => Self::Port,
            _ => return None,
        })
    }

    /// The name used in documents and handshakes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardStream => "Standard_Stream",
            Self::InteractiveCommands => "InteractiveCommands",
            Self::NonInteractiveCommands => "NonInteractiveCommands",
            Self::Port => "Port",
        }
    }

    /// Whether a session (shell/exec) channel can carry it: everything
    /// but a port session.
    pub fn is_terminal(self) -> bool {
        self != Self::Port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_documents_and_handshake_names() {
        assert_eq!(SessionType::of_known(SSH), Some(SessionType::Port));
        assert_eq!(
            SessionType::of_known("AWS-StartPortForwardingSessionToRemoteHost"),
            Some(SessionType::Port)
        );
        assert_eq!(
            SessionType::of_known(NON_INTERACTIVE_COMMAND),
            Some(SessionType::NonInteractiveCommands)
        );
        assert_eq!(SessionType::of_known("Custom-Shell"), None);
        for t in [
            SessionType::StandardStream,
            SessionType::InteractiveCommands,
            SessionType::NonInteractiveCommands,
            SessionType::Port,
        ] {
            assert_eq!(SessionType::from_handshake(t.as_str()), Some(t));
        }
        assert!(!SessionType::Port.is_terminal());
        assert!(SessionType::StandardStream.is_terminal());
    }
}
