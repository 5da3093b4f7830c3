//! `ssh alice@gateway reason …`: the user's own reason grants, made,
//! listed and revoked over a plain exec channel (no target), so that any
//! SSH client, script or CI job can: see [`crate::request::grant`] for the
//! grammar and [`crate::gateway::grants`] for where they are kept.

use chrono::Utc;

use super::context::ServerContext;
use super::session_channel::{Authenticated, SshOutput};
use crate::gateway::grants::GrantError;
use crate::gateway::terminal::{ClientOutput, Exit};
use crate::recording::GrantRow;
use crate::request::GrantCommand;
use crate::request::grant::{GRANT_USAGE, format_duration};

/// Runs one `reason` command and ends the channel with its status: 0 done,
/// 1 refused or failed, 2 malformed.
pub async fn run(
    ctx: &ServerContext,
    user: &Authenticated,
    command: Result<GrantCommand, String>,
    out: &mut SshOutput,
) {
    let (text, status) = answer(ctx, user, command).await;
    if status == 0 {
        out.write(&text).await;
    } else {
        out.stderr(bytes::Bytes::from(text)).await;
    }
    out.finish(Some(Exit::Status(status))).await;
}

async fn answer(
    ctx: &ServerContext,
    user: &Authenticated,
    command: Result<GrantCommand, String>,
) -> (String, u32) {
    let command = match command {
        Ok(c) => c,
        Err(e) => return (crlf(&format!("ssmgate: reason: {e}\n{GRANT_USAGE}")), 2),
    };
    let Some(grants) = ctx.gateway.grants() else {
        return (
            "ssmgate: reason grants are not available on this gateway\r\n".into(),
            1,
        );
    };
    let name = &user.user.name;
    let source = user.source.ip();
    match command {
        GrantCommand::Help => (crlf(GRANT_USAGE), 0),
        GrantCommand::List => match grants.live(name).await {
            Ok(live) => (crlf(&listing(&live)), 0),
            Err(e) => refused(&GrantError::Store(e)),
        },
        GrantCommand::Grant {
            text,
            duration,
            target,
        } => match grants
            .grant(name, source, &text, duration, target.as_ref())
            .await
        {
            Ok(g) => (crlf(&granted(&g)), 0),
            Err(e) => refused(&e),
        },
        GrantCommand::Revoke { id } => match grants.revoke(name, source, id.as_deref()).await {
            Ok(ids) if ids.is_empty() => ("You had no live reason grant to revoke.\r\n".into(), 0),
            Ok(ids) => (
                format!(
                    "Revoked {} reason grant{}: {}\r\n",
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    ids.iter().map(short_id).collect::<Vec<_>>().join(", ")
                ),
                0,
            ),
            Err(e) => refused(&e),
        },
    }
}

fn refused(e: &GrantError) -> (String, u32) {
    if let GrantError::Store(cause) = e {
        tracing::warn!(error = %cause, "reason grants: the database could not be reached");
    }
    (format!("ssmgate: reason: {e}\r\n"), 1)
}

/// The first 8 characters of a grant id (enough to revoke it).
fn short_id(id: &uuid::Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

fn granted(g: &GrantRow) -> String {
    let left = (g.expires_at - g.created_at).to_std().unwrap_or_default();
    format!(
        "Reason granted until {} ({}), for {}: \"{}\"  [id {}]\n\
         Your connections without a reason of their own use it: ssh -J, -W, -L, -D and commands without SetEnv.\n\
         List: ssh {user}@GATEWAY reason    End it: ssh {user}@GATEWAY reason --revoke {}\n",
        g.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
        format_duration(left),
        targets(g),
        g.reason,
        short_id(&g.id),
        short_id(&g.id),
        user = g.user,
    )
}

fn targets(g: &GrantRow) -> String {
    match &g.target_pattern {
        Some(p) => format!("targets {p}"),
        None => "every target".into(),
    }
}

fn listing(live: &[GrantRow]) -> String {
    if live.is_empty() {
        return "You have no live reason grants.\n".into();
    }
    let now = Utc::now();
    let mut out = format!(
        "{:<8}  {:<23}  {:>7}  {:<16}  REASON\n",
        "ID", "EXPIRES", "LEFT", "TARGETS"
    );
    for g in live {
        let left = (g.expires_at - now).to_std().unwrap_or_default();
        out.push_str(&format!(
            "{:<8}  {:<23}  {:>7}  {:<16}  {}\n",
            short_id(&g.id),
            g.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            format_duration(left),
            g.target_pattern.as_deref().unwrap_or("*"),
            g.reason
        ));
    }
    out
}

/// `\n` → `\r\n` (the channel may have a terminal in raw mode).
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}
