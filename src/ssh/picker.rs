//! The target picker: `ssh alice@gateway` with no target lists the targets
//! and starts a shell on the one chosen. It reads a line from the channel
//! itself (the client's terminal is in raw mode), echoing as it goes.

use russh::ChannelReadHalf;

use super::context::ServerContext;
use super::line::{Typed, read_line};
use super::reasons::Chosen;
use super::session_channel::{Authenticated, SshOutput};
use crate::gateway::targets::Asker;
use crate::inventory::Target;
use crate::request::TargetSpec;

/// Most targets listed in the usage text of a non-interactive login.
const USAGE_LIST: usize = 20;

/// Shows the menu and reads a choice; `None` when the user gives up or the
/// channel closes (after telling them why).
pub async fn pick(
    ctx: &ServerContext,
    user: &Authenticated,
    reason: &Chosen,
    rd: &mut ChannelReadHalf,
    out: &mut SshOutput,
    typeahead: &mut Vec<u8>,
) -> Option<TargetSpec> {
    let targets = match openable_targets(ctx, user, reason).await {
        Ok(t) if t.is_empty() => {
            out.write("ssmgate: there is no online target you may open.\r\n")
                .await;
            return None;
        }
        Ok(t) => t,
        Err(e) => {
            out.write(&format!("ssmgate: cannot list targets: {e}\r\n"))
                .await;
            return None;
        }
    };
    let mut menu = String::from("Targets:\r\n");
    for (i, t) in targets.iter().enumerate() {
        menu.push_str(&format!("  {:>3}) {}\r\n", i + 1, describe(t)));
    }
    out.write(&menu).await;
    loop {
        out.write(&format!(
            "Choose a target [1-{}], a name, or q to quit: ",
            targets.len()
        ))
        .await;
        let Typed::Line(line) = read_line(rd, out, typeahead).await else {
            return None;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "q" {
            return None;
        }
        if let Ok(n) = line.parse::<usize>()
            && let Some(t) = n.checked_sub(1).and_then(|i| targets.get(i))
        {
            return TargetSpec::parse(&t.id).ok();
        }
        if let Some(t) = targets.iter().find(|t| {
            t.id == line
                || t.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(line))
        }) {
            return TargetSpec::parse(&t.id).ok();
        }
        out.write("No such target.\r\n").await;
    }
}

/// The message for a login without a target where no menu can be shown.
pub async fn usage(ctx: &ServerContext, user: &Authenticated, reason: &Chosen) -> String {
    let mut text = format!(
        "ssmgate: no target given. Use: ssh {}+TARGET@GATEWAY [command]   (TARGET is an instance id or name)\r\n",
        user.user.name
    );
    if let Ok(targets) = openable_targets(ctx, user, reason).await {
        text.push_str("Targets:\r\n");
        for t in targets.iter().take(USAGE_LIST) {
            text.push_str(&format!("  {}\r\n", describe(t)));
        }
        if targets.len() > USAGE_LIST {
            text.push_str(&format!("  … and {} more\r\n", targets.len() - USAGE_LIST));
        }
    }
    text
}

/// Online targets on which the policies let this user open a shell.
async fn openable_targets(
    ctx: &ServerContext,
    user: &Authenticated,
    reason: &Chosen,
) -> Result<Vec<Target>, crate::inventory::ResolveError> {
    ctx.gateway
        .openable_targets(Asker {
            user: user.user.clone(),
            auth: user.auth.clone(),
            reason: reason.reason.clone(),
            reason_source: reason.source,
            source: user.source.ip(),
        })
        .await
}

fn describe(t: &Target) -> String {
    let name = t.name.as_deref().unwrap_or("-");
    let mut line = format!("{:<20} {:<22} {}", name, t.id, t.platform_name);
    if t.account != crate::inventory::DEFAULT_ACCOUNT {
        line.push_str(&format!("  ({}/{})", t.account, t.region));
    }
    line
}
