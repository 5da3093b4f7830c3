//! Run As: the OS user a shell or command session runs as, chosen by the
//! caller's `SSMSessionRunAs` session tag, checked the way the real agent
//! checks it.
//!
//! What the agent does, read in amazon-ssm-agent's
//! `agent/session/shell/shell_unix.go` (`StartCommandExecutor`) and
//! `agent/session/utility/utility_unix.go` (`DoesUserExist`), for
//! Standard_Stream, InteractiveCommands and NonInteractiveCommands (port
//! sessions have no Run As):
//! - an empty Run As user fails with `please set the RunAs default user`;
//! - an agent not running as root fails with `the agent must run as root
//!   to use RunAs`;
//! - the user must exist (`id <user>` succeeds), else `failed to start pty
//!   since RunAs user <user> does not exist`;
//! - the process then runs with that user's uid, gid and groups (from
//!   `id -u`, `id -g`, `id`), with `HOME=/home/<user>` added to the
//!   agent's environment (nothing else: `USER` stays the agent's);
//! - a failure is logged as `Unable to start command: <error>\n`; after
//!   2 s the plugin is marked failed with that text, and a
//!   NonInteractiveCommands session first gets it as StdErr (1 s later).
//!   The sim ends the session with it as `channel_closed`'s Output, as for
//!   its other start failures (how the service carries a failed plugin's
//!   output to the client is not visible in the agent's code).
//!
//! Where the sim differs: it behaves as if Run As support were enabled in
//! the Session Manager preferences, with the tag as the only source (no
//! IAM principal tags, no default Run As user: without the tag it runs as
//! itself, where the agent would use `ssm-user`). It checks the user's
//! existence before its own privileges, so a missing user is reported as
//! a root agent would report it; a sim that is not root runs a session as
//! its own user only, and refuses any other with the agent's non-root
//! message. Supplementary groups are not set: the process gets the user's
//! uid and primary gid and no other groups (the standard library has no
//! stable way to set them, and the crate forbids `unsafe`).

use tokio::process::Command;

use crate::process::RunAsUser;

/// The session tag that names the Run As user.
pub const RUN_AS_TAG: &str = "SSMSessionRunAs";

/// The user to run as, or the agent's reason for failing the session
/// (without the `Unable to start command: ` prefix). `None` in: run as
/// the simulator itself.
pub async fn resolve(requested: Option<&str>) -> Result<Option<RunAsUser>, String> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let name = requested.trim();
    if name.is_empty() {
        return Err("please set the RunAs default user".to_owned());
    }
    let missing = || format!("failed to start pty since RunAs user {name} does not exist");
    // Not a user name `id` would look up (and never an option to it).
    if name.starts_with('-') || name.contains(char::is_whitespace) {
        return Err(missing());
    }
    let (Some(uid), Some(gid)) = (id_number("-u", name).await, id_number("-g", name).await) else {
        return Err(missing());
    };
    let me = rustix::process::geteuid().as_raw();
    if me != 0 && me != uid {
        tracing::warn!(
            user = name,
            "Run As needs the simulator to run as root to switch to another user"
        );
        return Err("the agent must run as root to use RunAs".to_owned());
    }
    Ok(Some(RunAsUser {
        name: name.to_owned(),
        uid,
        gid,
    }))
}

/// `id <flag> <name>` as a number; `None` when there is no such user.
async fn id_number(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id")
        .arg(flag)
        .arg(name)
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The message a failed start is logged and reported with.
pub fn unable_to_start(reason: &str) -> String {
    format!("Unable to start command: {reason}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolving() {
        assert_eq!(resolve(None).await, Ok(None));
        assert_eq!(
            resolve(Some("  ")).await,
            Err("please set the RunAs default user".to_owned())
        );
        assert_eq!(
            resolve(Some("no-such-user-ssmgate-sim")).await,
            Err(
                "failed to start pty since RunAs user no-such-user-ssmgate-sim does not exist"
                    .to_owned()
            )
        );
        assert!(resolve(Some("-u")).await.is_err());
        // The simulator's own user is always allowed.
        let me = rustix::process::geteuid().as_raw();
        let name = String::from_utf8(
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let user = resolve(Some(name.trim())).await.unwrap().unwrap();
        assert_eq!(user.uid, me);
        assert_eq!(
            unable_to_start("x"),
            "Unable to start command: x\n".to_owned()
        );
    }
}
