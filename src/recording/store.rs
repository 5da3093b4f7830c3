//! The [`Store`] trait every recording backend implements, its error type,
//! and [`connect`], which picks the backend from the database URL
//! (`postgres://…` / `postgresql://…` or `sqlite://path` / `sqlite::memory:`)
//! and applies the migrations.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cluster::{KillRow, LockRow, ReplicaRow};
use super::codec::DecodeError;
use super::postgres::PgStore;
use super::records::{AuditEvent, EventChunk, GrantRow, SessionEnd, SessionFilter, SessionRecord};
use super::sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database (only its scheme is shown: URLs
    /// may carry passwords).
    #[error(
        "unsupported database URL scheme {scheme:?}: use postgres://user@host/db, sqlite://path/to/file.db or sqlite::memory:"
    )]
    UnsupportedUrl {
        /// The part before `:`.
        scheme: String,
    },
    /// The database could not be reached or the connection failed; worth
    /// retrying later (see [`StoreError::is_unavailable`]).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Connecting took longer than the acquire timeout.
    #[error("database unavailable: no connection within {0:?}")]
    ConnectTimedOut(Duration),
    /// The SQLite database file could not be opened or created.
    #[error("cannot open SQLite database {path}: {source}")]
    SqliteOpen {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No session with this id.
    #[error("no session {0}")]
    SessionNotFound(Uuid),
    /// The session id is stored already, with other content.
    #[error("session {0} is already stored with different content")]
    SessionConflict(Uuid),
    /// The chunk's seq is stored already, with another hash.
    #[error("chunk {seq} of session {session_id} is already stored with a different hash")]
    ChunkConflict {
        /// The session.
        session_id: Uuid,
        /// The chunk.
        seq: i64,
    },
    /// A stored chunk cannot be read back (damaged or edited to garbage).
    #[error("chunk {seq} of session {session_id} is unreadable: {why}")]
    CorruptChunk {
        /// The session.
        session_id: Uuid,
        /// The chunk.
        seq: i64,
        /// What is wrong.
        why: String,
    },
    /// A stored row holds a value this version cannot read.
    #[error("invalid stored {what}: {why}")]
    CorruptRow {
        /// Which column.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A value to store is not acceptable (e.g. detail that is not JSON).
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
}

impl StoreError {
    /// True when the database could not be reached (connection refused,
    /// dropped, pool timeout): the write may succeed later, so spool it.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::ConnectTimedOut(_))
    }

    pub(crate) fn corrupt_chunk(session_id: Uuid, seq: i64, why: impl ToString) -> Self {
        Self::CorruptChunk {
            session_id,
            seq,
            why: why.to_string(),
        }
    }

    pub(crate) fn corrupt(what: &'static str, why: impl ToString) -> Self {
        Self::CorruptRow {
            what,
            why: why.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            ref db if is_transient_db_error(db) => Self::Unavailable(e),
            other => Self::Database(other),
        }
    }
}

/// Server-side errors that mean "not now" rather than "never": Postgres
/// connection exceptions (class 08), shutdown or start-up in progress
/// (57P01–57P03, sent to open connections by `pg_ctl stop`), too many
/// connections or out of resources (class 53), and SQLite's busy/locked.
fn is_transient_db_error(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    code.starts_with("08")
        || code.starts_with("57P")
        || code.starts_with("53")
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended codes
        // (SQLite codes are short numbers; SQLSTATEs are 5 characters).
        || (code.len() < 5 && matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6)))
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        Self::corrupt("events", e)
    }
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections the pool opens (forced to 1 for `sqlite::memory:`).
    pub max_connections: u32,
    /// How long an operation waits for a connection (including connecting)
    /// before failing with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Where sessions, their events and the audit trail are kept.
///
/// Every write is idempotent, so a writer that is unsure whether a write
/// landed (timeout, spool replay) may simply repeat it.
/// One write of a recording, borrowed: what [`Store::write`] applies.
/// Every kind is idempotent.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// A session's row at its start.
    Session(&'a SessionRecord),
    /// A sealed chunk of a session's events.
    Chunk(&'a EventChunk),
    /// How a session ended.
    Finish(Uuid, &'a SessionEnd),
    /// An audit event.
    Audit(&'a AuditEvent),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies the pending migrations (also done by [`connect`]).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Applies writes in order, in one transaction: all or none. Each is
    /// as the single-write method of its kind below describes.
    async fn write(&self, writes: &[Write<'_>]) -> Result<(), StoreError>;

    /// Records a session at its start. Repeating it with the same content is
    /// a no-op; with other content it is [`StoreError::SessionConflict`].
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.write(&[Write::Session(s)]).await
    }

    /// Records how a session ended; `end.chain_head` (when set) becomes the
    /// session's chain head; `end.chunk_count` and `end.seal` are stored
    /// with it. An unknown session is [`StoreError::SessionNotFound`].
    async fn finish_session(&self, id: Uuid, end: &SessionEnd) -> Result<(), StoreError> {
        self.write(&[Write::Finish(id, end)]).await
    }

    /// Stores one chunk and, when it is the session's latest, makes its
    /// hash the session's chain head (in the same transaction). Idempotent
    /// on `(session_id, seq)`: the same chunk again is a no-op, another
    /// hash for a stored seq is [`StoreError::ChunkConflict`], an unknown
    /// session is [`StoreError::SessionNotFound`].
    async fn append_chunk(&self, chunk: &EventChunk) -> Result<(), StoreError> {
        self.write(&[Write::Chunk(chunk)]).await
    }

    /// Stores consecutive chunks (of one or several sessions) in one
    /// transaction: all or none. Each is as [`Store::append_chunk`].
    async fn append_chunks(&self, chunks: &[EventChunk]) -> Result<(), StoreError> {
        let writes: Vec<Write<'_>> = chunks.iter().map(Write::Chunk).collect();
        self.write(&writes).await
    }

    /// Records an audit event; idempotent on its id. `detail` must be JSON.
    async fn insert_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        self.write(&[Write::Audit(e)]).await
    }

    /// One session with its end and chain head.
    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError>;

    /// Sessions matching the filter, newest first.
    async fn list_sessions(&self, filter: &SessionFilter)
    -> Result<Vec<SessionRecord>, StoreError>;

    /// A session's chunks in seq order. A chunk whose stored bytes cannot be
    /// decoded is [`StoreError::CorruptChunk`] naming its seq.
    async fn chunks(&self, id: Uuid) -> Result<Vec<EventChunk>, StoreError>;

    /// The audit events naming a session, oldest first (ties in insertion
    /// order).
    async fn audit_for_session(&self, id: Uuid) -> Result<Vec<AuditEvent>, StoreError>;

    /// The ids of the audit chains present (see
    /// [`AuditLink`](super::records::AuditLink)), in the order their first
    /// rows were stored.
    async fn audit_chain_ids(&self) -> Result<Vec<Uuid>, StoreError>;

    /// One audit chain's events, by sequence number (ties in insertion
    /// order).
    async fn audit_chain(&self, chain_id: Uuid) -> Result<Vec<AuditEvent>, StoreError>;

    /// How many audit events belong to no chain (stored before sealing, or
    /// without a key).
    async fn unchained_audit_count(&self) -> Result<u64, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Registers a replica, or updates its heartbeat and stop time.
    async fn upsert_replica(&self, r: &ReplicaRow) -> Result<(), StoreError>;

    /// Every registered replica, oldest first.
    async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError>;

    /// Stores a kill request; false when one with its id exists already
    /// (a replica closing an orphan claims it with the session's id).
    async fn insert_kill(&self, k: &KillRow) -> Result<bool, StoreError>;

    /// The kill requests for `replica` not yet acted on, oldest first.
    async fn pending_kills(&self, replica: Uuid) -> Result<Vec<KillRow>, StoreError>;

    /// One kill request.
    async fn get_kill(&self, id: Uuid) -> Result<Option<KillRow>, StoreError>;

    /// Marks a kill request as acted on.
    async fn complete_kill(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError>;

    /// Locks a user; false when they were locked already.
    async fn lock_user(&self, l: &LockRow) -> Result<bool, StoreError>;

    /// Unlocks a user; false when they were not locked.
    async fn unlock_user(&self, user: &str) -> Result<bool, StoreError>;

    /// Every locked user.
    async fn user_locks(&self) -> Result<Vec<LockRow>, StoreError>;

    /// Tells every replica listening that kill requests or locks changed
    /// (Postgres `NOTIFY`; SQLite has none: replicas poll).
    async fn notify_cluster(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A stream of such notices, where the database has them (Postgres
    /// `LISTEN`, reconnecting on its own); `None` means poll.
    fn cluster_notices(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }

    /// The host key pinned for `target_id` (an OpenSSH public key line),
    /// pinning `offered` first if the target has none yet (first use).
    /// The answer may differ from `offered`: the caller compares.
    async fn pin_host_key(
        &self,
        target_id: &str,
        offered: &str,
        fingerprint: &str,
    ) -> Result<String, StoreError>;

    /// Stores a new reason grant.
    async fn insert_grant(&self, grant: &GrantRow) -> Result<(), StoreError>;

    /// `user`'s grants that are neither expired at `now` nor revoked,
    /// newest first.
    async fn live_grants(
        &self,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantRow>, StoreError>;

    /// How many grants, of every user, are neither expired at `now` nor
    /// revoked (the `ssmgate_reason_grants_live` metric).
    async fn count_live_grants(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Revokes `user`'s live grants at `now` (only `id`, when given);
    /// returns the ids revoked.
    async fn revoke_grants(
        &self,
        user: &str,
        id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;
}

/// Opens the store `url` names with default options and applies the
/// migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, &StoreOptions::default()).await
}

/// Opens the store `url` names and applies the migrations.
pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match scheme(url) {
        "postgres" | "postgresql" => Arc::new(PgStore::connect(url, options).await?),
        "sqlite" => Arc::new(SqliteStore::connect(url, options).await?),
        other => {
            return Err(StoreError::UnsupportedUrl {
                scheme: other.to_owned(),
            });
        }
    };
    store.migrate().await?;
    Ok(store)
}

/// True when `e` is a foreign key violation (a chunk for an unknown session),
/// the same for both backends.
pub(crate) fn is_fk_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The URL's scheme, lower-cased bytes before the first `:` (empty if none).
fn scheme(url: &str) -> &str {
    match url.split_once(':') {
        Some((s, _)) if s.eq_ignore_ascii_case("postgres") => "postgres",
        Some((s, _)) if s.eq_ignore_ascii_case("postgresql") => "postgresql",
        Some((s, _)) if s.eq_ignore_ascii_case("sqlite") => "sqlite",
        Some((s, _)) if s.len() <= 32 => s,
        _ => "",
    }
}

/// Checks that `text` is JSON (for parameters and audit details).
pub(crate) fn check_json(what: &'static str, text: &str) -> Result<(), StoreError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| StoreError::Invalid {
            what,
            why: format!("not JSON: {e}"),
        })
}

/// `u64` → `i64` column, refusing values beyond `i64::MAX`.
pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid {
        what,
        why: format!("{v} is too large to store"),
    })
}

/// `i64` column → `u64`.
pub(crate) fn to_u64(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(what, format!("negative: {v}")))
}

/// A 32-byte hash column.
pub(crate) fn to_hash(what: &'static str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| StoreError::corrupt(what, format!("{} bytes, not 32", v.len())))
}

/// Parses a text column with `FromStr`.
pub(crate) fn parse<T>(what: &'static str, v: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    v.parse::<T>().map_err(|e| StoreError::corrupt(what, e))
}

/// The policy ids as a JSON array.
pub(crate) fn policy_ids_json(ids: &[String]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

/// The policy ids from their JSON array.
pub(crate) fn policy_ids_from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt("policy_ids", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(scheme("postgres://u:pw@h/db"), "postgres");
        assert_eq!(scheme("PostgreSQL://h/db"), "postgresql");
        assert_eq!(scheme("sqlite::memory:"), "sqlite");
        assert_eq!(scheme("sqlite:///var/lib/x.db"), "sqlite");
        assert_eq!(scheme("mysql://root:secret@h/db"), "mysql");
        assert_eq!(scheme("/just/a/path"), "");
    }

    #[test]
    fn urls_are_redacted_for_display() {
        assert_eq!(
            redact_url("postgres://gw:s3cret@db:5432/ssmgate"),
            "postgres://gw:***@db:5432/ssmgate"
        );
        assert_eq!(redact_url("postgres://db/ssmgate"), "postgres://db/ssmgate");
        assert_eq!(
            redact_url("sqlite:///var/lib/ssmgate.db"),
            "sqlite:///var/lib/ssmgate.db"
        );
    }

    #[tokio::test]
    async fn unsupported_url_is_a_clear_error_without_the_password() {
        let err = connect("mysql://root:hunter2@db/x").await.err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
        assert!(text.contains("\"mysql\""), "{text}");
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn helpers_refuse_bad_values() {
        assert!(check_json("detail", "{\"a\":1}").is_ok());
        assert!(check_json("detail", "{oops").is_err());
        assert!(to_i64("bytes_in", u64::MAX).is_err());
        assert!(to_u64("bytes_in", -1).is_err());
        assert!(to_hash("hash", vec![0; 31]).is_err());
        assert_eq!(policy_ids_json(&["a\"b".into()]), "[\"a\\\"b\"]");
        assert_eq!(
            policy_ids_from_json("[\"p1\",\"p2\"]").unwrap(),
            vec!["p1".to_owned(), "p2".to_owned()]
        );
    }
}
