//! The reason of one channel, from wherever the user gave it, in this
//! order: the login's keyboard-interactive prompt (clients that ask for it
//! before their key), `SetEnv SSMGATE_REASON` (session channels), a live
//! reason grant covering the target; then, for a session with a terminal,
//! the prompt on that terminal (see `session_channel`). When a reason is
//! required and none came, the refusal says what works for that channel.
//!
//! Authentication never waits for a reason: a key (or certificate) alone
//! logs in, so that `BatchMode`, Ansible, paramiko and CI jobs can, and no
//! channel opens without the reason the rule requires.

use crate::request::grant::reason_advice;
use crate::request::{Action, Reason, ReasonSource, TargetSpec};

use super::context::ServerContext;
use super::session_channel::Authenticated;

/// The reason a channel goes with, and where it came from.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The reason; `None` when none was given (and none is required).
    pub reason: Option<Reason>,
    /// Where it came from.
    pub source: ReasonSource,
}

impl Chosen {
    /// No reason.
    pub fn none() -> Self {
        Chosen {
            reason: None,
            source: ReasonSource::None,
        }
    }

    fn some(reason: Reason, source: ReasonSource) -> Self {
        Chosen {
            reason: Some(reason),
            source,
        }
    }
}

/// The reason a channel brings with it or finds in a grant: `Ok(None)`
/// when there is none (the caller prompts, refuses or goes on without),
/// `Err` with the text for the user when what was given is refused or the
/// grants cannot be read while a reason is required.
pub async fn given(
    ctx: &ServerContext,
    user: &Authenticated,
    from_env: Option<&str>,
    target: Option<&TargetSpec>,
) -> Result<Option<Chosen>, String> {
    if let Some(r) = &user.reason {
        return Ok(Some(Chosen::some(r.clone(), ReasonSource::Prompt)));
    }
    if let Some(text) = from_env {
        return match ctx.justification.check(text) {
            Ok(r) if r.as_str().is_empty() => Ok(None),
            Ok(r) => Ok(Some(Chosen::some(r, ReasonSource::Env))),
            Err(rule) => Err(format!("ssmgate: SSMGATE_REASON is not accepted: {rule}")),
        };
    }
    granted(ctx, user, target).await
}

/// A live grant of the user's covering `target` (matched against the
/// target as written, and the id and name it resolves to).
pub async fn granted(
    ctx: &ServerContext,
    user: &Authenticated,
    target: Option<&TargetSpec>,
) -> Result<Option<Chosen>, String> {
    let Some(grants) = ctx.gateway.grants() else {
        return Ok(None);
    };
    match grants.live(&user.user.name).await {
        Ok(live) => {
            // Resolving the target (an SSM lookup when not cached) only
            // when a grant's pattern needs its id and name.
            let names = match target {
                Some(t) if live.iter().any(|g| g.target_pattern.is_some()) => {
                    ctx.gateway.target_names(t).await
                }
                _ => Vec::new(),
            };
            Ok(grants
                .choose(&live, &names)
                .map(|g| Chosen::some(g.reason, g.source)))
        }
        Err(e) => {
            tracing::warn!(user = %user.user.name, error = %e, "reason grants could not be read");
            if ctx.justification.required {
                Err(
                    "ssmgate: your reason grants could not be read (the database could not be reached); try again in a moment"
                        .to_owned(),
                )
            } else {
                Ok(None)
            }
        }
    }
}

/// The refusal of a channel for `action` that needs a reason and has
/// none. ASCII: forwards carry it in a protocol message.
pub fn missing(ctx: &ServerContext, user: &Authenticated, action: Action) -> String {
    format!(
        "ssmgate: access needs a reason ({}). To give one, {}",
        ctx.justification.hint,
        reason_advice(action, &user.user.name)
    )
}
