//! The target picker: `ssh alice@gateway` with no target lists the targets
//! and starts a shell on the one chosen. It reads a line from the channel
//! itself (the client's terminal is in raw mode), echoing as it goes.

use russh::{ChannelMsg, ChannelReadHalf};

use super::context::ServerContext;
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
    rd: &mut ChannelReadHalf,
    out: &mut SshOutput,
) -> Option<TargetSpec> {
    let targets = match openable_targets(ctx, user).await {
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
        let line = read_line(rd, out).await?;
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
pub async fn usage(ctx: &ServerContext, user: &Authenticated) -> String {
    let mut text = format!(
        "ssmgate: no target given. Use: ssh {}+TARGET@GATEWAY [command]   (TARGET is an instance id or name)\r\n",
        user.user.name
    );
    if let Ok(targets) = openable_targets(ctx, user).await {
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
) -> Result<Vec<Target>, crate::inventory::ResolveError> {
    ctx.gateway
        .openable_targets(Asker {
            user: user.user.clone(),
            auth: user.auth.clone(),
            reason: user.reason.clone(),
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

/// Reads one line with echo and backspace; `None` on Ctrl-C, Ctrl-D or close.
async fn read_line(rd: &mut ChannelReadHalf, out: &mut SshOutput) -> Option<String> {
    let mut line = String::new();
    loop {
        match rd.wait().await? {
            ChannelMsg::Data { data } => {
                for &b in data.iter() {
                    match b {
                        b'\r' | b'\n' => {
                            out.write("\r\n").await;
                            return Some(line);
                        }
                        0x03 | 0x04 => {
                            out.write("\r\n").await;
                            return None;
                        }
                        0x7f | 0x08 if line.pop().is_some() => {
                            out.write("\x08 \x08").await;
                        }
                        b if (b.is_ascii_graphic() || b == b' ') && line.len() < 256 => {
                            line.push(char::from(b));
                            out.write(&char::from(b).to_string()).await;
                        }
                        _ => {}
                    }
                }
            }
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => {}
        }
    }
}
