//! The SQLite store: the embedded default (`sqlite://path/to/file.db`,
//! created if missing; `sqlite::memory:` for throwaway use). Its statements
//! and row mapping are [`SqlStore`]'s; this file opens the database and
//! says how SQLite stores ids and timestamps.
//!
//! Ids are stored as hyphenated UUID text and timestamps as fixed-width
//! UTC text (`2026-11-02T10:11:12.123456Z`), so the file reads well in the
//! `sqlite3` shell and text order is time order. The file runs in WAL mode
//! with `synchronous = FULL` (a committed event survives a power cut);
//! write transactions start with `BEGIN IMMEDIATE` and wait up to the busy
//! timeout for another writer.

use std::future::Future;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};
use uuid::Uuid;

use super::dialect::{Dialect, Statements};
use super::sql::{Backend, SqlStore};
use super::store::{StoreError, StoreOptions};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another one to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A store in a SQLite database.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
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
        let on_disk = !memory && parent_exists;
        if on_disk {
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
        if on_disk {
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
        Ok(Self::from_pool(pool))
    }
}

impl Backend for Sqlite {
    type Id = String;
    type Time = String;

    const DIALECT: Dialect = Dialect {
        casts: false,
        no_limit: Some(-1),
        begin_write: Some("BEGIN IMMEDIATE"),
    };

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> =
            LazyLock::new(|| Statements::new(&Sqlite::DIALECT));
        &STATEMENTS
    }

    fn id(id: Uuid) -> String {
        id.to_string()
    }

    fn uuid(what: &'static str, id: String) -> Result<Uuid, StoreError> {
        Uuid::parse_str(&id).map_err(|e| StoreError::corrupt(what, format!("{id:?}: {e}")))
    }

    /// Fixed-width UTC text with microseconds.
    fn time(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    fn datetime(what: &'static str, t: String) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::corrupt(what, format!("{t:?}: {e}")))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn migrate(pool: &Pool<Sqlite>) -> impl Future<Output = Result<(), MigrateError>> + Send + '_ {
        MIGRATOR.run(pool)
    }
}
