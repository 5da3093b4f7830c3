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
use std::net::IpAddr;
use std::time::SystemTime;

pub use crate::config::DEFAULT_EXAMPLE_REASON;
pub use engine::{PolicyEngine, ReloadOutcome};

/// The schema shipped in `policies/schema.cedarschema`, for tools (the
/// demo) that write a policy directory of their own.
pub const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
pub use error::{PolicyError, Problem};

use crate::config::UserConfig;
use crate::inventory::Target;
use crate::request::AuthMethod;

/// Who asks: a configured user, as they authenticated on this connection.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The user's config entry (name, groups, attributes).
    pub user: &'a UserConfig,
    /// How they authenticated.
    pub auth: &'a AuthMethod,
}

pub use crate::request::{Action, Recording};

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
    /// What carries the session: `"ssm"` (SSM documents) or `"sshd"` (the
    /// target's own sshd).
    pub backend: &'static str,
    /// The OS user it logs in as, when the gateway chooses it (sshd).
    pub os_user: Option<String>,
    /// Where the reason came from: `"prompt"`, `"env"`, `"grant"` or
    /// `"none"` ([`crate::request::ReasonSource`]).
    pub reason_source: &'static str,
}

/// The names `context.reason_source` takes.
pub const REASON_SOURCES: [&str; 4] = ["prompt", "env", "grant", "none"];

/// The `reason_source` of a what-if question (`policy explain`, a policy
/// test case): as given, else `"prompt"` with a reason and `"none"`
/// without.
pub fn asked_reason_source(
    given: Option<&str>,
    reason: Option<&str>,
) -> Result<&'static str, String> {
    match given {
        Some(name) => REASON_SOURCES
            .iter()
            .find(|s| **s == name)
            .copied()
            .ok_or_else(|| format!("reason_source must be one of {}", REASON_SOURCES.join(", "))),
        None if reason.is_some_and(|r| !r.trim().is_empty()) => Ok("prompt"),
        None => Ok("none"),
    }
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
    /// When allowed: the OS user the permitting policies' `@run_as`
    /// names (they must agree).
    pub run_as: Option<String>,
}

#[cfg(test)]
mod tests;
