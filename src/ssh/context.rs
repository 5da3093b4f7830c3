//! What every connection of the SSH server shares: identities, the
//! justification rule, the gateway and the server limits.

use std::sync::Arc;

use super::auth::Identities;
use super::session_limits::SessionLimits;
use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::request::Justification;

/// Shared, read-only state of the SSH server.
pub struct ServerContext {
    /// Users, their keys, trusted CAs.
    pub identities: Identities,
    /// Whether a reason is required and what it must look like.
    pub justification: Justification,
    /// The session pipeline.
    pub gateway: Arc<Gateway>,
    /// Listen address, limits, timeouts.
    pub server: ServerConfig,
    /// Open channels per connection and per user.
    pub sessions: Arc<SessionLimits>,
}
