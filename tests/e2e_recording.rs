//! Recording end to end: sessions made with the real OpenSSH client through
//! a running gateway are found in the store with their metadata, content,
//! exit codes, byte counts, audit trail and a valid hash chain — on SQLite,
//! and on a real Postgres that is stopped in the middle of a session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::gateway::*;
use ssmgate::recording::{
    self, AuditKind, EndReason, EventKind, RecordingMode, SessionFilter, SessionKind,
    SessionRecord, Store,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sqlite_store(fx: &Fixture) -> Arc<dyn Store> {
    recording::connect(&format!("sqlite://{}", fx.path("ssmgate.db").display()))
        .await
        .expect("store")
}

/// Waits until the store holds an ended session of `kind` (newest first).
async fn ended(store: &dyn Store, kind: SessionKind) -> SessionRecord {
    for _ in 0..200 {
        let all = store
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list");
        if let Some(s) = all.into_iter().find(|s| s.kind == kind && !s.is_live()) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no ended {kind} session recorded");
}

/// The session's events, after checking its chain.
async fn events(store: &dyn Store, s: &SessionRecord) -> Vec<recording::Event> {
    let chunks = store.chunks(s.id).await.expect("chunks");
    recording::verify(s, &chunks).expect("the chain verifies");
    chunks.into_iter().flat_map(|c| c.events).collect()
}

fn bytes_of(events: &[recording::Event], kind: EventKind) -> String {
    let b: Vec<u8> = events
        .iter()
        .filter(|e| e.kind == kind)
        .flat_map(|e| e.data.to_vec())
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test]
async fn a_shell_is_recorded_with_metadata_content_and_audit() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("-T")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"echo recorded-$((6*7))\n")
        .await
        .expect("write");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("ends")
        .expect("output");
    assert!(String::from_utf8_lossy(&out.stdout).contains("recorded-42"));

    let store = sqlite_store(&fx).await;
    let s = ended(&*store, SessionKind::Shell).await;
    assert_eq!(s.user, "alice");
    assert_eq!(s.target_id, WEB_1);
    assert_eq!(s.target_name.as_deref(), Some("web-1"));
    assert_eq!(s.justification.as_deref(), Some(REASON));
    let aws_reason = s.aws_reason.clone().expect("reason sent to AWS");
    assert!(aws_reason.contains(&s.id.to_string()), "{aws_reason}");
    assert!(aws_reason.contains("alice"), "{aws_reason}");
    assert!(s.ssm_session_id.is_some());
    assert!(
        s.client_version
            .as_deref()
            .is_some_and(|v| v.starts_with("SSH-2.0-OpenSSH")),
        "{:?}",
        s.client_version
    );
    assert!(
        s.key_fingerprint
            .as_deref()
            .is_some_and(|f| f.starts_with("SHA256:"))
    );
    assert!(!s.policy_ids.is_empty());
    assert_eq!(s.recording, RecordingMode::Full);
    assert_eq!(s.source_ip.to_string(), "127.0.0.1");
    let end = s.end.clone().expect("ended");
    assert_ne!(end.reason, EndReason::Error);

    let ev = events(&*store, &s).await;
    assert!(bytes_of(&ev, EventKind::Input).contains("echo recorded-$((6*7))"));
    assert!(bytes_of(&ev, EventKind::Output).contains("recorded-42"));
    let offsets: Vec<u64> = ev.iter().map(|e| e.offset_ms).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "in time order");
    assert_eq!(
        end.bytes_out,
        ev.iter()
            .filter(|e| e.kind == EventKind::Output)
            .map(|e| e.data.len() as u64)
            .sum::<u64>()
    );

    let audit: Vec<AuditKind> = store
        .audit_for_session(s.id)
        .await
        .expect("audit")
        .iter()
        .map(|a| a.kind)
        .collect();
    for kind in [
        AuditKind::DecisionAllow,
        AuditKind::SessionStart,
        AuditKind::SessionEnd,
    ] {
        assert!(audit.contains(&kind), "{kind} in {audit:?}");
    }

    // The admin tools on the real recording: export, then tamper + verify.
    let short = s.id.to_string()[..8].to_owned();
    let cast = sessions(&fx, &["export", &short, "--format", "asciicast"]);
    assert!(cast.status.success(), "{cast:?}");
    let cast = String::from_utf8_lossy(&cast.stdout).into_owned();
    let lines: Vec<serde_json::Value> = cast
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["version"], 2);
    let text = |code: &str| {
        lines[1..]
            .iter()
            .filter(|l| l[1] == code)
            .map(|l| l[2].as_str().unwrap().to_owned())
            .collect::<String>()
    };
    assert!(text("i").contains("echo recorded-$((6*7))"), "{cast}");
    assert!(text("o").contains("recorded-42"), "{cast}");
    let ok = sessions(&fx, &["verify", "--all"]);
    assert!(ok.status.success(), "{ok:?}");
    let ok = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.contains(&format!("OK {}", s.id)), "{ok}");
    // The running gateway's audit chain: intact, and still open.
    assert!(ok.contains("OK audit chain") && ok.contains("open"), "{ok}");
    assert!(
        ok.contains("audit chains") && ok.contains(": 0 broken"),
        "{ok}"
    );
    // Sealed with the key the gateway generated beside its config.
    let keys = recording::SealKeys::load(&fx.path("recording.key")).expect("generated key");
    let chunks = store.chunks(s.id).await.expect("chunks");
    let trail = store.audit_for_session(s.id).await.expect("audit");
    let report = recording::check_session(&keys, &s, Ok(&chunks), &trail);
    assert!(report.is_intact() && !report.unsealed, "{report:?}");

    // Edit the recorded output in the database.
    use sqlx::Row;
    let url = format!("sqlite://{}", fx.path("ssmgate.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let rows = sqlx::query("SELECT seq, events FROM session_chunks WHERE session_id = ?")
        .bind(s.id.to_string())
        .fetch_all(&pool)
        .await
        .expect("chunks");
    let (seq, mut blob) = rows
        .iter()
        .map(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)))
        .find(|(_, b)| b.windows(11).any(|w| w == b"recorded-42"))
        .expect("the chunk with the output");
    let at = blob.windows(11).position(|w| w == b"recorded-42").unwrap();
    blob[at + 10] = b'3';
    sqlx::query("UPDATE session_chunks SET events = ? WHERE session_id = ? AND seq = ?")
        .bind(blob)
        .bind(s.id.to_string())
        .bind(seq)
        .execute(&pool)
        .await
        .expect("tamper");
    let broken = sessions(&fx, &["verify", &short]);
    assert!(!broken.status.success(), "{broken:?}");
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(
        out.contains("BROKEN") && out.contains(&format!("chunk {seq}")),
        "{out}"
    );
    // An edited reason on the real session row breaks its start seal.
    sqlx::query("UPDATE sessions SET justification = 'INC-9 routine' WHERE id = ?")
        .bind(s.id.to_string())
        .execute(&pool)
        .await
        .expect("tamper");
    let broken = sessions(&fx, &["verify", &short]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("metadata MAC mismatch (start seal)"), "{out}");
    // Looking at recordings is audited too.
    let admin = fx.audit_rows().await;
    assert!(
        admin
            .iter()
            .any(|(k, _, d)| k == "admin" && d.contains("sessions export")),
        "{admin:?}"
    );
}

/// Runs `ssmgate sessions --config <fixture config> ARGS`.
fn sessions(fx: &Fixture, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
        .arg("sessions")
        .arg("--config")
        .arg(fx.path("ssmgate.toml"))
        .args(args)
        .output()
        .expect("ssmgate sessions runs")
}

#[tokio::test]
async fn exec_records_its_exit_code_and_refusals_are_audited() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("echo exec-out; exit 42");
    let out = output(cmd, 30).await;
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    let store = sqlite_store(&fx).await;
    let s = ended(&*store, SessionKind::Exec).await;
    let end = s.end.clone().unwrap();
    assert_eq!(end.exit_status, Some(42));
    assert_eq!(end.reason, EndReason::TargetExited);
    assert!(s.parameters.as_deref().unwrap().contains("exit 42"));
    let ev = events(&*store, &s).await;
    assert!(ev.iter().any(|e| e.kind == EventKind::Exit { code: 42 }));
    assert!(bytes_of(&ev, EventKind::Output).contains("exec-out"));

    // A stranger's key: an auth failure in the audit trail.
    let out = output(fx.ssh("stranger", "alice+web-1"), 30).await;
    assert_eq!(out.status.code(), Some(255));
    // A policy deny: the test policies forward port 80 only.
    let mut denied = fx.ssh("alice", "alice");
    denied.args(["-W", "db-1:5432"]);
    let out = output(denied, 30).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    fx.gw.recorder.flush().await;
    let db = fx.audit_rows().await;
    assert!(
        db.iter()
            .any(|(k, u, _)| k == "auth_failure" && u == "alice"),
        "{db:?}"
    );
    assert!(
        db.iter()
            .any(|(k, _, d)| k == "decision_deny" && d.contains("5432")),
        "{db:?}"
    );
    assert!(
        db.iter()
            .any(|(k, _, d)| k == "admin" && d.contains("gateway_start"))
    );
}

#[tokio::test]
async fn proxyjump_scp_records_connection_byte_counts() {
    let fx = Fixture::start(true).await;
    if fx.sshd.is_none() {
        eprintln!("sshd is not installed (openssh-server): skipping");
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let size = 8u64 << 20;
    let src = fx.path("upload.bin");
    std::fs::write(&src, common::data(size as usize, 3)).expect("write");
    let mut cmd = tokio::process::Command::new("scp");
    cmd.args(fx.jump_opts())
        .args([
            "-q",
            &src.display().to_string(),
            &format!("{user}@web-1:{}", fx.path("remote.bin").display()),
        ])
        .env("SSH_ASKPASS", &fx.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null());
    let out = output(cmd, 120).await;
    assert!(out.status.success(), "scp: {out:?}");
    let store = sqlite_store(&fx).await;
    let s = ended(&*store, SessionKind::Ssh).await;
    assert_eq!(s.recording, RecordingMode::Metadata);
    let end = s.end.clone().unwrap();
    // What went through is the encrypted SSH stream: the file plus the
    // protocol's overhead (a few percent), never less than the file.
    assert!(end.bytes_in >= size, "{} < {size}", end.bytes_in);
    assert!(
        end.bytes_in < size + size / 10 + (256 << 10),
        "{}",
        end.bytes_in
    );
    assert!(
        end.bytes_out > 0 && end.bytes_out < size / 10,
        "{}",
        end.bytes_out
    );
    let ev = events(&*store, &s).await;
    let closes: Vec<(u64, u64)> = ev
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ConnClose {
                bytes_in,
                bytes_out,
                ..
            } => Some((bytes_in, bytes_out)),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [(end.bytes_in, end.bytes_out)]);
    assert!(ev.iter().any(|e| e.kind == EventKind::ConnOpen { id: 0 }));
    assert!(
        bytes_of(&ev, EventKind::Output).is_empty(),
        "no content for ssh sessions"
    );
}

/// A `-T` shell on web-1 as alice: the process, its stdin, and its output
/// as it comes.
fn shell(
    fx: &Fixture,
) -> (
    tokio::process::Child,
    tokio::process::ChildStdin,
    Arc<Mutex<Vec<u8>>>,
) {
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("-T")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ssh");
    let stdin = child.stdin.take().expect("stdin");
    let seen = collect(child.stdout.take().expect("stdout"));
    (child, stdin, seen)
}

/// Collects a child's output as it comes.
fn collect(mut from: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    seen
}

async fn wait_for(seen: &Mutex<Vec<u8>>, needle: &str) {
    for _ in 0..300 {
        if String::from_utf8_lossy(&seen.lock().unwrap()).contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{needle:?} not seen in {:?}",
        String::from_utf8_lossy(&seen.lock().unwrap())
    );
}

#[tokio::test]
async fn a_postgres_outage_loses_nothing_and_refuses_new_sessions() {
    let cluster = common::postgres::PgCluster::start().expect("postgres");
    let url = cluster.fresh_database().await;
    let fx = Fixture::start_with(false, Some(url.clone()), "").await;
    let (mut child, mut stdin, seen) = shell(&fx);
    let mut typed = 0;
    let mut say = async |stdin: &mut tokio::process::ChildStdin, word: &str| {
        typed += 1;
        stdin
            .write_all(format!("echo {word}-$(({typed}*1000))\n").as_bytes())
            .await
            .expect("type");
        format!("{word}-{}", typed * 1000)
    };
    let before = say(&mut stdin, "before").await;
    wait_for(&seen, &before).await;

    cluster.stop().expect("stop postgres");
    let mut during = Vec::new();
    for _ in 0..20 {
        let w = say(&mut stdin, "during").await;
        wait_for(&seen, &w).await;
        during.push(w);
    }
    // A new session while the store is down: refused, with the reason.
    let out = output(
        {
            let mut c = fx.ssh("alice", "alice+web-1");
            c.arg("true");
            c
        },
        30,
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("session recording is unavailable"),
        "{out:?}"
    );
    // The writer notices at its next write (the tap seals a chunk a
    // second after its first event) and spools from then on.
    for _ in 0..300 {
        let stats = fx.gw.recorder.stats();
        if !stats.healthy && stats.spool_ops > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = fx.gw.recorder.stats();
    assert!(!stats.healthy && stats.spool_ops > 0, "{stats:?}");
    // Typing goes on during the outage.
    for _ in 0..5 {
        let w = say(&mut stdin, "during").await;
        wait_for(&seen, &w).await;
        during.push(w);
    }

    cluster.restart().expect("start postgres");
    let after = say(&mut stdin, "after").await;
    wait_for(&seen, &after).await;
    stdin.write_all(b"exit\n").await.expect("exit");
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("ssh ends")
        .expect("wait");
    tokio::time::timeout(Duration::from_secs(60), fx.gw.recorder.flush())
        .await
        .expect("the spool drains into Postgres");

    let store = recording::connect(&url).await.expect("postgres store");
    let s = ended(&*store, SessionKind::Shell).await;
    let ev = events(&*store, &s).await;
    let output_text = bytes_of(&ev, EventKind::Output);
    let input_text = bytes_of(&ev, EventKind::Input);
    for word in std::iter::once(&before).chain(&during).chain([&after]) {
        assert!(output_text.contains(word.as_str()), "{word} recorded");
    }
    assert_eq!(input_text.matches("echo ").count(), 27, "{input_text}");
    let stats = fx.gw.recorder.stats();
    assert!(stats.spooled_ops > 0, "the outage was spooled: {stats:?}");
    assert_eq!(stats.spool_ops, 0);
    assert_eq!(stats.failed_ops, 0, "{stats:?}");

    // And sessions are allowed again.
    let mut c = fx.ssh("alice", "alice+web-1");
    c.arg("true");
    let out = output(c, 30).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[tokio::test]
async fn sessions_cut_by_a_gateway_shutdown_are_recorded_as_terminated() {
    let fx = Fixture::start(false).await;
    let (mut child, mut stdin, seen) = shell(&fx);
    stdin.write_all(b"echo up-$((20+1))\n").await.expect("type");
    wait_for(&seen, "up-21").await;
    let db = fx.path("ssmgate.db");
    let Fixture { gw, dir, .. } = fx;
    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("the gateway stops");
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let store = recording::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("store");
    let s = ended(&*store, SessionKind::Shell).await;
    assert_eq!(s.end.clone().unwrap().reason, EndReason::Terminated);
    assert!(bytes_of(&events(&*store, &s).await, EventKind::Output).contains("up-21"));
    drop(dir);
}
