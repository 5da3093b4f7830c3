//! Attacks on the SSH front door, reproduced against a running gateway and
//! simulator: switching users in the middle of authentication (with a real
//! SSH client library, russh's client, since OpenSSH never does it), silent
//! connections that try to lock everybody out, one connection or one user
//! opening sessions without end, and log lines forged through forward hosts
//! and login names. Each test fails on the code before the fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::gateway::{Fixture, Options, output};
use russh::ChannelMsg;
use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::io::AsyncReadExt;

/// A client that trusts any host key (the fixture's is fresh each run).
struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn connect(fx: &Fixture) -> client::Handle<Trusting> {
    let config = Arc::new(client::Config::default());
    client::connect(config, fx.gw.addr, Trusting)
        .await
        .expect("connect")
}

fn key(fx: &Fixture, name: &str) -> PrivateKeyWithHashAlg {
    let k: PrivateKey = russh::keys::load_secret_key(fx.path(name), None).expect("key");
    PrivateKeyWithHashAlg::new(Arc::new(k), None)
}

/// True when the connection is gone: the next request fails or the
/// server reports nothing but a closed session.
async fn disconnected(h: &mut client::Handle<Trusting>) -> bool {
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.is_closed()
        || h.authenticate_none("alice+web-1").await.is_err()
        || h.channel_open_session().await.is_err()
}

/// Opens a session channel and returns what the gateway wrote on its
/// stderr before closing it with status 255 ("" when it was not refused).
async fn refusal(h: &client::Handle<Trusting>) -> String {
    let mut ch = h.channel_open_session().await.expect("open");
    let mut text = Vec::new();
    let mut status = None;
    let wait = async {
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::ExtendedData { data, .. } => text.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .is_err()
    {
        return String::new();
    }
    assert_eq!(status, Some(255));
    String::from_utf8_lossy(&text).into_owned()
}

/// Logs in as `user` the way a person who opted into the login prompt
/// does: the reason first, then the key. True when authenticated.
async fn log_in(h: &mut client::Handle<Trusting>, fx: &Fixture, user: &str) -> bool {
    answer_reason(h, user).await.expect("kbd")
        && matches!(
            h.authenticate_publickey(user, key(fx, "alice")).await,
            Ok(AuthResult::Success)
        )
}

/// Answers the reason prompt (asked before the key) as `user`; true when
/// it was taken (partial success) or authenticated.
async fn answer_reason(h: &mut client::Handle<Trusting>, user: &str) -> Result<bool, russh::Error> {
    let mut r = h
        .authenticate_keyboard_interactive_start(user, None)
        .await?;
    for _ in 0..3 {
        match r {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            // The reason was taken; the key must follow.
            KeyboardInteractiveAuthResponse::Failure {
                partial_success, ..
            } => return Ok(partial_success),
            KeyboardInteractiveAuthResponse::InfoRequest { .. } => {
                r = h
                    .authenticate_keyboard_interactive_respond(vec!["INC-42 attack test".into()])
                    .await?;
            }
        }
    }
    Ok(false)
}

#[tokio::test]
async fn switching_users_during_authentication_ends_the_connection() {
    let fx = Fixture::start(false).await;

    // Control: the same name all the way authenticates.
    let mut h = connect(&fx).await;
    assert!(log_in(&mut h, &fx, "alice+web-1").await);

    // 1. The reason as alice (partial success) → bob's own key as bob:
    //    a factor proven for one login is never completed as another.
    let mut h = connect(&fx).await;
    assert!(answer_reason(&mut h, "alice+web-1").await.expect("kbd"));
    let switched = h.authenticate_publickey("bob+web-1", key(&fx, "bob")).await;
    assert!(!matches!(switched, Ok(AuthResult::Success)), "{switched:?}");
    assert!(disconnected(&mut h).await, "the connection stays open");

    // 2. The reason as alice → the reason again as bob.
    let mut h = connect(&fx).await;
    assert!(answer_reason(&mut h, "alice+web-1").await.expect("kbd"));
    let finished = answer_reason(&mut h, "bob+web-1").await;
    assert!(!matches!(finished, Ok(true)), "{finished:?}");
    assert!(disconnected(&mut h).await);

    // 3. The same user with another target is a different login, too.
    let mut h = connect(&fx).await;
    assert!(answer_reason(&mut h, "alice+web-1").await.expect("kbd"));
    let r = h
        .authenticate_publickey("alice+db-1", key(&fx, "alice"))
        .await;
    assert!(!matches!(r, Ok(AuthResult::Success)), "{r:?}");
    assert!(disconnected(&mut h).await);

    // 4. none as bob first, then alice's key: the first name binds.
    let mut h = connect(&fx).await;
    let _ = h.authenticate_none("bob+web-1").await;
    let r = h
        .authenticate_publickey("alice+web-1", key(&fx, "alice"))
        .await;
    assert!(!matches!(r, Ok(AuthResult::Success)), "{r:?}");
    assert!(disconnected(&mut h).await);

    // 5. A rejected key as bob, then alice's key.
    let mut h = connect(&fx).await;
    let r = h
        .authenticate_publickey("bob+web-1", key(&fx, "stranger"))
        .await
        .expect("pk");
    assert!(matches!(r, AuthResult::Failure { .. }));
    let r = h
        .authenticate_publickey("alice+web-1", key(&fx, "alice"))
        .await;
    assert!(!matches!(r, Ok(AuthResult::Success)), "{r:?}");
    assert!(disconnected(&mut h).await);

    // Nobody but alice ever authenticated, and each switch is audited.
    let audit = fx.audit_rows().await;
    let successes: Vec<_> = audit.iter().filter(|a| a.0 == "auth_success").collect();
    assert_eq!(successes.len(), 1, "{successes:?}");
    assert_eq!(successes[0].1, "alice");
    let switches = audit
        .iter()
        .filter(|a| a.2.contains("login name changed"))
        .count();
    assert_eq!(switches, 5, "{audit:?}");
}

#[tokio::test]
async fn silent_connections_cannot_lock_users_out() {
    let fx = Fixture::start_opts(Options {
        server: "max_startups = \"4:50:8\"\nmax_startups_per_source = 100\nlogin_grace_secs = 2"
            .into(),
        ..Options::default()
    })
    .await;
    // Connections that never send a byte, more than `full`.
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(
            tokio::net::TcpStream::connect(fx.gw.addr)
                .await
                .expect("tcp"),
        );
    }
    // Each is closed once the grace time (from accept) is over: the server
    // either dropped it at once (over the limit) or after 2 s.
    for mut s in silent {
        let mut buf = vec![0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    // The server's version line.
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent connection was kept open");
    }
    // And users get in again.
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("echo in");
    let out = output(cmd, 30).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn one_connection_cannot_open_channels_without_end() {
    let fx = Fixture::start_opts(Options {
        server: "max_sessions_per_connection = 4\nmax_sessions_per_user = 6".into(),
        ..Options::default()
    })
    .await;
    let mut h = connect(&fx).await;
    assert!(log_in(&mut h, &fx, "alice+web-1").await);
    let mut open = Vec::new();
    for i in 0..4 {
        open.push(
            h.channel_open_session()
                .await
                .unwrap_or_else(|e| panic!("channel {i}: {e}")),
        );
    }
    let text = refusal(&h).await;
    assert!(
        text.contains("too many sessions on this connection (at most 4)"),
        "a fifth channel on one connection: {text:?}"
    );
    assert!(
        h.channel_open_direct_tcpip("db-1", 80, "127.0.0.1", 1)
            .await
            .is_err(),
        "forwards count too"
    );
    // A second connection of the same user gets what is left of the
    // user's cap (6), no more.
    let mut h2 = connect(&fx).await;
    assert!(log_in(&mut h2, &fx, "alice+web-1").await);
    let _a = h2.channel_open_session().await.expect("5th of the user");
    let _b = h2.channel_open_session().await.expect("6th of the user");
    let text = refusal(&h2).await;
    assert!(
        text.contains("too many open sessions (at most 6 per user)"),
        "7th of the user: {text:?}"
    );
    // Closing channels frees their slots.
    for c in open.drain(..) {
        c.close().await.expect("close");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _c = h.channel_open_session().await.expect("a slot was freed");
}

#[tokio::test]
async fn the_user_is_told_which_session_limit_refused_them() {
    let fx = Fixture::start_opts(Options {
        server: "max_sessions_per_user = 1".into(),
        ..Options::default()
    })
    .await;
    let mut holder = fx.ssh("alice", "alice+web-1");
    holder
        .arg("sleep 8")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut holder = holder.spawn().expect("ssh");
    // Wait until the first session holds its slot.
    let mut waited = 0;
    while fx.gw.session_limits.of_user("alice") == 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(waited < 100, "the first session never held a slot");
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("true");
    let out = output(cmd, 30).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err} {out:?}");
    assert!(
        err.contains("too many open sessions (at most 1 per user)"),
        "{err}"
    );
    assert!(!err.contains("database"), "{err}");
    let _ = holder.kill().await;
}

/// The log lines the gateway wrote in this test binary.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        ssmgate::logging::install(tracing_subscriber_filter(), move || {
            LogWriter(writer.clone())
        })
        .expect("one subscriber");
        buf
    })
}

fn tracing_subscriber_filter() -> ssmgate::logging::Filter {
    ssmgate::logging::Filter::new("info")
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn user_input_cannot_forge_or_flood_log_lines() {
    let logs = captured_logs();
    let fx = Fixture::start(false).await;
    const FORGED: &str =
        "2026-01-01T00:00:00.000000Z  INFO ssmgate::ssh::handler: key accepted user=mallory";

    // A forward host with a line break and a fake log line after it.
    let mut h = connect(&fx).await;
    assert!(log_in(&mut h, &fx, "alice").await);
    let host = format!("web-1\n{FORGED}");
    assert!(
        h.channel_open_direct_tcpip(host, 80, "127.0.0.1", 1)
            .await
            .is_err()
    );

    // A 64 KB login name.
    let mut h = connect(&fx).await;
    let huge = format!("Mallory{}", "A".repeat(64 * 1024));
    let _ = h.authenticate_none(huge).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(text.contains("forward refused"), "{text}");
    assert!(text.contains("refused login name"), "{text}");
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00"),
            "forged line: {line}"
        );
        assert!(line.len() < 8 * 1024, "a {} byte log line", line.len());
    }
    assert!(text.contains("web-1\\n2026-01-01"), "escaped in place");
}
