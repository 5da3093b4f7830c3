//! The kind of session a user asked for, with what follows from it.

use super::action::Action;
use super::documents;

/// The kind of session requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An interactive shell (`ssh user+target@gw`).
    Shell,
    /// A command (`ssh user+target@gw CMD`).
    Exec { command: String },
    /// A subsystem (`sftp`, `scp` in its default sftp mode): a command
    /// for the policies, which see its name as `parameters.subsystem`.
    Subsystem { name: String },
    /// A TCP connection to a port of the target (`ssh -J`, `ssh -L`).
    Port { port: u16 },
}

impl Kind {
    /// The policy action, and the only place where port 22 means ProxyJump
    /// (`ssh -J`, `-W host:22`): [`Action::Ssh`]; any other port is
    /// [`Action::PortForward`]. The recorded kind, the default document and
    /// the recording mode all follow from it.
    pub fn action(&self) -> Action {
        match self {
            Self::Shell => Action::Shell,
            Self::Exec { .. } | Self::Subsystem { .. } => Action::Exec,
            Self::Port { port: 22 } => Action::Ssh,
            Self::Port { .. } => Action::PortForward,
        }
    }

    /// A short name for logs and messages (`shell`, `exec`, `subsystem`,
    /// `ssh`, `port`).
    pub fn as_str(&self) -> &'static str {
        if let Self::Subsystem { .. } = self {
            return "subsystem";
        }
        match self.action() {
            Action::Shell => "shell",
            Action::Exec => "exec",
            Action::Ssh => "ssh",
            Action::PortForward => "port",
        }
    }

    /// The document a request of this kind uses unless it names one:
    /// `shell_document` (configured) for shells, the interactive or
    /// non-interactive command document for commands (with or without a
    /// PTY), the SSH or port-forwarding document for ports.
    pub fn default_document<'a>(&self, pty: bool, shell_document: &'a str) -> &'a str {
        match self.action() {
            Action::Shell => shell_document,
            Action::Exec if pty => documents::INTERACTIVE_COMMAND,
            Action::Exec => documents::NON_INTERACTIVE_COMMAND,
            Action::Ssh => documents::SSH,
            Action::PortForward => documents::PORT_FORWARDING,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_22_is_ssh_and_everything_follows_from_the_action() {
        let ssh = Kind::Port { port: 22 };
        let web = Kind::Port { port: 80 };
        assert_eq!(ssh.action(), Action::Ssh);
        assert_eq!(web.action(), Action::PortForward);
        assert_eq!(ssh.as_str(), "ssh");
        assert_eq!(web.as_str(), "port");
        assert_eq!(ssh.default_document(false, "S"), documents::SSH);
        assert_eq!(web.default_document(false, "S"), documents::PORT_FORWARDING);
        assert_eq!(Kind::Shell.default_document(true, "S"), "S");
        let exec = Kind::Exec {
            command: "ls".into(),
        };
        assert_eq!(
            exec.default_document(true, "S"),
            documents::INTERACTIVE_COMMAND
        );
        assert_eq!(
            exec.default_document(false, "S"),
            documents::NON_INTERACTIVE_COMMAND
        );
    }
}
