//! The SQLite store: the embedded default (`sqlite://path/to/file.db`,
//! created if missing; `sqlite::memory:` for throwaway use).
//!
//! Ids are stored as hyphenated UUID text and timestamps as fixed-width
//! UTC text (`2026-11-02T10:11:12.123456Z`), so the file reads well in the
//! `sqlite3` shell and text order is time order. The file runs in WAL mode
//! with `synchronous = FULL` (a committed event survives a power cut);
//! write transactions start with `BEGIN IMMEDIATE` and wait up to the busy
//! timeout for another writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

use super::store::is_fk_violation;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use uuid::Uuid;

use super::records::{AuditEvent, EventChunk, SessionEnd, SessionFilter, SessionRecord};
use super::rows::{AuditRow, ChunkRow, EndRow, SessionRow, same_start};
use super::store::{Store, StoreError, StoreOptions, to_u64};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another one to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Columns of `sessions`, in [`session_from_row`] order.
macro_rules! session_columns {
    () => {
        "id, ssm_session_id, user_name, auth_method, key_fingerprint, cert_key_id, cert_serial, \
         cert_ca_fingerprint, source_ip, source_port, client_version, target_id, target_name, \
         document, parameters, justification, aws_reason, decision, policy_ids, kind, recording, \
         started_at, ended_at, end_reason, exit_status, bytes_in, bytes_out, chain_head, \
         start_seal, end_seal, chunk_count"
    };
}

/// Columns of `audit_events`, in [`audit_from_row`] order.
macro_rules! audit_columns {
    () => {
        "id, at, kind, user_name, session_id, source_ip, detail, chain_id, chain_seq, seal"
    };
}

/// A store in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database `url` names. Does not
    /// migrate; [`connect`](super::connect) does.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid {
                what: "sqlite URL",
                why: e.to_string(),
            })?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let parent_exists = connect
            .get_filename()
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
        // A missing directory is left for SQLite to report, naming the path.
        if !memory && parent_exists {
            connect = connect.journal_mode(SqliteJournalMode::Wal);
        }
        let mut pool = SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout);
        pool = if memory {
            // One database per connection: keep exactly one, forever.
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool.max_connections(options.max_connections.max(1))
        };
        let path = connect.get_filename().display().to_string();
        let parent_exists = connect
            .get_filename()
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
        // A missing directory is left for SQLite to report, naming the path.
        if !memory && parent_exists {
            // Owner-only before SQLite creates it; its WAL and shm files
            // take the database file's mode.
            crate::private_files::ensure_file(connect.get_filename()).map_err(|e| {
                StoreError::Invalid {
                    what: "sqlite database file",
                    why: format!("{path}: {e}"),
                }
            })?;
        }
        let pool =
            pool.connect_with(connect)
                .await
                .map_err(|source| match StoreError::from(source) {
                    StoreError::Database(source) => StoreError::SqliteOpen { path, source },
                    other => other,
                })?;
        Ok(Self { pool })
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A timestamp as stored: fixed-width UTC text with microseconds.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(what: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(what, format!("{s:?}: {e}")))
}

fn parse_uuid(what: &'static str, s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::corrupt(what, format!("{s:?}: {e}")))
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let ended_at: Option<String> = row.try_get("ended_at")?;
    let end = EndRow::from_columns(
        ended_at.map(|t| parse_ts("ended_at", &t)).transpose()?,
        row.try_get("end_reason")?,
        row.try_get("exit_status")?,
        (row.try_get("bytes_in")?, row.try_get("bytes_out")?),
        (row.try_get("chunk_count")?, row.try_get("end_seal")?),
    )?;
    let id: String = row.try_get("id")?;
    let started_at: String = row.try_get("started_at")?;
    SessionRow {
        id: parse_uuid("session id", &id)?,
        ssm_session_id: row.try_get("ssm_session_id")?,
        user_name: row.try_get("user_name")?,
        auth_method: row.try_get("auth_method")?,
        key_fingerprint: row.try_get("key_fingerprint")?,
        cert_key_id: row.try_get("cert_key_id")?,
        cert_serial: row.try_get("cert_serial")?,
        cert_ca_fingerprint: row.try_get("cert_ca_fingerprint")?,
        source_ip: row.try_get("source_ip")?,
        source_port: row.try_get("source_port")?,
        client_version: row.try_get("client_version")?,
        target_id: row.try_get("target_id")?,
        target_name: row.try_get("target_name")?,
        document: row.try_get("document")?,
        parameters: row.try_get("parameters")?,
        justification: row.try_get("justification")?,
        aws_reason: row.try_get("aws_reason")?,
        decision: row.try_get("decision")?,
        policy_ids: row.try_get("policy_ids")?,
        kind: row.try_get("kind")?,
        recording: row.try_get("recording")?,
        started_at: parse_ts("started_at", &started_at)?,
        end,
        chain_head: row.try_get("chain_head")?,
        start_seal: row.try_get("start_seal")?,
    }
    .into_record()
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let id: String = row.try_get("id")?;
    let at: String = row.try_get("at")?;
    let session_id: Option<String> = row.try_get("session_id")?;
    let chain_id: Option<String> = row.try_get("chain_id")?;
    AuditRow {
        id: parse_uuid("audit id", &id)?,
        at: parse_ts("audit at", &at)?,
        kind: row.try_get("kind")?,
        user_name: row.try_get("user_name")?,
        session_id: session_id
            .map(|s| parse_uuid("audit session_id", &s))
            .transpose()?,
        source_ip: row.try_get("source_ip")?,
        detail: row.try_get("detail")?,
        chain_id: chain_id
            .map(|s| parse_uuid("audit chain_id", &s))
            .transpose()?,
        chain_seq: row.try_get("chain_seq")?,
        seal: row.try_get("seal")?,
    }
    .into_event()
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let r = SessionRow::from_record(s)?;
        let end = r.end.as_ref();
        let done = sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(r.id.to_string())
        .bind(&r.ssm_session_id)
        .bind(&r.user_name)
        .bind(&r.auth_method)
        .bind(&r.key_fingerprint)
        .bind(&r.cert_key_id)
        .bind(&r.cert_serial)
        .bind(&r.cert_ca_fingerprint)
        .bind(&r.source_ip)
        .bind(r.source_port)
        .bind(&r.client_version)
        .bind(&r.target_id)
        .bind(&r.target_name)
        .bind(&r.document)
        .bind(&r.parameters)
        .bind(&r.justification)
        .bind(&r.aws_reason)
        .bind(&r.decision)
        .bind(&r.policy_ids)
        .bind(&r.kind)
        .bind(&r.recording)
        .bind(ts(r.started_at))
        .bind(end.map(|e| ts(e.ended_at)))
        .bind(end.map(|e| e.end_reason.clone()))
        .bind(end.and_then(|e| e.exit_status))
        .bind(end.map(|e| e.bytes_in))
        .bind(end.map(|e| e.bytes_out))
        .bind(&r.chain_head)
        .bind(&r.start_seal)
        .bind(end.and_then(|e| e.end_seal.clone()))
        .bind(end.and_then(|e| e.chunk_count))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            match self.get_session(s.id).await? {
                Some(stored) if same_start(&stored, s) => {}
                _ => return Err(StoreError::SessionConflict(s.id)),
            }
        }
        Ok(())
    }

    async fn finish_session(&self, id: Uuid, end: &SessionEnd) -> Result<(), StoreError> {
        let e = EndRow::from_end(end)?;
        let done = sqlx::query(
            "UPDATE sessions SET ended_at = ?2, end_reason = ?3, exit_status = ?4, \
             bytes_in = ?5, bytes_out = ?6, chain_head = COALESCE(?7, chain_head), \
             chunk_count = ?8, end_seal = ?9 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(ts(e.ended_at))
        .bind(&e.end_reason)
        .bind(e.exit_status)
        .bind(e.bytes_in)
        .bind(e.bytes_out)
        .bind(&e.chain_head)
        .bind(e.chunk_count)
        .bind(&e.end_seal)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::SessionNotFound(id));
        }
        Ok(())
    }

    async fn append_chunk(&self, chunk: &EventChunk) -> Result<(), StoreError> {
        self.append_chunks(std::slice::from_ref(chunk)).await
    }

    async fn append_chunks(&self, chunks: &[EventChunk]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in chunks {
            insert_chunk(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let a = AuditRow::from_event(e)?;
        sqlx::query(concat!(
            "INSERT INTO audit_events (",
            audit_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(a.id.to_string())
        .bind(ts(a.at))
        .bind(&a.kind)
        .bind(&a.user_name)
        .bind(a.session_id.map(|s| s.to_string()))
        .bind(&a.source_ip)
        .bind(&a.detail)
        .bind(a.chain_id.map(|c| c.to_string()))
        .bind(a.chain_seq)
        .bind(&a.seal)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ?1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions \
             WHERE (?1 IS NULL OR user_name = ?1) \
             AND (?2 IS NULL OR target_id = ?2 OR target_name = ?2) \
             AND (?3 IS NULL OR started_at >= ?3) \
             AND (?4 = 0 OR ended_at IS NULL) \
             ORDER BY started_at DESC, id LIMIT ?5"
        ))
        .bind(&filter.user)
        .bind(&filter.target)
        .bind(filter.since.map(ts))
        .bind(filter.live_only)
        .bind(filter.limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn chunks(&self, id: Uuid) -> Result<Vec<EventChunk>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, created_at, events, prev_hash, hash, seal FROM session_chunks \
             WHERE session_id = ?1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                let created_at: String = row.try_get("created_at")?;
                ChunkRow {
                    session_id: id,
                    seq,
                    created_at: parse_ts("created_at", &created_at)
                        .map_err(|e| StoreError::corrupt_chunk(id, seq, e))?,
                    events: row.try_get("events")?,
                    prev_hash: row.try_get("prev_hash")?,
                    hash: row.try_get("hash")?,
                    seal: row.try_get("seal")?,
                }
                .into_chunk()
            })
            .collect()
    }

    async fn audit_for_session(&self, id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE session_id = ?1 ORDER BY at, n"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_chain_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT chain_id FROM audit_events WHERE chain_id IS NOT NULL \
             GROUP BY chain_id ORDER BY min(n)",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.iter()
            .map(|id| parse_uuid("audit chain_id", id))
            .collect()
    }

    async fn audit_chain(&self, chain_id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE chain_id = ?1 ORDER BY chain_seq, n"
        ))
        .bind(chain_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn unchained_audit_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE chain_id IS NULL")
            .fetch_one(&self.pool)
            .await?;
        to_u64("audit count", n)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Stores one chunk inside `tx` and advances the session's head when it is
/// the latest; see [`Store::append_chunk`].
async fn insert_chunk(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    chunk: &EventChunk,
) -> Result<(), StoreError> {
    let c = ChunkRow::from_chunk(chunk)?;
    let sid = c.session_id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO session_chunks (session_id, seq, created_at, events, prev_hash, hash, seal) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (session_id, seq) DO NOTHING",
    )
    .bind(&sid)
    .bind(c.seq)
    .bind(ts(c.created_at))
    .bind(&c.events)
    .bind(&c.prev_hash)
    .bind(&c.hash)
    .bind(&c.seal)
    .execute(&mut **tx)
    .await;
    let inserted = match inserted {
        Ok(done) => done.rows_affected() == 1,
        Err(e) if is_fk_violation(&e) => return Err(StoreError::SessionNotFound(c.session_id)),
        Err(e) => return Err(e.into()),
    };
    if inserted {
        sqlx::query(
            "UPDATE sessions SET chain_head = ?2 WHERE id = ?1 AND NOT EXISTS \
                 (SELECT 1 FROM session_chunks WHERE session_id = ?1 AND seq > ?3)",
        )
        .bind(&sid)
        .bind(&c.hash)
        .bind(c.seq)
        .execute(&mut **tx)
        .await?;
    } else {
        let stored: Vec<u8> = sqlx::query_scalar(
            "SELECT hash FROM session_chunks WHERE session_id = ?1 AND seq = ?2",
        )
        .bind(&sid)
        .bind(c.seq)
        .fetch_one(&mut **tx)
        .await?;
        if stored != c.hash {
            return Err(StoreError::ChunkConflict {
                session_id: c.session_id,
                seq: c.seq,
            });
        }
    }
    Ok(())
}
