//! What a user asked for, as it flows through the gateway: a
//! [`SessionRequest`] built by the SSH layer, and the errors that refuse it.

use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::aws::SsmError;
use crate::config::UserConfig;
use crate::datachannel::DataChannelError;
use crate::inventory::ResolveError;
use crate::ssh::auth::AuthMethod;

/// The kind of session requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An interactive shell (`ssh user+target@gw`).
    Shell,
    /// A command (`ssh user+target@gw CMD`).
    Exec { command: String },
    /// A TCP connection to a port of the target (`ssh -J`, `ssh -L`).
    Port { port: u16 },
}

impl Kind {
    /// A short name for logs and messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Exec { .. } => "exec",
            Self::Port { port: 22 } => "ssh",
            Self::Port { .. } => "port",
        }
    }
}

/// One request to open a session, with everything known about who asks.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The gateway's own id for this session (goes into the Reason).
    pub id: Uuid,
    /// The authenticated user (name, groups, attributes).
    pub user: Arc<UserConfig>,
    /// How they authenticated.
    pub auth: AuthMethod,
    /// Where they connect from.
    pub source: SocketAddr,
    /// The target as the user wrote it (id or name).
    pub target: String,
    /// Shell, exec or port.
    pub kind: Kind,
    /// A PTY was requested (shell and exec).
    pub pty: bool,
    /// A session document the user asked for (`SetEnv SSMGATE_DOCUMENT`).
    pub document: Option<String>,
    /// The user's justification, already checked against the rule.
    pub reason: Option<String>,
    /// The client's SSH version string (`SSH-2.0-OpenSSH_9.6`).
    pub client_version: Option<String>,
}

/// Why a session was not opened. Texts are for the person at the prompt.
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
}
