//! Access control with Cedar: who may open which session on which target,
//! and why. Every session request is decided by the policies in the
//! configured directory (`[policy] dir`, default `policies/`), deny by
//! default, before any AWS call.
//!
//! The model is `policies/schema.cedarschema` (validated strictly):
//!
//! - principal `User::"<login>"`, a member of `Group::"<group>"` for each of
//!   its config groups; attributes `name`, `auth_method` (`"publickey"` or
//!   `"certificate"`), `key_fingerprint`, and for certificates `key_id` and
//!   `ca_fingerprint`; the config's free-form `attributes` are the user's
//!   **tags** (`principal.getTag("team")`);
//! - actions `Action::"shell"`, `"exec"`, `"port_forward"`, `"ssh"`
//!   (ProxyJump / `-W`, i.e. port 22);
//! - resource `Target::"<instance id>"` with `id`, `name`, `platform`, …,
//!   and its AWS tags as Cedar **entity tags**
//!   (`resource.hasTag("env") && resource.getTag("env") == "prod"`);
//! - context: `document`, `parameters` (`portNumber` as a Long, `command`,
//!   `host`, each when present), `reason` (when given), `source_ip`
//!   (`ipaddr`), `time` (`datetime`, UTC), `hour` and `weekday` (UTC,
//!   derived from `time`), and `recording` (`"full"` or `"metadata"`).
//!
//! Policy ids are the `@id("…")` annotation, else `<file stem>#<n>` (n
//! counting from 1 in the file), so every diagnostic names a policy. On
//! deny the user sees the `@message("…")` of the forbid policies that
//! decided, or a default saying nothing permits the request.
//!
//! **Reasons.** When a request without a reason is denied, it is evaluated
//! again with the configured example reason (`[policy] example_reason`). If
//! that one is allowed, the request was denied only for lack of a reason:
//! [`Decision::needs_reason`] is set and the message says how to give one.
//! For the same reason [`PolicyEngine::permitted`] (the picker) lists a
//! target when a reason would open it.
//!
//! Submodules: [`loader`] (files → validated set), [`entities`] (request →
//! Cedar entities and context), [`engine`] (decisions), [`listing`] (the
//! picker's listing), [`reload`] (hot
//! reload), [`testfile`] (`ssmgate policy test`), [`explain`] (readable
//! output), [`time`] (UTC times), [`cli`] (the `ssmgate policy` commands).

pub mod cli;
pub mod engine;
pub mod entities;
pub mod error;
pub mod explain;
pub mod listing;
pub mod loader;
pub mod reload;
pub mod testfile;
pub mod time;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::SystemTime;

pub use engine::{DEFAULT_EXAMPLE_REASON, PolicyEngine, ReloadOutcome};

/// The schema shipped in `policies/schema.cedarschema`, for tools (the
/// demo) that write a policy directory of their own.
pub const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
pub use error::{PolicyError, Problem};

use crate::config::UserConfig;
use crate::gateway::request::Kind;
use crate::inventory::Target;
use crate::ssh::auth::AuthMethod;

/// Who asks: a configured user, as they authenticated on this connection.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The user's config entry (name, groups, attributes).
    pub user: &'a UserConfig,
    /// How they authenticated.
    pub auth: &'a AuthMethod,
}

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
    pub(crate) fn index(self) -> usize {
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

impl From<&Kind> for Action {
    /// `Port { port: 22 }` is [`Action::Ssh`]; other ports are
    /// [`Action::PortForward`].
    fn from(kind: &Kind) -> Self {
        match kind {
            Kind::Shell => Action::Shell,
            Kind::Exec { .. } => Action::Exec,
            Kind::Port { port: 22 } => Action::Ssh,
            Kind::Port { .. } => Action::PortForward,
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

/// The request's circumstances (becomes the Cedar context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextInput {
    /// The SSM document the session would use.
    pub document: String,
    /// Its parameters; `portNumber`, `command` and `host` reach policies
    /// (`portNumber` only when numeric), others are ignored.
    pub parameters: BTreeMap<String, String>,
    /// The user's justification; `None` (or blank) when none was given.
    pub reason: Option<String>,
    /// Where the SSH client connects from.
    pub source_ip: IpAddr,
    /// Now.
    pub now: SystemTime,
    /// Full for shell/exec, metadata-only for ssh/port forwards.
    pub recording: Recording,
}

impl ContextInput {
    /// The reason, if one was given and is not blank.
    pub fn given_reason(&self) -> Option<&str> {
        self.reason.as_deref().filter(|r| !r.trim().is_empty())
    }
}

/// One question for the policies: may this principal do this to this
/// target, now?
#[derive(Debug, Clone)]
pub struct AuthzRequest<'a> {
    /// Who.
    pub principal: Principal<'a>,
    /// Which kind of session.
    pub action: Action,
    /// Where, with its current attributes and tags.
    pub target: &'a Target,
    /// The circumstances.
    pub context: ContextInput,
}

/// The answer, with what a person (and the log) needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the session may be opened.
    pub allowed: bool,
    /// Ids of the policies that decided (the permits when allowed, the
    /// forbids when a forbid denied; empty when nothing permitted), in load
    /// order.
    pub determining_policies: Vec<String>,
    /// For the user: on deny, the deciding forbids' `@message`s, else a
    /// default ("no policy permits alice to open a shell on i-… (web-1)");
    /// on allow, which policies permitted it.
    pub message: String,
    /// Denied only for lack of a reason: the same request with the example
    /// reason is allowed.
    pub needs_reason: bool,
    /// Policies that failed to evaluate (they are skipped, as Cedar does).
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests;
