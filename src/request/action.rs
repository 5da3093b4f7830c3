//! The kinds of session as policies name them (`Action::"shell"`, …) and
//! whether a session's content is recorded in full.

use std::fmt;
use std::str::FromStr;

/// The kind of session, as policies name it (`Action::"shell"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// An interactive shell.
    Shell,
    /// A command.
    Exec,
    /// A port forward to any port but 22.
    PortForward,
    /// ProxyJump / `-W` (a connection to port 22).
    Ssh,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 4] = [
        Action::Shell,
        Action::Exec,
        Action::PortForward,
        Action::Ssh,
    ];

    /// The Cedar action id: `shell`, `exec`, `port_forward`, `ssh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Shell => "shell",
            Action::Exec => "exec",
            Action::PortForward => "port_forward",
            Action::Ssh => "ssh",
        }
    }

    /// Index into per-action tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Port forwards and ProxyJump carry bytes the gateway cannot read:
    /// metadata-only; shells and commands are recorded in full.
    pub fn recording(self) -> Recording {
        match self {
            Action::Shell | Action::Exec => Recording::Full,
            Action::PortForward | Action::Ssh => Recording::MetadataOnly,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    /// Accepts the Cedar ids, plus `port-forward` and `port`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shell" => Ok(Action::Shell),
            "exec" => Ok(Action::Exec),
            "port_forward" | "port-forward" | "port" => Ok(Action::PortForward),
            "ssh" => Ok(Action::Ssh),
            _ => Err(format!(
                "unknown action \"{s}\" (expected shell, exec, port_forward or ssh)"
            )),
        }
    }
}

/// Whether the session's content will be recorded in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Every byte (shell, exec): `"full"`.
    Full,
    /// Who, what, when, how much (ssh, port forwards): `"metadata"`.
    MetadataOnly,
}

impl Recording {
    /// The context value: `"full"` or `"metadata"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recording::Full => "full",
            Recording::MetadataOnly => "metadata",
        }
    }
}

impl FromStr for Recording {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Recording::Full),
            "metadata" => Ok(Recording::MetadataOnly),
            _ => Err(format!(
                "unknown recording \"{s}\" (expected full or metadata)"
            )),
        }
    }
}
