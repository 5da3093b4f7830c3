//! The Postgres store: production, shared by several gateway replicas
//! (`postgres://user:password@host:port/db`). Its statements and row
//! mapping are [`SqlStore`]'s; this file connects and says how Postgres
//! stores ids and timestamps.
//!
//! Ids are `uuid`, timestamps `timestamptz` (microseconds), JSON columns
//! `json` (kept as written, queryable with `->>`). Replicas write disjoint
//! rows (each its own sessions, UUID keys), and chunk appends take only row
//! locks, so they do not contend. Migrations take sqlx's advisory lock, so
//! replicas starting together apply them once.

use std::future::Future;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Pool, Postgres};
use uuid::Uuid;

use super::dialect::{Dialect, Statements};
use super::sql::{Backend, SqlStore};
use super::store::{StoreError, StoreOptions};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The `LISTEN`/`NOTIFY` channel of kill requests and user locks.
const CLUSTER_CHANNEL: &str = "ssmgate_cluster";

/// Forwards the cluster channel's notices to `tx` (coalesced: one pending
/// is enough to wake the reader) until the reader goes away; reconnects
/// after a failure, and wakes the reader then too (a notice sent while
/// disconnected is lost: the reader rereads everything on a wake).
async fn listen_cluster(pool: Pool<Postgres>, tx: tokio::sync::mpsc::Sender<()>) {
    let mut failed = false;
    while !tx.is_closed() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                if !failed {
                    tracing::warn!(error = %e, "cluster notices: cannot listen; polling until it works");
                }
                failed = true;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CLUSTER_CHANNEL).await {
            tracing::warn!(error = %e, "cluster notices: LISTEN failed");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            continue;
        }
        if std::mem::take(&mut failed) {
            tracing::info!("cluster notices: listening again");
        }
        let _ = tx.try_send(());
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                n = listener.recv() => match n {
                    Ok(_) => { let _ = tx.try_send(()); }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster notices: connection lost; reconnecting");
                        failed = true;
                        break;
                    }
                }
            }
        }
    }
}

/// A store in a Postgres database.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects a pool to the database `url` names. Does not migrate;
    /// [`connect`](super::connect) does.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        // The parse error of a URL may quote it, password included: say only
        // what is wrong in general terms.
        let connect = PgConnectOptions::from_str(url).map_err(|_| StoreError::Invalid {
            what: "postgres URL",
            why: "cannot parse it (expected postgres://user:password@host:port/database)".into(),
        })?;
        // One direct attempt first: a pool retries until its timeout and
        // then reports only "timed out", where this says why (refused,
        // unknown host, authentication failed…).
        let probe = tokio::time::timeout(
            options.acquire_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .map_err(|_| StoreError::ConnectTimedOut(options.acquire_timeout))??;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self::from_pool(pool))
    }
}

impl Backend for Postgres {
    type Id = Uuid;
    type Time = DateTime<Utc>;

    const DIALECT: Dialect = Dialect {
        casts: true,
        no_limit: None,
        begin_write: None,
    };

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> =
            LazyLock::new(|| Statements::new(&Postgres::DIALECT));
        &STATEMENTS
    }

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn uuid(_what: &'static str, id: Uuid) -> Result<Uuid, StoreError> {
        Ok(id)
    }

    fn time(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }

    fn datetime(_what: &'static str, t: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        Ok(t)
    }

    async fn notify_cluster(pool: &Pool<Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CLUSTER_CHANNEL)
            .execute(pool)
            .await?;
        Ok(())
    }

    fn cluster_notices(pool: &Pool<Postgres>) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(listen_cluster(pool.clone(), tx));
        Some(rx)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn migrate(
        pool: &Pool<Postgres>,
    ) -> impl Future<Output = Result<(), MigrateError>> + Send + '_ {
        MIGRATOR.run(pool)
    }
}
