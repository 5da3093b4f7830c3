//! `[log] format = "json"` end to end: the `ssmgate serve` binary, run on
//! the fixture's config with JSON logs, carries one command from the real
//! OpenSSH client; every line it writes to stderr is a JSON object, and the
//! lines about that session carry the gateway and SSM session ids the
//! record has.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::gateway::*;
use serde_json::{Map, Value};
use ssmgate::recording::{self, SessionFilter, SessionKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn json_log_lines_parse_and_carry_the_session_ids() {
    let fx = Fixture::start(false).await;
    // The fixture's config, with JSON logs and a spool of its own (the
    // fixture's in-process gateway keeps its own).
    let base = std::fs::read_to_string(fx.path("ssmgate.toml")).expect("config");
    let config = fx.path("ssmgate-json.toml");
    std::fs::write(
        &config,
        format!(
            "{base}\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             [recording]\nspool_dir = \"spool-json\"\n"
        ),
    )
    .expect("write config");
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_ssmgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("SSMGATE_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ssmgate serve starts");
    let mut stderr = gateway.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.expect("read stderr");
        text
    });
    let mut stdout = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("the gateway says where it listens in time")
        .expect("read stdout")
        .expect("a line on stdout");
    // "ssmgate: listening on 127.0.0.1:PORT (host key …)"
    let port: u16 = listening
        .split_whitespace()
        .nth(3)
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening:?}"));

    let mut ssh = Command::new("ssh");
    ssh.args(fx.common_opts("alice"))
        .args(["-p", &port.to_string()])
        .arg("alice+web-1@127.0.0.1")
        .arg("echo json-logs-ok")
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = output(ssh, 30).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "json-logs-ok\n",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The session as recorded (only this gateway made one).
    let store = recording::connect(&format!("sqlite://{}", fx.path("ssmgate.db").display()))
        .await
        .expect("store");
    let mut session = None;
    for _ in 0..200 {
        let all = store
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list");
        session = all
            .into_iter()
            .find(|s| s.kind == SessionKind::Exec && !s.is_live());
        if session.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = session.expect("the exec session is recorded as ended");
    let gateway_session = session.id.to_string();
    let ssm_session = session.ssm_session_id.clone().expect("an SSM session id");

    // Stop it (SIGTERM: a clean stop) and read everything it logged.
    let pid = gateway.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(30), gateway.wait())
        .await
        .expect("the gateway stops in time")
        .expect("wait");
    let text = tokio::time::timeout(Duration::from_secs(10), log)
        .await
        .expect("stderr closes")
        .expect("reader");

    let lines: Vec<Map<String, Value>> = text
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            other => panic!("not a JSON object: {line:?} ({other:?})\n{text}"),
        })
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "module", "message"] {
            assert!(line.contains_key(key), "no {key}: {line:?}");
        }
    }
    let message = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} line in\n{text}"))
    };
    for m in ["session started", "session ended"] {
        let line = message(m);
        assert_eq!(
            line["gateway_session"],
            gateway_session.as_str(),
            "{line:?}"
        );
        assert_eq!(line["ssm_session"], ssm_session.as_str(), "{line:?}");
    }
    assert_eq!(message("session started")["user"], "alice");
    assert_eq!(message("session started")["target"], WEB_1);
    assert_eq!(message("session ended")["module"], "ssmgate::gateway::run");
    // Every line about the session carries its id (there is one session),
    // and from StartSession on the SSM session's.
    let about: Vec<_> = lines
        .iter()
        .filter(|l| l.contains_key("gateway_session"))
        .collect();
    assert!(about.len() >= 2, "{text}");
    let mut started = false;
    for line in about {
        assert_eq!(
            line["gateway_session"],
            gateway_session.as_str(),
            "{line:?}"
        );
        started |= line["message"] == "session started";
        if started {
            assert_eq!(line["ssm_session"], ssm_session.as_str(), "{line:?}");
        }
    }
    assert!(message("stopping").get("gateway_session").is_none());
}
