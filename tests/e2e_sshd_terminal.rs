//! An interactive shell through the sshd backend, typed into a real
//! terminal: the OpenSSH client runs inside tmux, which gives it a PTY, a
//! window to resize and keys to send. Checks that the window size reaches
//! the target's shell (at login and after a resize), that Ctrl-C
//! interrupts the running command and leaves the shell alive, that
//! `exit 5` ends `ssh` with status 5, and that the recording holds the
//! shell's output and the status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::gateway::*;
use ssmgate::recording::{EventKind, SessionKind};
use tokio::process::Command;

/// tmux on its own socket in the fixture's directory.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) {
        let mut cmd = self.cmd();
        cmd.args(args);
        let out = output(cmd, 20).await;
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
    }

    /// Types `text` and Enter.
    async fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]).await;
        self.run(&["send-keys", "-t", "t", "Enter"]).await;
    }

    /// The pane's text, scrollback included.
    async fn screen(&self) -> String {
        let mut cmd = self.cmd();
        cmd.args(["capture-pane", "-p", "-J", "-S", "-500", "-t", "t"]);
        String::from_utf8_lossy(&output(cmd, 20).await.stdout).into_owned()
    }

    /// Waits until a line of the pane is exactly `line` (so the typed
    /// command, which contains `$((…))`, never matches its own output).
    async fn wait_for_line(&self, line: &str) -> String {
        for _ in 0..300 {
            let screen = self.screen().await;
            if screen.lines().any(|l| l.trim_end() == line) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{line:?} never appeared; the pane:\n{}",
            self.screen().await
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// Single-quotes `s` for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test]
async fn interactive_shell_resize_ctrl_c_and_exit_status_in_a_real_terminal() {
    if which::missing("tmux") {
        eprintln!("tmux is not installed: skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    // The client command, run by tmux's shell; its status lands in a file.
    let status = fx.path("ssh-status");
    let mut line = vec![
        "env".to_owned(),
        format!("SSH_ASKPASS={}", fx.askpass.display()),
        "SSH_ASKPASS_REQUIRE=force".to_owned(),
        "ssh".to_owned(),
    ];
    line.extend(fx.common_opts("alice"));
    line.extend([
        "-tt".to_owned(),
        "-p".to_owned(),
        fx.gw.addr.port().to_string(),
        "alice+web-1@127.0.0.1".to_owned(),
    ]);
    let line: Vec<String> = line.iter().map(|a| quote(a)).collect();
    let script = format!(
        "{}; echo \"ssh-exit=$?\" > {}; sleep 600",
        line.join(" "),
        quote(&status.display().to_string())
    );
    let tmux = Tmux {
        socket: fx.path("tmux.sock"),
    };
    tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "91",
        "-y",
        "27",
        &script,
    ])
    .await;

    // Logged in: the shell answers, and sees the terminal's size.
    tmux.type_line("echo READY-$((40+2))").await;
    tmux.wait_for_line("READY-42").await;
    tmux.type_line("echo SIZE-$(stty size | tr ' ' x)").await;
    tmux.wait_for_line("SIZE-27x91").await;

    // A resize reaches the target's PTY.
    tmux.run(&["resize-window", "-t", "t", "-x", "103", "-y", "31"])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tmux.type_line("echo SIZE-$(stty size | tr ' ' x)").await;
    tmux.wait_for_line("SIZE-31x103").await;

    // Ctrl-C interrupts the command, not the session.
    tmux.type_line("sleep 120; echo NOT-INTERRUPTED").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    tmux.run(&["send-keys", "-t", "t", "C-c"]).await;
    tmux.type_line("echo AFTER-$((2+2))").await;
    let screen = tmux.wait_for_line("AFTER-4").await;
    assert!(
        !screen.lines().any(|l| l.trim_end() == "NOT-INTERRUPTED"),
        "{screen}"
    );

    // `exit 5` ends ssh with 5.
    tmux.type_line("exit 5").await;
    let mut got = String::new();
    for _ in 0..200 {
        got = std::fs::read_to_string(&status).unwrap_or_default();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.trim(), "ssh-exit=5", "{}", tmux.screen().await);

    // Recorded: a shell through sshd, its output and its status.
    let (store, list) = fx.sessions().await;
    let shell = list
        .iter()
        .find(|s| s.kind == SessionKind::Shell)
        .expect("the shell is recorded");
    assert_eq!(shell.backend.as_deref(), Some("sshd"));
    assert_eq!(shell.end.as_ref().and_then(|e| e.exit_status), Some(5));
    let out = recorded(store.as_ref(), shell.id, EventKind::Output).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("AFTER-4"), "{out}");
    assert!(out.contains("SIZE-31x103"), "{out}");
}

mod which {
    /// True when `program` is not on PATH.
    pub fn missing(program: &str) -> bool {
        !std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
