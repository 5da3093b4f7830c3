//! The rows replicas share to see each other (migration 0005): replicas
//! with their heartbeats, requests to kill a session, and locked users —
//! their types, and the statements both SQL backends run for them (the
//! same text in both dialects: ids are UUID text, times fixed-width RFC
//! 3339 text with microseconds, so text order is time order).

use chrono::{DateTime, Utc};
use sqlx::{Database, Pool};
use uuid::Uuid;

use sqlx::{ColumnIndex, Executor, IntoArguments};

use super::sql::{Backend, Param};
use super::store::StoreError;

/// A gateway replica as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    /// New at every start.
    pub id: Uuid,
    /// Where users reach it (`[cluster] advertise`, or host:port).
    pub address: String,
    /// Its `ssmgate` version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped cleanly; `None` while running (or if it died).
    pub stopped_at: Option<DateTime<Utc>>,
}

/// A request to end a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillRow {
    /// The request's id.
    pub id: Uuid,
    /// The session to end.
    pub session_id: Uuid,
    /// The replica that runs it, when the session record says.
    pub replica_id: Option<Uuid>,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// Who asked (`user@host` of the command line, or `user lock`).
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// When the replica acted on it.
    pub done_at: Option<DateTime<Utc>>,
    /// What it found (`ended`, `not_live`).
    pub outcome: Option<String>,
}

/// A user refused new sessions until unlocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    /// The user's name.
    pub user: String,
    /// When.
    pub locked_at: DateTime<Utc>,
    /// Who locked them.
    pub locked_by: String,
    /// Why.
    pub reason: String,
}

/// A time as the text-time tables store it (these and `reason_grants`).
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(what: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(what, e))
}

fn parse_id(what: &'static str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::corrupt(what, e))
}

type ReplicaColumns = (String, String, String, String, String, Option<String>);
type KillColumns = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// The columns of `session_kills`, in [`KillColumns`]' order.
macro_rules! kill_columns {
    () => {
        "id, session_id, replica_id, requested_at, requested_by, reason, done_at, outcome"
    };
}

fn kill_row(c: KillColumns) -> Result<KillRow, StoreError> {
    Ok(KillRow {
        id: parse_id("session_kills.id", &c.0)?,
        session_id: parse_id("session_kills.session_id", &c.1)?,
        replica_id: c
            .2
            .as_deref()
            .map(|r| parse_id("session_kills.replica_id", r))
            .transpose()?,
        requested_at: parse_time("session_kills.requested_at", &c.3)?,
        requested_by: c.4,
        reason: c.5,
        done_at: c
            .6
            .as_deref()
            .map(|t| parse_time("session_kills.done_at", t))
            .transpose()?,
        outcome: c.7,
    })
}

/// The cluster statements over one pool (Postgres or SQLite).
pub(crate) struct ClusterSql<'a, DB: Database>(pub &'a Pool<DB>);

impl<DB> ClusterSql<'_, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    String: Param<DB>,
    Option<String>: Param<DB>,
{
    pub async fn upsert_replica(&self, r: &ReplicaRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replicas (id, address, version, started_at, heartbeat_at, stopped_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at",
        )
        .bind(r.id.to_string())
        .bind(r.address.clone())
        .bind(r.version.clone())
        .bind(time_text(r.started_at))
        .bind(time_text(r.heartbeat_at))
        .bind(r.stopped_at.map(time_text))
        .execute(self.0)
        .await?;
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        let rows: Vec<ReplicaColumns> = sqlx::query_as(
            "SELECT id, address, version, started_at, heartbeat_at, stopped_at FROM replicas \
             ORDER BY started_at, id",
        )
        .fetch_all(self.0)
        .await?;
        rows.into_iter()
            .map(|c| {
                Ok(ReplicaRow {
                    id: parse_id("replicas.id", &c.0)?,
                    address: c.1,
                    version: c.2,
                    started_at: parse_time("replicas.started_at", &c.3)?,
                    heartbeat_at: parse_time("replicas.heartbeat_at", &c.4)?,
                    stopped_at: c
                        .5
                        .as_deref()
                        .map(|t| parse_time("replicas.stopped_at", t))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Stores a kill request; false when one with its id exists already.
    pub async fn insert_kill(&self, k: &KillRow) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "INSERT INTO session_kills (",
            kill_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(k.id.to_string())
        .bind(k.session_id.to_string())
        .bind(k.replica_id.map(|r| r.to_string()))
        .bind(time_text(k.requested_at))
        .bind(k.requested_by.clone())
        .bind(k.reason.clone())
        .bind(k.done_at.map(time_text))
        .bind(k.outcome.clone())
        .execute(self.0)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub async fn pending_kills(&self, replica: Uuid) -> Result<Vec<KillRow>, StoreError> {
        let rows: Vec<KillColumns> = sqlx::query_as(concat!(
            "SELECT ",
            kill_columns!(),
            " FROM session_kills WHERE replica_id = $1 AND done_at IS NULL \
             ORDER BY requested_at, id"
        ))
        .bind(replica.to_string())
        .fetch_all(self.0)
        .await?;
        rows.into_iter().map(kill_row).collect()
    }

    pub async fn get_kill(&self, id: Uuid) -> Result<Option<KillRow>, StoreError> {
        let row: Option<KillColumns> = sqlx::query_as(concat!(
            "SELECT ",
            kill_columns!(),
            " FROM session_kills WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.0)
        .await?;
        row.map(kill_row).transpose()
    }

    pub async fn complete_kill(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE session_kills SET done_at = $2, outcome = $3 WHERE id = $1 AND done_at IS NULL",
        )
        .bind(id.to_string())
        .bind(time_text(at))
        .bind(outcome.to_owned())
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// Locks a user; false when they were locked already (kept as it was).
    pub async fn lock_user(&self, l: &LockRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO user_locks (user_name, locked_at, locked_by, reason) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO NOTHING",
        )
        .bind(l.user.clone())
        .bind(time_text(l.locked_at))
        .bind(l.locked_by.clone())
        .bind(l.reason.clone())
        .execute(self.0)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Unlocks a user; false when they were not locked.
    pub async fn unlock_user(&self, user: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM user_locks WHERE user_name = $1")
            .bind(user.to_owned())
            .execute(self.0)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub async fn user_locks(&self) -> Result<Vec<LockRow>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT user_name, locked_at, locked_by, reason FROM user_locks ORDER BY user_name",
        )
        .fetch_all(self.0)
        .await?;
        rows.into_iter()
            .map(|(user, at, by, reason)| {
                Ok(LockRow {
                    user,
                    locked_at: parse_time("user_locks.locked_at", &at)?,
                    locked_by: by,
                    reason,
                })
            })
            .collect()
    }
}
