//! End to end through the sshd backend: web-1's terminal sessions go
//! through its real sshd (AWS-StartSSHSession in the simulator, the
//! gateway logging in with a certificate it signs per session), with
//! plain `user+target@gw` logins from the real OpenSSH `ssh`, `scp`,
//! `sftp`, and `rsync`/`git` when installed. Checks stdin, EOF, exit
//! codes, file transfers by sha256, the recorded sftp file operations,
//! per-session certificates and host-key pinning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Output, Stdio};

use common::gateway::*;
use common::sha;
use ssmgate::recording::SessionKind;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// `program` (scp, sftp, rsync's ssh …) with the fixture's client options
/// and the reason prompt answered.
fn client(fx: &Fixture, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(fx.common_opts("alice"))
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` with `input` on its stdin.
async fn with_input(mut cmd: Command, input: Vec<u8>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.expect("write stdin");
        drop(stdin);
    });
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("in time")
    .expect("runs");
    writer.await.expect("writer");
    out
}

#[tokio::test]
async fn stdin_eof_exit_status_and_stderr_behave_as_with_direct_ssh() {
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    // 1 MiB through stdin, back through stdout, unchanged.
    let data = common::data(1 << 20, 3);
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("cat");
    let out = with_input(cmd, data.clone()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha(&out.stdout),
        sha(&data),
        "cat echoed {} bytes",
        out.stdout.len()
    );

    // Writing a file from stdin: EOF ends `cat`, the file is complete.
    let file = fx.path("from-stdin.bin");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg(format!("cat > {}", file.display()));
    let out = with_input(cmd, data.clone()).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sha(&std::fs::read(&file).expect("written")), sha(&data));

    // Exit status and stderr, without and with a terminal.
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("echo to-stderr >&2; exit 7");
    let out = output(cmd, 60).await;
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to-stderr"),
        "{out:?}"
    );
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["-tt", "exit 5"]);
    let out = output(cmd, 60).await;
    assert_eq!(out.status.code(), Some(5), "{out:?}");

    // The records say what carried them.
    let (_, list) = fx.sessions().await;
    let cat = list
        .iter()
        .find(|s| {
            s.parameters
                .as_deref()
                .is_some_and(|p| p.contains("\"cat\""))
        })
        .expect("the cat session is recorded");
    assert_eq!(cat.backend.as_deref(), Some("sshd"));
    assert!(cat.os_user.is_some());
    assert_eq!(cat.document.as_deref(), Some("AWS-StartSSHSession"));
    assert_eq!(cat.kind, SessionKind::Exec);
    assert_eq!(cat.end.as_ref().and_then(|e| e.exit_status), Some(0));
}

#[tokio::test]
async fn scp_both_modes_and_sftp_with_file_operations_recorded() {
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    let port = fx.gw.addr.port().to_string();
    let data = common::data(3 << 20, 11);
    let src = fx.path("upload.bin");
    std::fs::write(&src, &data).expect("write");
    let remote = |name: &str| format!("alice+web-1@127.0.0.1:{}", fx.path(name).display());

    // scp in its default (sftp) mode and in the legacy mode, both ways.
    for (mode, up, down) in [
        (None, "scp-up.bin", "scp-down.bin"),
        (Some("-O"), "scp-o-up.bin", "scp-o-down.bin"),
    ] {
        let mut cmd = client(&fx, "scp");
        cmd.args(["-q", "-P", &port]).args(mode);
        cmd.arg(&src).arg(remote(up));
        let out = output(cmd, 120).await;
        assert!(out.status.success(), "scp {mode:?} up: {out:?}");
        assert_eq!(sha(&std::fs::read(fx.path(up)).expect("up")), sha(&data));
        let mut cmd = client(&fx, "scp");
        cmd.args(["-q", "-P", &port]).args(mode);
        cmd.arg(remote(up)).arg(fx.path(down));
        let out = output(cmd, 120).await;
        assert!(out.status.success(), "scp {mode:?} down: {out:?}");
        assert_eq!(
            sha(&std::fs::read(fx.path(down)).expect("down")),
            sha(&data)
        );
    }

    // sftp: put, get, rename, mkdir, rmdir, remove.
    let put = fx.path("sftp-put.bin");
    let got = fx.path("sftp-got.bin");
    let renamed = fx.path("sftp-renamed.bin");
    let dir = fx.path("sftp-dir");
    let batch = fx.path("batch");
    std::fs::write(
        &batch,
        format!(
            "put {src} {put}\nget {put} {got}\nrename {put} {renamed}\nmkdir {dir}\nrmdir {dir}\nrm {renamed}\n",
            src = src.display(),
            put = put.display(),
            got = got.display(),
            renamed = renamed.display(),
            dir = dir.display(),
        ),
    )
    .expect("batch");
    // Commands on stdin rather than `-b`: `-b` sets BatchMode, which turns
    // off the login prompt this test answers its reason at (scripts pass
    // SetEnv or use a grant instead: tests/e2e_scripted.rs).
    let mut cmd = client(&fx, "sftp");
    cmd.args(["-P", &port]).arg("alice+web-1@127.0.0.1");
    let out = with_input(cmd, std::fs::read(&batch).expect("batch")).await;
    assert!(out.status.success(), "sftp: {out:?}");
    assert_eq!(sha(&std::fs::read(&got).expect("got")), sha(&data));
    assert!(!renamed.exists() && !put.exists() && !dir.exists());

    // The sftp session is recorded as file operations with the hashes.
    let (store, list) = fx.sessions().await;
    let sftp = list
        .iter()
        .filter(|s| {
            s.parameters
                .as_deref()
                .is_some_and(|p| p.contains("\"subsystem\":[\"sftp\"]"))
        })
        .find(|s| {
            s.started_at
                == list
                    .iter()
                    .filter(|t| t.parameters == s.parameters)
                    .map(|t| t.started_at)
                    .max()
                    .expect("one")
        })
        .expect("the sftp session is recorded");
    let ops = recorded_ops(store.as_ref(), sftp.id).await;
    let want = sha(&data);
    let put_path = put.display().to_string();
    let closes: Vec<&serde_json::Value> = ops.iter().filter(|o| o["op"] == "close").collect();
    assert!(
        closes
            .iter()
            .any(|o| o["path"] == put_path.as_str() && o["written_sha256"] == want.as_str()),
        "no close of {put_path} with the upload's sha256 in {ops:#?}"
    );
    assert!(
        closes
            .iter()
            .any(|o| o["path"] == put_path.as_str() && o["read_sha256"] == want.as_str()),
        "no close of {put_path} with the download's sha256 in {ops:#?}"
    );
    for op in ["rename", "mkdir", "rmdir", "remove"] {
        assert!(ops.iter().any(|o| o["op"] == op), "no {op} in {ops:#?}");
    }
    // The packets are counted both ways, though only operations are kept.
    let end = sftp.end.as_ref().expect("ended");
    let len = data.len() as u64;
    assert!(
        end.bytes_in > len && end.bytes_out > len,
        "{} in, {} out for {len} bytes each way",
        end.bytes_in,
        end.bytes_out
    );
}

#[tokio::test]
async fn rsync_and_git_work_gateway_style() {
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    let ssh = format!(
        "ssh {} -p {}",
        fx.common_opts("alice").join(" "),
        fx.gw.addr.port()
    );
    let data = common::data(2 << 20, 5);
    let src = fx.path("rsync-src.bin");
    std::fs::write(&src, &data).expect("write");
    if common::installed("rsync") {
        let dest = fx.path("rsync-dest.bin");
        let mut cmd = Command::new("rsync");
        cmd.args(["-a", "-e", &ssh])
            .arg(&src)
            .arg(format!("alice+web-1@127.0.0.1:{}", dest.display()))
            .env("SSH_ASKPASS", &fx.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null());
        let out = output(cmd, 120).await;
        assert!(out.status.success(), "rsync: {out:?}");
        assert_eq!(sha(&std::fs::read(&dest).expect("dest")), sha(&data));
    } else {
        eprintln!("rsync is not installed: skipping its part");
    }
    if common::installed("git") {
        let origin = fx.path("origin.git");
        let work = fx.path("work");
        // tokio's Command: the gateway runs on this test's runtime.
        let git = async |args: &[&str], dir: Option<&std::path::Path>| {
            let mut cmd = Command::new("git");
            if let Some(d) = dir {
                cmd.current_dir(d);
            }
            cmd.args(args)
                .env("GIT_SSH_COMMAND", &ssh)
                .env("SSH_ASKPASS", &fx.askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .stdin(Stdio::null());
            output(cmd, 120).await
        };
        let out = git(
            &["init", "-q", "--bare", &origin.display().to_string()],
            None,
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let url = format!("alice+web-1@127.0.0.1:{}", origin.display());
        let out = git(&["clone", "-q", &url, &work.display().to_string()], None).await;
        assert!(out.status.success(), "git clone: {out:?}");
        std::fs::write(work.join("file.bin"), &data).expect("write");
        assert!(
            git(&["add", "file.bin"], Some(&work))
                .await
                .status
                .success()
        );
        assert!(
            git(&["commit", "-q", "-m", "x"], Some(&work))
                .await
                .status
                .success()
        );
        let out = git(&["push", "-q", "origin", "HEAD"], Some(&work)).await;
        assert!(out.status.success(), "git push: {out:?}");
        let again = fx.path("again");
        let out = git(&["clone", "-q", &url, &again.display().to_string()], None).await;
        assert!(out.status.success(), "git clone again: {out:?}");
        assert_eq!(
            sha(&std::fs::read(again.join("file.bin")).expect("cloned")),
            sha(&data)
        );
    }
}

#[tokio::test]
async fn every_session_gets_its_own_certificate_and_host_keys_are_pinned() {
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    for _ in 0..2 {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.arg("true");
        let out = output(cmd, 60).await;
        assert!(out.status.success(), "{out:?}");
    }
    // sshd logged two certificate logins, each with its own serial and
    // the gateway user and session in the key id.
    let log = std::fs::read_to_string(fx.path("sshd.log")).expect("sshd log");
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Accepted publickey") && l.contains("ID ssmgate:alice:"))
        .collect();
    assert_eq!(logins.len(), 2, "{log}");
    fn serial(l: &str) -> Option<&str> {
        l.split("(serial ").nth(1).and_then(|s| s.split(')').next())
    }
    assert_ne!(serial(logins[0]), serial(logins[1]), "{log}");

    // The host key was pinned at the first connection; a different pin
    // (as after a man in the middle or a rebuilt instance) is refused.
    let url = format!("sqlite://{}", fx.path("ssmgate.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let pinned: String = sqlx::query_scalar("SELECT public_key FROM host_keys WHERE target_id = ?")
        .bind(WEB_1)
        .fetch_one(&pool)
        .await
        .expect("pinned");
    let sshd_key = fx.sshd.as_ref().expect("sshd").host_key.clone();
    assert!(sshd_key.starts_with(&pinned), "{pinned} vs {sshd_key}");
    let other = std::fs::read_to_string(fx.path("bob.pub")).expect("another key");
    let other: String = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    sqlx::query("UPDATE host_keys SET public_key = ? WHERE target_id = ?")
        .bind(&other)
        .bind(WEB_1)
        .execute(&pool)
        .await
        .expect("tamper");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("echo should-not-run");
    let out = output(cmd, 60).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    assert!(
        stderr.contains("host key") && stderr.contains("changed"),
        "{stderr}"
    );
    let audit = fx.audit_rows().await;
    assert!(
        audit
            .iter()
            .any(|(kind, user, _)| kind == "host_key_refused" && user == "alice"),
        "{audit:?}"
    );
}

/// Ansible with its default settings (ssh connection plugin, sftp/scp
/// transfers, ControlMaster), the reason passed with SetEnv.
#[tokio::test]
async fn ansible_ping_command_copy_and_exit_status() {
    if !common::installed("ansible") {
        eprintln!("ansible is not installed (pip install ansible-core): skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(true).await else {
        return;
    };
    let inventory = fx.path("inventory.ini");
    std::fs::write(
        &inventory,
        format!(
            "web1 ansible_host=127.0.0.1 ansible_port={port} ansible_user=alice+web-1 \
             ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3 \
             ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o IdentitiesOnly=yes -o SetEnv=SSMGATE_REASON=INC-7'\n",
            port = fx.gw.addr.port(),
            key = fx.path("alice").display(),
        ),
    )
    .expect("inventory");
    let ansible = |module: &str, args: &str| {
        let mut cmd = Command::new("ansible");
        cmd.args(["web1", "-i"])
            .arg(&inventory)
            .args(["-o", "-m", module]);
        if !args.is_empty() {
            cmd.args(["-a", args]);
        }
        cmd.env("ANSIBLE_LOCAL_TEMP", fx.path("ansible-local"))
            .env("ANSIBLE_CONTROL_PATH_DIR", fx.path("ansible-cp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let out = output(ansible("ping", ""), 180).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("\"pong\""), "{out:?}");

    let out = output(ansible("command", "uname -s"), 180).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("Linux"), "{out:?}");

    let data = common::data(300 << 10, 21);
    let src = fx.path("ansible-src.bin");
    let dest = fx.path("ansible-dest.bin");
    std::fs::write(&src, &data).expect("write");
    let out = output(
        ansible(
            "copy",
            &format!("src={} dest={}", src.display(), dest.display()),
        ),
        180,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sha(&std::fs::read(&dest).expect("copied")), sha(&data));

    let out = output(ansible("shell", "exit 3"), 180).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(text.contains("rc=3"), "{text}");
}
