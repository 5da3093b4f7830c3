//! Port sessions on the client side (spec §7.4): which of the three modes
//! an agent will speak, decided from the handshake.
//!
//! - **stream**: one byte stream (AWS-StartSSHSession, documents without
//!   `type`); the agent's EOF ends the session;
//! - **basic**: one TCP connection at a time, `DisconnectToPort` between
//!   connections (LocalPortForwarding with agents ≤ 3.0.196.0);
//! - **mux**: smux v1 over the byte stream, many connections at once.

use super::channel::SessionInfo;
use super::version::plugin_greater;

/// Agents above this version speak smux for LocalPortForwarding.
pub const MUX_MIN_AGENT: &str = "3.0.196.0";
/// Agents above this version run smux without keepalive.
pub const NO_KEEPALIVE_AGENT: &str = "3.1.1511.0";

/// How a port session carries connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMode {
    /// A single byte stream.
    Stream,
    /// One connection at a time.
    Basic,
    /// smux; `keepalive` says whether our smux client must send keepalives.
    Mux { keepalive: bool },
}

impl PortMode {
    /// The mode the plugin would choose for this handshake.
    pub fn for_session(info: &SessionInfo) -> Self {
        let local = info.properties.get("type").map(String::as_str) == Some("LocalPortForwarding");
        if !local {
            return Self::Stream;
        }
        let agent = info.agent_version.as_deref().unwrap_or("");
        if plugin_greater(agent, MUX_MIN_AGENT) {
            Self::Mux {
                keepalive: !plugin_greater(agent, NO_KEEPALIVE_AGENT),
            }
        } else {
            Self::Basic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: Option<&str>, agent: &str) -> SessionInfo {
        let mut i = SessionInfo {
            session_type: Some("Port".into()),
            agent_version: Some(agent.into()),
            ..SessionInfo::default()
        };
        if let Some(k) = kind {
            i.properties.insert("type".into(), k.into());
        }
        i
    }

    #[test]
    fn modes_follow_the_plugin_rules() {
        assert_eq!(
            PortMode::for_session(&info(None, "3.3.987.0")),
            PortMode::Stream
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.3.987.0")),
            PortMode::Mux { keepalive: false }
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.1.0.0")),
            PortMode::Mux { keepalive: true }
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.0.196.0")),
            PortMode::Basic
        );
    }
}
