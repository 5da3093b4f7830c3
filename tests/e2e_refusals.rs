//! End-to-end refusals: the real `ssh` and `sftp` binaries against a gateway
//! and simulator in this process. Each test checks what the user sees — the
//! message on stderr and exit status 255 — for logins, keys and
//! certificates, targets, forwarding, reasons, documents and subsystems,
//! next to an accepted control case where one makes the refusal meaningful.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use common::gateway::{DB_1, DUP_A, DUP_B, Fixture, OFFLINE_1, WEB_1, keygen, output, sign};
use tokio::process::Command;

/// Seconds any one client command may take.
const SECS: u64 = 20;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// Exit status 255 and every `needle` on stderr.
fn assert_refused(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(255), "{}", show(out));
    let err = stderr(out);
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr lacks {needle:?}\n{}",
            show(out)
        );
    }
}

/// Exit status 0 and `expected` as the whole stdout.
fn assert_ran(out: &Output, expected: &str) {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    assert_eq!(stdout(out), expected, "{}", show(out));
}

/// An executable script in the fixture's directory.
fn script(fx: &Fixture, name: &str, body: &str) -> PathBuf {
    let path = fx.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Like [`Fixture::ssh`] but with `LogLevel=INFO`, so that the
/// keyboard-interactive instructions reach stderr.
fn ssh_info(fx: &Fixture, key: &str, login: &str) -> Command {
    let opts: Vec<String> = fx
        .common_opts(key)
        .into_iter()
        .map(|o| {
            if o == "LogLevel=ERROR" {
                "LogLevel=INFO".to_owned()
            } else {
                o
            }
        })
        .collect();
    let mut cmd = Command::new("ssh");
    cmd.args(opts)
        .args(["-p", &fx.gw.addr.port().to_string()])
        .arg(format!("{login}@127.0.0.1"))
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A fresh key pair `name` (not in anyone's authorized_keys) with a
/// certificate signed by `ca` with `args`; returns the certificate's path.
/// The certificate is moved away from `<name>-cert.pub`, where `ssh -i`
/// would pick it up by itself, so the bare key can be tried alone.
fn cert_key(fx: &Fixture, name: &str, ca: &str, args: &[&str]) -> PathBuf {
    keygen(&fx.path(name));
    sign(&fx.path(ca), &fx.path(&format!("{name}.pub")), args);
    let signed = fx.path(&format!("{name}-cert.pub"));
    let cert = fx.path(&format!("{name}.certificate"));
    std::fs::rename(&signed, &cert).expect("ssh-keygen wrote the certificate");
    cert
}

/// `ssh` as `login` with key `key` and its certificate `cert`.
fn ssh_cert(fx: &Fixture, key: &str, cert: &std::path::Path, login: &str) -> Command {
    let mut cmd = fx.ssh(key, login);
    cmd.arg("-o")
        .arg(format!("CertificateFile={}", cert.display()));
    cmd
}

// 1, 2: unknown user and wrong key.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_key_are_denied() {
    let fx = Fixture::start(false).await;

    let mut cmd = fx.ssh("alice", "nobody+web-1");
    cmd.arg("true");
    let out = output(cmd, SECS).await;
    assert_refused(&out, &["Permission denied"]);

    let mut cmd = fx.ssh("stranger", "alice+web-1");
    cmd.arg("true");
    let out = output(cmd, SECS).await;
    assert_refused(&out, &["Permission denied"]);

    // Control: alice's own key gets through.
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");
}

// 3: certificates.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_trusted_ca_is_accepted() {
    let fx = Fixture::start(false).await;

    // As asked: alice's own key with a certificate.
    sign(
        &fx.path("ca"),
        &fx.path("alice.pub"),
        &["-n", "alice", "-V", "+1h"],
    );
    let mut cmd = ssh_cert(&fx, "alice", &fx.path("alice-cert.pub"), "alice+web-1");
    cmd.args(["-o", "SetEnv=SSMGATE_REASON=INC-9", "echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");

    // A key nobody authorized: only the certificate can let it in.
    let cert = cert_key(&fx, "certonly", "ca", &["-n", "alice", "-V", "+1h"]);
    let mut cmd = ssh_cert(&fx, "certonly", &cert, "alice+web-1");
    cmd.args(["-o", "SetEnv=SSMGATE_REASON=INC-9", "echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");

    // The same key without its certificate is refused.
    let mut cmd = fx.ssh("certonly", "alice+web-1");
    cmd.arg("true");
    assert_refused(&output(cmd, SECS).await, &["Permission denied"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_refused() {
    let fx = Fixture::start(false).await;
    let cert = cert_key(
        &fx,
        "expired",
        "ca",
        &["-n", "alice", "-V", "20200101:20200102"],
    );
    let mut cmd = ssh_cert(&fx, "expired", &cert, "alice+web-1");
    cmd.arg("true");
    assert_refused(&output(cmd, SECS).await, &["Permission denied"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_principal_is_refused() {
    let fx = Fixture::start(false).await;
    let cert = cert_key(&fx, "forbob", "ca", &["-n", "bob", "-V", "+1h"]);
    let mut cmd = ssh_cert(&fx, "forbob", &cert, "alice+web-1");
    cmd.arg("true");
    assert_refused(&output(cmd, SECS).await, &["Permission denied"]);

    // Control: the same certificate is good for bob (who has no keys).
    let mut cmd = ssh_cert(&fx, "forbob", &cert, "bob+web-1");
    cmd.args(["echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_untrusted_ca_is_refused() {
    let fx = Fixture::start(false).await;
    let cert = cert_key(&fx, "rogue", "rogue_ca", &["-n", "alice", "-V", "+1h"]);
    let mut cmd = ssh_cert(&fx, "rogue", &cert, "alice+web-1");
    cmd.arg("true");
    assert_refused(&output(cmd, SECS).await, &["Permission denied"]);
}

// 4: targets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_offline_and_ambiguous_targets_are_refused() {
    let fx = Fixture::start(false).await;

    let mut cmd = fx.ssh("alice", "alice+nosuch");
    cmd.arg("true");
    assert_refused(
        &output(cmd, SECS).await,
        &["nosuch is not an SSM managed instance"],
    );

    let mut cmd = fx.ssh("alice", "alice+offline-1");
    cmd.arg("true");
    assert_refused(
        &output(cmd, SECS).await,
        &[
            OFFLINE_1,
            "(offline-1) is not connected to SSM",
            "ConnectionLost",
        ],
    );

    let mut cmd = fx.ssh("alice", "alice+twin");
    cmd.arg("true");
    assert_refused(
        &output(cmd, SECS).await,
        &[
            "twin matches 2 instances",
            DUP_A,
            DUP_B,
            "use the instance id",
        ],
    );

    // Control: one of the twins by id works.
    let mut cmd = fx.ssh("alice", &format!("alice+{DUP_A}"));
    cmd.args(["echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");
}

// 5: -W to anything that is not a managed instance.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_forward_to_non_instances_is_prohibited() {
    let fx = Fixture::start(false).await;
    for dest in ["127.0.0.1:22", "169.254.169.254:80", "localhost:22"] {
        // LogLevel=INFO (ssh's default): "open failed" is logged at INFO.
        let mut cmd = ssh_info(&fx, "alice", "alice");
        cmd.args(["-W", dest]);
        let out = output(cmd, SECS).await;
        let host = dest.split(':').next().unwrap();
        assert_refused(
            &out,
            &[
                "open failed: administratively prohibited",
                &format!("{host} is not an SSM managed instance"),
            ],
        );
    }
}

// 6: -R is refused but the command still runs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_is_refused_and_the_command_runs() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["-R", "0:localhost:22", "echo", "ran"]);
    let out = output(cmd, SECS).await;
    assert_ran(&out, "ran\n");
    assert!(
        stderr(&out).contains("remote forwarding (-R) is not allowed"),
        "{}",
        show(&out)
    );
}

// 7: the reason.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_reason_is_refused() {
    let fx = Fixture::start(false).await;
    let empty = script(&fx, "askpass-empty", "echo ''");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &empty).arg("true");
    assert_refused(
        &output(cmd, SECS).await,
        &[
            "access needs a reason",
            "a ticket id like INC-123",
            "SSMGATE_REASON",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_from_setenv_is_accepted() {
    let fx = Fixture::start(false).await;
    let empty = script(&fx, "askpass-empty", "echo ''");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &empty)
        .args(["-o", "SetEnv=SSMGATE_REASON=INC-7", "echo", "ok"]);
    assert_ran(&output(cmd, SECS).await, "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_setenv_reason_is_refused_with_the_rule() {
    let fx = Fixture::start(false).await;
    let empty = script(&fx, "askpass-empty", "echo ''");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &empty)
        .args(["-o", "SetEnv=SSMGATE_REASON=hello", "true"]);
    assert_refused(
        &output(cmd, SECS).await,
        &[
            "SSMGATE_REASON is not accepted",
            "the reason does not match the required format: a ticket id like INC-123",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_reason_three_times_fails_authentication() {
    let fx = Fixture::start(false).await;
    let count = fx.path("nope-count");
    let nope = script(
        &fx,
        "askpass-nope",
        &format!("echo x >> '{}'\necho nope", count.display()),
    );
    let mut cmd = ssh_info(&fx, "alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &nope).arg("true");
    let out = output(cmd, SECS).await;
    assert_refused(
        &out,
        &[
            "That reason is not accepted",
            "does not match the required format",
            "Permission denied",
        ],
    );
    let asked = std::fs::read_to_string(&count)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(asked >= 3, "askpass ran {asked} times\n{}", show(&out));
}

// 8: documents.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_outside_the_allow_list_is_refused() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["-o", "SetEnv=SSMGATE_DOCUMENT=AWS-RunShellScript", "true"]);
    assert_refused(
        &output(cmd, SECS).await,
        &["document AWS-RunShellScript is not allowed"],
    );
}

// 9: no target.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_target_prints_usage() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice");
    cmd.arg("true");
    let out = output(cmd, SECS).await;
    assert_refused(
        &out,
        &[
            "no target given",
            "ssh alice+TARGET@GATEWAY",
            WEB_1,
            DUP_A,
            DUP_B,
            "web-1",
        ],
    );
    assert!(
        !stderr(&out).contains(OFFLINE_1),
        "offline listed\n{}",
        show(&out)
    );
    // The policies forbid shells on db targets: the list shows only what
    // this user may open.
    assert!(
        !stderr(&out).contains(DB_1),
        "a target the policies forbid is listed\n{}",
        show(&out)
    );
}

// 10: sftp straight at the gateway.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_subsystem_points_to_jump() {
    let fx = Fixture::start(false).await;
    let mut cmd = Command::new("sftp");
    // `-b` makes sftp pass `-oBatchMode=yes` to ssh, which turns off
    // keyboard-interactive (the reason prompt); the first value of an
    // option wins, so say no first.
    cmd.args(["-o", "BatchMode=no"])
        .args(fx.common_opts("alice"))
        .args(["-P", &fx.gw.addr.port().to_string(), "-b", "/dev/null"])
        .arg("alice+web-1@127.0.0.1")
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    assert_refused(
        &output(cmd, SECS).await,
        &[
            "the sftp subsystem needs the sshd backend",
            "sftp -J alice@GATEWAY user@TARGET",
        ],
    );
}
