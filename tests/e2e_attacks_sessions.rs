//! Attacks on sessions, reproduced with the real OpenSSH client against a
//! running gateway and simulator: an SSH document smuggled onto a shell
//! channel, certificates without permit-pty / permit-port-forwarding,
//! reasons with invisible characters or fake fields, recordings readable by
//! anyone, internal errors shown to users, stdin sent to a command that
//! has none, and forwards recorded with 0 bytes when the client drops.
//! Each test fails on the code before the fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::gateway::{Fixture, Options, keygen, output, sign};
use ssmgate::recording::{self, EventKind, SessionFilter, SessionKind, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: u64 = 30;

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        err(out)
    )
}

async fn store(fx: &Fixture) -> std::sync::Arc<dyn Store> {
    fx.gw.recorder.flush().await;
    recording::connect(&format!("sqlite://{}", fx.path("ssmgate.db").display()))
        .await
        .expect("store")
}

#[tokio::test]
async fn a_shell_channel_cannot_carry_the_ssh_document() {
    let fx = Fixture::start(false).await;
    for extra in [None, Some("true")] {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.args(["-T", "-o", "SetEnv=SSMGATE_DOCUMENT=AWS-StartSSHSession"]);
        if let Some(command) = extra {
            cmd.arg(command);
        }
        let out = output(cmd, SECS).await;
        assert_eq!(out.status.code(), Some(255), "{}", show(&out));
        assert!(
            err(&out).contains("document AWS-StartSSHSession opens a Port session")
                && err(&out).contains("ssh -J"),
            "{}",
            show(&out)
        );
    }
    // Nothing was started, so nothing unrecorded could flow.
    let store = store(&fx).await;
    let sessions = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list");
    assert!(sessions.is_empty(), "{sessions:?}");
}

#[tokio::test]
async fn certificate_extensions_are_honoured() {
    let fx = Fixture::start(false).await;
    // bob has no key of his own: only certificates let him in.
    for (name, args) in [("plain", vec![]), ("cleared", vec!["-O", "clear"])] {
        let key = fx.path(name);
        keygen(&key);
        let mut all = vec!["-n", "bob"];
        all.extend(args);
        sign(&fx.path("ca"), &fx.path(&format!("{name}.pub")), &all);
    }
    let tty = |name: &str| {
        let mut cmd = fx.ssh(name, "bob+web-1");
        cmd.args(["-tt", "tty"]);
        cmd
    };
    let out = output(tty("plain"), SECS).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "{}",
        show(&out)
    );
    // Without permit-pty the PTY is refused; OpenSSH then ends a session
    // that asked for one with -t (as it does against sshd).
    let out = output(tty("cleared"), SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "{}",
        show(&out)
    );
    assert!(
        err(&out).contains("PTY allocation request failed"),
        "{}",
        show(&out)
    );

    // OpenSSH shows why a channel open failed at log level INFO.
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(fx.common_opts("cleared").into_iter().map(|o| {
        if o == "LogLevel=ERROR" {
            "LogLevel=INFO".to_owned()
        } else {
            o
        }
    }))
    .args([
        "-p",
        &fx.gw.addr.port().to_string(),
        "-W",
        "db-1:80",
        "bob@127.0.0.1",
    ])
    .env("SSH_ASKPASS", &fx.askpass)
    .env("SSH_ASKPASS_REQUIRE", "force")
    .stdin(Stdio::null());
    let out = output(cmd, SECS).await;
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        err(&out).contains("does not permit port forwarding"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn reasons_cannot_hide_text_or_fake_the_gateways_fields() {
    let fx = Fixture::start(false).await;
    let ask = |name: &str, reason: &str| {
        let path = fx.path(name);
        std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' '{reason}'\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    };
    // Invisible formatting characters are refused at the prompt.
    let hidden = ask("ask-hidden", "INC-9 \u{202E}toor\u{200B}");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &hidden).arg("true");
    let out = output(cmd, SECS).await;
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));

    // In SetEnv too (the prompt answered empty).
    let empty = ask("ask-empty", "");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &empty)
        .arg("-o")
        .arg("SetEnv=SSMGATE_REASON=\"INC-9 \u{2066}x\u{2069}\"")
        .arg("true");
    let out = output(cmd, SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(err(&out).contains("invisible formatting"), "{}", show(&out));

    // A reason that ends like the gateway's fields stays the user's text.
    let fake = ask("ask-fake", "INC-9 fix\" session=evil user=root");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.env("SSH_ASKPASS", &fake).arg("true");
    let out = output(cmd, SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let store = store(&fx).await;
    let s = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a session");
    let aws = s.aws_reason.expect("aws reason");
    assert_eq!(
        aws,
        format!(
            "ssmgate user=alice session={} reason=\"INC-9 fix\\\" session\\=evil user\\=root\"",
            s.id
        )
    );
    assert_eq!(aws.matches(" user=").count(), 1, "{aws}");
}

#[tokio::test]
async fn recordings_are_readable_by_their_owner_only() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("true");
    assert_eq!(output(cmd, SECS).await.status.code(), Some(0));
    let mode = |name: &str| {
        std::fs::metadata(fx.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ssmgate.db"), 0o600);
    assert_eq!(mode("ssmgate.db-wal"), 0o600);
    assert_eq!(mode("spool"), 0o700);
    for entry in std::fs::read_dir(fx.path("spool")).expect("spool") {
        let entry = entry.expect("entry");
        let m = entry.metadata().expect("meta").permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{}", entry.path().display());
    }
}

#[tokio::test]
async fn internal_errors_reach_users_as_one_line_with_the_session_id() {
    let fx = Fixture::start_opts(Options {
        sim: "[faults]\nclose_after = 40\nrefuse_resume = true\n".into(),
        ..Options::default()
    })
    .await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("for i in $(seq 1 400); do echo line-$i; sleep 0.01; done");
    let out = output(cmd, 90).await;
    let text = err(&out);
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(text.contains("gateway session "), "{}", show(&out));
    for internal in [
        "ReconnectFailed",
        "ChannelClosed",
        "ssm:ResumeSession",
        "AccessDenied",
        "{",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {}", show(&out));
    }
}

#[tokio::test]
async fn stdin_sent_to_a_command_without_one_stops_it_and_is_not_recorded() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.args(["-T", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"secret-input\n").await.expect("write");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(SECS), child.wait_with_output())
        .await
        .expect("ends")
        .expect("output");
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(err(&out).contains("no standard input"), "{}", show(&out));

    let store = store(&fx).await;
    let mut session = None;
    for _ in 0..100 {
        session = store
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list")
            .into_iter()
            .find(|s| s.kind == SessionKind::Exec && !s.is_live());
        if session.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = session.expect("the exec session is recorded");
    let chunks = store.chunks(s.id).await.expect("chunks");
    let input: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.kind == EventKind::Input)
        .flat_map(|e| e.data.to_vec())
        .collect();
    assert!(input.is_empty(), "recorded input the target never got");
    assert_ne!(s.end.expect("ended").exit_status, Some(0));
}

/// A TCP echo server on loopback.
async fn echo_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn forwards_cut_by_a_dropped_connection_keep_their_byte_counts() {
    let echo = echo_server().await;
    let fx = Fixture::start_opts(Options {
        sim: format!(
            "[[instances]]\nid = \"i-0e00000000000ec01\"\nname = \"echo-1\"\nports = {{ \"80\" = \"{echo}\" }}\n"
        ),
        ..Options::default()
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut ssh = fx.ssh("alice", "alice");
    ssh.args(["-N", "-L", &format!("{port}:echo-1:80")]);
    let mut ssh = ssh.spawn().expect("ssh");
    let mut conns = Vec::new();
    for _ in 0..50 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            conns.push(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        conns.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("forward"),
        );
    }
    let block = vec![7u8; 1000];
    for c in &mut conns {
        c.write_all(&block).await.expect("write");
        let mut back = vec![0u8; block.len()];
        tokio::time::timeout(Duration::from_secs(SECS), c.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(back, block);
    }
    // The client dies with all four connections open.
    ssh.kill().await.expect("kill");
    let _ = ssh.wait().await;

    let store = store(&fx).await;
    let mut closes = Vec::new();
    for _ in 0..100 {
        fx.gw.recorder.flush().await;
        let sessions = store
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list");
        closes = Vec::new();
        for s in sessions.iter().filter(|s| !s.is_live()) {
            for c in store.chunks(s.id).await.expect("chunks") {
                for e in c.events {
                    if let EventKind::ConnClose {
                        bytes_in,
                        bytes_out,
                        ..
                    } = e.kind
                    {
                        closes.push((bytes_in, bytes_out));
                    }
                }
            }
        }
        if closes.len() == conns.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closes.len(), conns.len(), "{closes:?}");
    for (up, down) in closes {
        assert_eq!((up, down), (1000, 1000));
    }
}
