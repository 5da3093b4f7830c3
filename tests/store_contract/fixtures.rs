//! Test data for the store contract (fully populated records, chains of
//! chunks) and raw SQL access to the database under test, for tampering
//! with rows behind the store's back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use sqlx::Connection;
use ssmgate::recording::{
    AuditEvent, AuditKind, AuthKind, ChainWriter, Decision, EndReason, Event, EventChunk,
    EventKind, RecordingMode, Seal, SealKey, SessionEnd, SessionKind, SessionRecord, Store,
    connect, now,
};
use uuid::Uuid;

/// Which backend a database URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database under test.
#[derive(Debug, Clone)]
pub struct Db {
    pub backend: Backend,
    pub url: String,
}

impl Db {
    /// A store on this database (a new pool each call, like another replica).
    pub async fn store(&self) -> Arc<dyn Store> {
        connect(&self.url).await.expect("connect")
    }

    /// Reads a chunk's stored `events` bytes.
    pub async fn events_bytes(&self, session: Uuid, seq: i64) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT events FROM session_chunks WHERE session_id = ?1 AND seq = ?2",
                )
                .bind(session.to_string())
                .bind(seq)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT events FROM session_chunks WHERE session_id = $1 AND seq = $2",
                )
                .bind(session)
                .bind(seq)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
        }
    }

    /// `UPDATE session_chunks SET events = …` for one chunk.
    pub async fn set_events_bytes(&self, session: Uuid, seq: i64, bytes: &[u8]) {
        let n = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(
                    "UPDATE session_chunks SET events = ?3 WHERE session_id = ?1 AND seq = ?2",
                )
                .bind(session.to_string())
                .bind(seq)
                .bind(bytes)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(
                    "UPDATE session_chunks SET events = $3 WHERE session_id = $1 AND seq = $2",
                )
                .bind(session)
                .bind(seq)
                .bind(bytes)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected()
            }
        };
        assert_eq!(n, 1, "one row tampered");
    }

    /// Runs one statement written with `?1` for the session or event id
    /// (`$1` on Postgres); returns the rows affected.
    pub async fn exec(&self, statement: &str, id: Uuid) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                    .bind(id.to_string())
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(statement.replace("?1", "$1")))
                    .bind(id)
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        }
    }

    /// `DELETE FROM session_chunks` for one chunk.
    pub async fn delete_chunk(&self, session: Uuid, seq: i64) {
        let n = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query("DELETE FROM session_chunks WHERE session_id = ?1 AND seq = ?2")
                    .bind(session.to_string())
                    .bind(seq)
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query("DELETE FROM session_chunks WHERE session_id = $1 AND seq = $2")
                    .bind(session)
                    .bind(seq)
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        };
        assert_eq!(n, 1, "one row deleted");
    }
}

/// A session with every field set.
pub fn full_session(user: &str, target: &str, started_at: DateTime<Utc>) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        ssm_session_id: Some(format!("{user}-0a1b2c3d4e5f67890")),
        user: user.to_owned(),
        auth_method: AuthKind::Certificate,
        key_fingerprint: Some("SHA256:Jq3Xb5mW0cY1lG9yEw2uQv7p8Hn4s6Rt0aKzLdVxFcE".into()),
        cert_key_id: Some(format!("{user}@corp \"laptop\"")),
        cert_serial: Some(u64::MAX - 7),
        cert_ca_fingerprint: Some("SHA256:caCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAcaCAca0".into()),
        source_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42)),
        source_port: 65535,
        client_version: Some("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13".into()),
        target_id: target.to_owned(),
        target_name: Some(format!("name-of-{target}")),
        document: Some("AWS-StartInteractiveCommand".into()),
        parameters: Some(r#"{"command":["bash -l"],"ünïcode":"✓ 'quoted'"}"#.into()),
        justification: Some("INC-1234: disk full on web-1; it's urgent".into()),
        aws_reason: Some("ssmgate 6f1c… alice: INC-1234".into()),
        decision: Decision::Allow,
        policy_ids: vec!["ops-can-shell".into(), "weekday \"hours\"".into()],
        kind: SessionKind::Shell,
        recording: RecordingMode::Full,
        started_at,
        end: None,
        chain_head: None,
        // Any seal: the store keeps it, verification is not its job.
        start_seal: Some(Seal {
            key_id: "k20261102-3f9a".into(),
            mac: [0xc1; 32],
        }),
        backend: Some("sshd".into()),
        os_user: Some("ec2-user".into()),
        replica: None,
    }
}

/// A session with every optional field unset.
pub fn bare_session(user: &str, target: &str, started_at: DateTime<Utc>) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        ssm_session_id: None,
        user: user.to_owned(),
        auth_method: AuthKind::PublicKey,
        key_fingerprint: None,
        cert_key_id: None,
        cert_serial: None,
        cert_ca_fingerprint: None,
        source_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        source_port: 0,
        client_version: None,
        target_id: target.to_owned(),
        target_name: None,
        document: None,
        parameters: None,
        justification: None,
        aws_reason: None,
        decision: Decision::Deny,
        policy_ids: vec![],
        kind: SessionKind::Port,
        recording: RecordingMode::Metadata,
        started_at,
        end: None,
        chain_head: None,
        start_seal: None,
        backend: None,
        os_user: None,
        replica: None,
    }
}

/// An end with every field set.
pub fn end(at: DateTime<Utc>, head: Option<[u8; 32]>) -> SessionEnd {
    SessionEnd {
        ended_at: at,
        reason: EndReason::TargetExited,
        exit_status: Some(-3),
        bytes_in: 1 << 40,
        bytes_out: i64::MAX as u64,
        chain_head: head,
        chunk_count: Some(u64::MAX >> 1),
        seal: Some(Seal {
            key_id: "k.2_x-y".into(),
            mac: [0xe2; 32],
        }),
        cause: None,
    }
}

/// Events of every kind, with binary data.
pub fn events(i: u64) -> Vec<Event> {
    let ev = |offset_ms, kind, data: &[u8]| Event {
        offset_ms,
        kind,
        data: Bytes::copy_from_slice(data),
    };
    vec![
        ev(i * 1000, EventKind::Resize { cols: 80, rows: 24 }, b""),
        ev(
            i * 1000 + 1,
            EventKind::Output,
            b"\x1b[1;32m$ \x1b[0m\xff\xfe\x00",
        ),
        ev(
            i * 1000 + 2,
            EventKind::Input,
            format!("echo {i}\r").as_bytes(),
        ),
        ev(i * 1000 + 3, EventKind::ConnOpen { id: i }, b""),
        ev(
            i * 1000 + 4,
            EventKind::ConnClose {
                id: i,
                bytes_in: u64::MAX,
                bytes_out: 12,
            },
            b"",
        ),
        ev(i * 1000 + 5, EventKind::Exit { code: i32::MIN }, b""),
    ]
}

/// The recording key of the contract's sealed records.
pub fn key() -> SealKey {
    SealKey::new("contract", [0x42; 32]).unwrap()
}

/// `n` chunks of a session's chain (sealed with [`key`]), a millisecond
/// apart.
pub fn chain(session: &SessionRecord, n: u64) -> (Vec<EventChunk>, Option<[u8; 32]>) {
    let mut w = ChainWriter::sealed(session.id, key());
    let chunks = (0..n)
        .map(|i| {
            w.seal(
                session.started_at + Duration::milliseconds(i as i64 + 1),
                events(i),
            )
        })
        .collect();
    (chunks, w.head())
}

/// An audit event.
pub fn audit(
    kind: AuditKind,
    session: Option<Uuid>,
    at: DateTime<Utc>,
    detail: &str,
) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at,
        kind,
        user: Some("alice".into()),
        session_id: session,
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        detail: detail.to_owned(),
        link: None,
    }
}

/// A base time shared by a test (whole microseconds).
pub fn t0() -> DateTime<Utc> {
    now() - Duration::hours(1)
}
