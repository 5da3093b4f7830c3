//! Test data for `tests/sessions_cli.rs` and `tests/sessions_verify.rs`: a
//! SQLite file filled through the recording `Store` API with a shell
//! session (UTF-8 split across events, a resize, an exit), a live shell and
//! a port session, all sealed with a recording key as the recorder seals
//! them (the shell's audit events in an audit chain); running the binary
//! against it (with that key); raw SQL access for tampering.

// Shared by two test binaries, each using part of it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Output;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use sqlx::Connection;
use ssmgate::recording::seal::{seal_audit, seal_end, seal_start};
use ssmgate::recording::{
    AuditEvent, AuditKind, AuditLink, AuthKind, ChainWriter, Decision, EndReason, Event, EventKind,
    RecordingMode, SealKey, SealKeys, SessionEnd, SessionKind, SessionRecord, Store, connect, now,
};
use uuid::Uuid;

/// A database filled with known sessions.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub url: String,
    /// The recording key file (key id `k1`) everything is sealed with.
    pub key_file: PathBuf,
    /// The audit chain the shell's audit events are in (seq 0–3).
    pub chain: Uuid,
    /// alice's finished shell on web-1 (chunks: see `shell_events`).
    pub shell: SessionRecord,
    /// bob's live shell on db-1.
    pub live: SessionRecord,
    /// carol's finished port session on i-0port.
    pub port: SessionRecord,
}

pub fn ev(offset_ms: u64, kind: EventKind, data: &[u8]) -> Event {
    Event {
        offset_ms,
        kind,
        data: Bytes::copy_from_slice(data),
    }
}

/// The shell session's chunks: a prompt, typed input, output with "é"
/// (c3 a9) split across two Output events, a resize, a "€" split across
/// chunks, and the exit.
pub fn shell_events() -> Vec<Vec<Event>> {
    vec![
        vec![
            ev(
                0,
                EventKind::Resize {
                    cols: 132,
                    rows: 43,
                },
                b"",
            ),
            ev(10, EventKind::Output, b"$ "),
            ev(400, EventKind::Input, b"echo caf\xc3\xa9\r"),
            ev(420, EventKind::Output, b"echo caf\xc3"),
        ],
        vec![
            ev(430, EventKind::Output, b"\xa9\r\ncaf\xc3\xa9\r\n$ "),
            ev(
                900,
                EventKind::Resize {
                    cols: 100,
                    rows: 30,
                },
                b"",
            ),
            ev(950, EventKind::Output, b"price: 5\xe2\x82"),
        ],
        vec![
            ev(960, EventKind::Output, b"\xac\r\n$ exit\r\n"),
            ev(1000, EventKind::Exit { code: 3 }, b""),
        ],
    ]
}

pub fn session(
    user: &str,
    target: &str,
    kind: SessionKind,
    started_at: DateTime<Utc>,
) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        ssm_session_id: Some(format!("{user}-0a1b2c3d4e5f67890")),
        user: user.to_owned(),
        auth_method: AuthKind::Certificate,
        key_fingerprint: Some("SHA256:Jq3Xb5mW0cY1lG9yEw2uQv7p8Hn4s6Rt0aKzLdVxFcE".into()),
        cert_key_id: Some(format!("{user}@corp")),
        cert_serial: Some(4242),
        cert_ca_fingerprint: Some("SHA256:caCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAca0".into()),
        source_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        source_port: 50022,
        client_version: Some("SSH-2.0-OpenSSH_9.6".into()),
        target_id: format!("i-0{target}"),
        target_name: Some(target.to_owned()),
        document: Some("SSM-SessionManagerRunShell".into()),
        parameters: Some(r#"{"command":["bash -l"]}"#.into()),
        justification: Some("INC-1234: disk full".into()),
        aws_reason: Some(format!("ssmgate {user}: INC-1234: disk full")),
        decision: Decision::Allow,
        policy_ids: vec!["ops-can-shell".into(), "prod-needs-ticket".into()],
        kind,
        recording: RecordingMode::Full,
        started_at,
        end: None,
        chain_head: None,
        start_seal: None,
        backend: None,
        os_user: None,
        replica: None,
    }
}

pub fn audit(kind: AuditKind, s: &SessionRecord, at: DateTime<Utc>, detail: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at,
        kind,
        user: Some(s.user.clone()),
        session_id: Some(s.id),
        source_ip: Some(s.source_ip),
        detail: detail.to_owned(),
        link: None,
    }
}

/// The fixture's recording key.
pub fn key() -> SealKey {
    SealKey::new("k1", [0x5a; 32]).unwrap()
}

/// `e` sealed at `seq` in audit chain `chain`, as a recorder seals it.
pub fn sealed_audit(mut e: AuditEvent, chain: Uuid, seq: i64) -> AuditEvent {
    e.link = Some(AuditLink {
        chain_id: chain,
        seq,
        seal: seal_audit(&key(), &e, chain, seq),
    });
    e
}

/// Stores a session with its chunks, sealed as the recorder seals them;
/// finishes it when `end` is given.
pub async fn record(
    store: &dyn Store,
    s: &SessionRecord,
    chunks: Vec<Vec<Event>>,
    end: Option<(Duration, EndReason, Option<i32>)>,
) -> SessionRecord {
    let mut s = s.clone();
    s.start_seal = Some(seal_start(&key(), &s));
    let s = &s;
    store.insert_session(s).await.unwrap();
    let mut chain = ChainWriter::sealed(s.id, key());
    for (i, events) in chunks.into_iter().enumerate() {
        let c = chain.seal(
            s.started_at + Duration::milliseconds(i as i64 * 500),
            events,
        );
        store.append_chunk(&c).await.unwrap();
    }
    if let Some((after, reason, exit_status)) = end {
        let mut end = SessionEnd {
            ended_at: s.started_at + after,
            reason,
            exit_status,
            bytes_in: 1234,
            bytes_out: 1_258_291,
            chain_head: chain.head(),
            chunk_count: Some(chain.next_seq() as u64),
            seal: None,
            cause: None,
        };
        end.seal = Some(seal_end(&key(), s.id, &end));
        store.finish_session(s.id, &end).await.unwrap();
    }
    store.get_session(s.id).await.unwrap().unwrap()
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recordings.db");
    let url = format!("sqlite://{}", path.display());
    let key_file = dir.path().join("recording.key");
    SealKeys::from_keys(vec![key()])
        .unwrap()
        .write_new(&key_file)
        .unwrap();
    let chain = Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (shell, live, port) = rt.block_on(async {
        let store = connect(&url).await.unwrap();
        let t0 = now() - Duration::hours(3);
        let shell = session("alice", "web-1", SessionKind::Shell, t0);
        let shell = record(
            store.as_ref(),
            &shell,
            shell_events(),
            Some((Duration::seconds(185), EndReason::TargetExited, Some(3))),
        )
        .await;
        let start = format!(
            r#"{{"target":"i-0web-1","kind":"shell","ssm_session_id":{:?},"document":"SSM-SessionManagerRunShell"}}"#,
            shell.ssm_session_id.as_deref().unwrap()
        );
        let end = r#"{"reason":"target_exited","exit_status":3,"bytes_in":1234,"bytes_out":1258291,"chunks":3}"#;
        for (i, (kind, detail)) in [
            (AuditKind::AuthSuccess, r#"{"method":"certificate"}"#),
            (
                AuditKind::DecisionAllow,
                r#"{"policies":["ops-can-shell"]}"#,
            ),
            (AuditKind::SessionStart, start.as_str()),
            (AuditKind::SessionEnd, end),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0 + Duration::seconds(i as i64);
            let e = sealed_audit(audit(kind, &shell, at, detail), chain, i as i64);
            store.insert_audit(&e).await.unwrap();
        }
        let live = session(
            "bob",
            "db-1",
            SessionKind::Shell,
            now() - Duration::minutes(5),
        );
        let live = record(
            store.as_ref(),
            &live,
            vec![vec![
                ev(0, EventKind::Resize { cols: 80, rows: 24 }, b""),
                ev(5, EventKind::Output, b"# "),
            ]],
            None,
        )
        .await;
        let port = session(
            "carol",
            "port-1",
            SessionKind::Port,
            t0 + Duration::hours(1),
        );
        let port = record(
            store.as_ref(),
            &port,
            vec![vec![
                ev(0, EventKind::ConnOpen { id: 1 }, b""),
                ev(
                    700,
                    EventKind::ConnClose {
                        id: 1,
                        bytes_in: 10,
                        bytes_out: 20,
                    },
                    b"",
                ),
            ]],
            Some((Duration::seconds(1), EndReason::ClientClosed, None)),
        )
        .await;
        (shell, live, port)
    });
    Fixture {
        _dir: dir,
        path,
        url,
        key_file,
        chain,
        shell,
        live,
        port,
    }
}

impl Fixture {
    /// Runs `ssmgate sessions ARGS --database URL`.
    pub fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
            .arg("sessions")
            .args(args)
            .args(["--database", &self.url])
            .env_remove("SSMGATE_DATABASE_URL")
            .env("SSMGATE_RECORDING_KEY_FILE", &self.key_file)
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        stdout
    }

    /// Runs and expects failure; returns (stdout, stderr).
    pub fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {stdout}");
        (stdout, stderr)
    }

    /// Overwrites one chunk's stored events column.
    pub fn set_events(&self, id: Uuid, seq: i64, bytes: &[u8]) {
        let url = self.url.clone();
        let bytes = bytes.to_vec();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let n = sqlx::query(
                    "UPDATE session_chunks SET events = ?3 WHERE session_id = ?1 AND seq = ?2",
                )
                .bind(id.to_string())
                .bind(seq)
                .bind(bytes)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected();
                assert_eq!(n, 1);
            });
    }

    /// Runs one SQL statement on the database (tampering behind the
    /// store's back); `?1` is bound to `id` (hyphenated), `?2`… to `more`.
    /// Returns the rows affected.
    pub fn sql(&self, statement: &str, id: Uuid, more: &[Bind]) -> u64 {
        let url = self.url.clone();
        let statement = statement.to_owned();
        let more = more.to_vec();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let mut q = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(id.to_string());
                for b in more {
                    q = match b {
                        Bind::Text(t) => q.bind(t),
                        Bind::Int(n) => q.bind(n),
                        Bind::Blob(b) => q.bind(b),
                    };
                }
                q.execute(&mut c).await.unwrap().rows_affected()
            })
    }

    /// Reads one chunk's stored events column.
    pub fn events(&self, id: Uuid, seq: i64) -> Vec<u8> {
        let url = self.url.clone();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT events FROM session_chunks WHERE session_id = ?1 AND seq = ?2",
                )
                .bind(id.to_string())
                .bind(seq)
                .fetch_one(&mut c)
                .await
                .unwrap()
            })
    }
}

/// A value bound into [`Fixture::sql`].
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn short(s: &SessionRecord) -> String {
    s.id.to_string()[..8].to_owned()
}

/// The table's data rows (after the header).
pub fn rows(table: &str) -> Vec<&str> {
    table.lines().skip(1).collect()
}
