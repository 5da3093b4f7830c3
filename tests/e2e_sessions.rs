//! End to end with the real OpenSSH client: shells in a PTY, commands with
//! exit codes, `ssh -J` + scp/sftp to a real sshd behind the simulator, and
//! `ssh -L` with parallel connections — all through a running gateway that
//! talks to the simulator through the real aws-sdk-ssm client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::gateway::*;
use common::sha;
use ssm_sim::process::{PtyProcess, PtySpawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A real `ssh` running in a PTY we control, with what it printed so far.
struct Terminal {
    output: ssm_sim::process::PtyOutput,
    input: ssm_sim::process::PtyInput,
    control: ssm_sim::process::PtyControl,
    seen: Vec<u8>,
}

impl Terminal {
    fn spawn(fx: &Fixture, login: &str) -> Terminal {
        let mut argv = vec!["ssh".to_owned(), "-tt".to_owned()];
        argv.extend(fx.common_opts("alice"));
        argv.extend([
            "-p".into(),
            fx.gw.addr.port().to_string(),
            format!("{login}@127.0.0.1"),
        ]);
        let spec = PtySpawn {
            env: vec![
                ("SSH_ASKPASS".into(), fx.askpass.display().to_string()),
                ("SSH_ASKPASS_REQUIRE".into(), "force".into()),
            ],
            cols: 80,
            rows: 24,
            ..PtySpawn::new(argv)
        };
        let (output, input, control) = PtyProcess::spawn(&spec).expect("spawn ssh").split();
        Terminal {
            output,
            input,
            control,
            seen: Vec::new(),
        }
    }

    /// Reads until `needle` appears after position `from`; returns the new
    /// position after it.
    async fn expect(&mut self, needle: &str, from: usize) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.seen[from.min(self.seen.len())..], needle.as_bytes()) {
                return from + pos + needle.len();
            }
            let n = tokio::time::timeout_at(deadline, self.output.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&self.seen))
                })
                .expect("read");
            if n == 0 {
                panic!(
                    "EOF before {needle:?}: {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
    }

    async fn type_line(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).await.expect("type");
        self.input.write_all(b"\r").await.expect("enter");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn shell_in_a_pty_runs_commands_and_follows_resizes() {
    let fx = Fixture::start(false).await;
    let mut t = Terminal::spawn(&fx, "alice+web-1");
    let at = t.expect("connected to", 0).await;
    t.type_line("echo hello-$((6*7))").await;
    let at = t.expect("hello-42", at).await;
    t.type_line("stty size").await;
    let at = t.expect("24 80", at).await;
    t.control.resize(100, 40).expect("resize");
    // ssh forwards SIGWINCH as window-change, the gateway as Size at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.type_line("stty size").await;
    let at = t.expect("40 100", at).await;
    t.type_line("exit").await;
    let _ = at;
    let code = tokio::time::timeout(Duration::from_secs(20), t.control.wait())
        .await
        .expect("ssh exits")
        .expect("wait");
    assert_eq!(code, 0);
}

#[tokio::test]
async fn picker_lists_targets_and_opens_the_chosen_one() {
    let fx = Fixture::start(false).await;
    let mut t = Terminal::spawn(&fx, "alice");
    let at = t.expect("Choose a target", 0).await;
    let menu = String::from_utf8_lossy(&t.seen).into_owned();
    assert!(
        menu.contains("web-1") && menu.contains("twin") && !menu.contains("db-1"),
        "targets the policies permit, no others: {menu}"
    );
    assert!(
        !menu.contains("offline-1"),
        "offline targets are not offered: {menu}"
    );
    t.type_line("web-1").await;
    let at = t.expect("connected to", at).await;
    t.type_line("echo picked-$((40+2))").await;
    t.expect("picked-42", at).await;
    t.type_line("exit").await;
    let _ = tokio::time::timeout(Duration::from_secs(20), t.control.wait()).await;
}

#[tokio::test]
async fn exec_returns_stdout_stderr_apart_and_the_exit_code() {
    let fx = Fixture::start(false).await;
    for code in [0, 1, 42] {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.arg(format!("echo out-{code}; echo err-{code} >&2; exit {code}"));
        let out = output(cmd, 30).await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("out-{code}\n")
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("err-{code}\n")));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("err-"));
        assert_eq!(out.status.code(), Some(code), "{out:?}");
    }
}

#[tokio::test]
async fn a_command_with_a_terminal_returns_its_exit_status_through_ssm() {
    // AWS-StartInteractiveCommand reports no status; the gateway's wrapper
    // does, and its marker never reaches the client or the recording.
    let fx = Fixture::start(false).await;
    for (command, code) in [
        ("echo out; exit 0", 0),
        ("printf 'no newline'; exit 9", 9),
        // A look-alike marker printed by the command changes nothing.
        (r"printf '\033]7767;ssmgate-exit;4;0123\007'; exit 42", 42),
        ("kill -TERM $$", 143),
    ] {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.args(["-tt", command]);
        let out = output(cmd, 30).await;
        assert_eq!(out.status.code(), Some(code), "{command}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Only the command's own look-alike reaches the client, untouched.
        let want = usize::from(command.contains("0123"));
        assert_eq!(
            stdout.matches("\x1b]7767;").count(),
            want,
            "{command}: {stdout:?}"
        );
    }
    // Ctrl-C stops the command; the status says so (130, as sh reports).
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["-tt", "sleep 60; echo not-interrupted"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"\x03")
        .await
        .expect("ctrl-c");
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("interrupted in time")
        .expect("ssh");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-interrupted"));

    let (store, list) = fx.sessions().await;
    let nine = list
        .iter()
        .find(|s| {
            s.parameters
                .as_deref()
                .is_some_and(|p| p.contains("exit 9"))
        })
        .expect("recorded");
    assert_eq!(nine.end.as_ref().and_then(|e| e.exit_status), Some(9));
    // The record keeps the user's command, not the wrapper.
    assert!(
        !nine
            .parameters
            .as_deref()
            .unwrap_or_default()
            .contains("ssmgate-exit")
    );
    let out = recorded(
        store.as_ref(),
        nine.id,
        ssmgate::recording::EventKind::Output,
    )
    .await;
    assert!(
        out.ends_with(b"no newline"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn exec_by_instance_id_with_reason_from_setenv() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", &format!("alice+{WEB_1}"));
    cmd.env("SSH_ASKPASS_REQUIRE", "never").args([
        "-o",
        "SetEnv=SSMGATE_REASON=INC-1",
        "echo",
        "by-id",
    ]);
    let out = output(cmd, 30).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "by-id\n", "{out:?}");
    assert_eq!(out.status.code(), Some(0));
}

fn skip_without_sshd(fx: &Fixture) -> bool {
    if fx.sshd.is_none() {
        eprintln!("sshd is not installed (openssh-server): skipping");
        return true;
    }
    false
}

#[tokio::test]
async fn proxyjump_scp_32_mib_both_ways_and_sftp() {
    let fx = Fixture::start(true).await;
    if skip_without_sshd(&fx) {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let data = common::data(32 << 20, 9);
    let src = fx.path("upload.bin");
    std::fs::write(&src, &data).expect("write");
    let remote = fx.path("remote.bin");
    let back = fx.path("download.bin");
    let scp = |from: String, to: String| {
        let mut cmd = tokio::process::Command::new("scp");
        cmd.args(fx.jump_opts())
            .args(["-q", &from, &to])
            .env("SSH_ASKPASS", &fx.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(std::process::Stdio::null());
        cmd
    };
    let up = output(
        scp(
            src.display().to_string(),
            format!("{user}@web-1:{}", remote.display()),
        ),
        120,
    )
    .await;
    assert!(up.status.success(), "scp up: {up:?}");
    let down = output(
        scp(
            format!("{user}@web-1:{}", remote.display()),
            back.display().to_string(),
        ),
        120,
    )
    .await;
    assert!(down.status.success(), "scp down: {down:?}");
    assert_eq!(sha(&std::fs::read(&remote).expect("remote")), sha(&data));
    assert_eq!(sha(&std::fs::read(&back).expect("back")), sha(&data));

    let batch = fx.path("sftp.batch");
    let sftp_copy = fx.path("sftp-copy.bin");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nls -l {}\nrm {}\n",
            src.display(),
            sftp_copy.display(),
            sftp_copy.display(),
            remote.display()
        ),
    )
    .expect("batch");
    let mut cmd = tokio::process::Command::new("sftp");
    cmd.args(fx.jump_opts())
        .args(["-b", &batch.display().to_string(), &format!("{user}@web-1")])
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(std::process::Stdio::null());
    let out = output(cmd, 120).await;
    assert!(out.status.success(), "sftp: {out:?}");
    assert_eq!(
        sha(&std::fs::read(&sftp_copy).expect("sftp copy")),
        sha(&data)
    );
    assert!(!remote.exists(), "sftp rm ran");
}

#[tokio::test]
async fn local_forward_carries_parallel_http_connections() {
    let fx = Fixture::start(false).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut cmd = fx.ssh("alice", "alice");
    cmd.args(["-N", "-L", &format!("{port}:db-1:80")]);
    let mut child = cmd.spawn().expect("ssh -L");
    let addr = format!("127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ssh -L listens");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            c.write_all(b"GET / HTTP/1.1\r\nHost: db-1\r\n\r\n")
                .await
                .expect("send");
            let mut body = String::new();
            tokio::time::timeout(Duration::from_secs(20), c.read_to_string(&mut body))
                .await
                .expect("answer in time")
                .expect("read");
            body
        }));
    }
    for t in tasks {
        let body = t.await.expect("task");
        assert!(
            body.starts_with("HTTP/1.1 200") && body.contains("hello from db-1"),
            "{body}"
        );
    }
    let _ = child.kill().await;
}

#[tokio::test]
async fn a_script_on_stdin_runs_in_a_shell_and_ends_at_eof() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("-T")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"echo from-script-$((2*21))\n")
        .await
        .expect("write");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("ends at EOF")
        .expect("output");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from-script-42"),
        "{out:?}"
    );
}
