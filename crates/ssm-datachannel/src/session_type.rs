//! The `sessionType` of a Session Manager document, as documents and the
//! agent's handshake (`SessionType` action) spell it: one enum for both
//! ends of the protocol (the gateway's client and the simulator's agent).

use std::fmt;

/// A document's `sessionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// `Standard_Stream`: an interactive shell (`SSM-SessionManagerRunShell`).
    StandardStream,
    /// `InteractiveCommands`: one command under a pty
    /// (`AWS-StartInteractiveCommand`).
    InteractiveCommands,
    /// `NonInteractiveCommands`: one command without a pty
    /// (`AWS-StartNonInteractiveCommand`).
    NonInteractiveCommands,
    /// `Port`: a byte stream to a TCP port (port forwarding, SSH).
    Port,
}

impl SessionType {
    /// The spelling used in documents and the handshake.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardStream => "Standard_Stream",
            Self::InteractiveCommands => "InteractiveCommands",
            Self::NonInteractiveCommands => "NonInteractiveCommands",
            Self::Port => "Port",
        }
    }

    /// Parses that spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Standard_Stream" => Self::StandardStream,
            "InteractiveCommands" => Self::InteractiveCommands,
            "NonInteractiveCommands" => Self::NonInteractiveCommands,
            "Port" => Self::Port,
            _ => return None,
        })
    }

    /// Whether a terminal (shell or command) channel can carry it:
    /// everything but a port session.
    pub fn is_terminal(self) -> bool {
        self != Self::Port
    }
}

impl fmt::Display for SessionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for t in [
            SessionType::StandardStream,
            SessionType::InteractiveCommands,
            SessionType::NonInteractiveCommands,
            SessionType::Port,
        ] {
            assert_eq!(SessionType::parse(t.as_str()), Some(t));
            assert_eq!(t.is_terminal(), t != SessionType::Port);
        }
        assert_eq!(SessionType::parse("port"), None);
    }
}
