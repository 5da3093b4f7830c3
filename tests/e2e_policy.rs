//! Cedar decisions end to end with the real `ssh`: for each kind of
//! session one request the fixture's policies allow and one they deny, with
//! the policy's own message on the client's screen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::gateway::*;

/// `ssh` as the fixture builds it, but logging at INFO so that OpenSSH
/// shows channel-open failures (its first `LogLevel` wins, so it must be
/// left out rather than overridden).
fn ssh_info(fx: &Fixture, login: &str) -> tokio::process::Command {
    let mut opts = fx.common_opts("alice");
    let at = opts
        .iter()
        .position(|o| o == "LogLevel=ERROR")
        .expect("LogLevel option");
    opts.drain(at - 1..=at);
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(opts)
        .args(["-o", "LogLevel=INFO", "-p", &fx.gw.addr.port().to_string()])
        .arg(format!("{login}@127.0.0.1"))
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn shell_and_exec_are_decided_by_policy() {
    let fx = Fixture::start(false).await;
    let mut ok = fx.ssh("alice", "alice+web-1");
    ok.arg("echo allowed");
    let out = output(ok, 30).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "allowed\n", "{out:?}");

    let sessions_before =
        fx.sim.registry.describe(false).len() + fx.sim.registry.describe(true).len();
    let mut denied = fx.ssh("alice", "alice+db-1");
    denied.arg("echo should-not-run");
    let out = output(denied, 30).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("access denied: db targets are reached by port forwarding only"),
        "{}",
        stderr(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    // Denied before any AWS call that starts anything: no session exists.
    let sessions_after =
        fx.sim.registry.describe(false).len() + fx.sim.registry.describe(true).len();
    assert_eq!(
        sessions_before, sessions_after,
        "a denied request started no SSM session"
    );

    let mut shell = fx.ssh("alice", "alice+db-1");
    shell.arg("-tt");
    let out = output(shell, 30).await;
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("db targets are reached by port forwarding only")
            || stderr(&out).contains("db targets are reached by port forwarding only"),
        "{out:?}"
    );
}

#[tokio::test]
async fn port_forwards_and_proxyjump_are_decided_by_policy() {
    let fx = Fixture::start(false).await;
    let mut denied = ssh_info(&fx, "alice");
    denied.args(["-W", "db-1:5432"]);
    let out = output(denied, 30).await;
    assert!(
        stderr(&out).contains("administratively prohibited")
            && stderr(&out).contains("only port 80 may be forwarded"),
        "{}",
        stderr(&out)
    );

    let mut jump = ssh_info(&fx, "alice");
    jump.args(["-W", "db-1:22"]);
    let out = output(jump, 30).await;
    assert!(
        stderr(&out).contains("ProxyJump is not allowed"),
        "{}",
        stderr(&out)
    );

    // Port 80 on the same target is allowed: an HTTP request goes through.
    let mut allowed = fx.ssh("alice", "alice");
    allowed
        .args(["-W", "db-1:80"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = allowed.spawn().expect("ssh -W");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: db-1\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stdout.read_to_string(&mut body),
    )
    .await;
    assert!(body.contains("hello from db-1"), "{body}");
    let _ = child.kill().await;
}
