//! The request vocabulary every layer shares, at the bottom of the crate:
//! who asks ([`AuthMethod`], with the user's config entry), what they ask
//! for ([`Kind`], its policy [`Action`] and [`Recording`] mode, the SSM
//! [`documents`] and their session types), on which target ([`TargetSpec`],
//! checked once), why ([`Reason`] and the configured [`Justification`]
//! rule), and the [`SessionRequest`] that carries it all from the SSH layer
//! to the gateway. It imports nothing above it (only the configuration and
//! the `untrusted` text helpers); the SSH layer, the gateway, the policies
//! and the recording import it, and none of them imports the SSH layer.

pub mod action;
pub mod auth;
pub mod documents;
pub mod grant;
pub mod kind;
pub mod reason;
pub mod target;

use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;

pub use action::{Action, Recording};
pub use auth::{AuthMethod, DEFAULT_CERT_EXTENSIONS, PERMIT_PORT_FORWARDING, PERMIT_PTY};
pub use grant::{GrantCommand, ReasonSource, TargetPattern};
pub use kind::Kind;
pub use reason::{Justification, Reason, ReasonRefused};
pub use target::{TargetError, TargetSpec};

use crate::config::UserConfig;

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
    pub target: TargetSpec,
    /// Shell, exec or port.
    pub kind: Kind,
    /// A PTY was requested (shell and exec).
    pub pty: bool,
    /// A session document the user asked for (`SetEnv SSMGATE_DOCUMENT`).
    pub document: Option<String>,
    /// The user's justification, already checked against the rule.
    pub reason: Option<Reason>,
    /// Where the reason came from.
    pub reason_source: ReasonSource,
    /// The client's SSH version string (`SSH-2.0-OpenSSH_9.6`).
    pub client_version: Option<String>,
}
