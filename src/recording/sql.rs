//! The [`Store`] both SQL backends share: [`SqlStore`] runs the
//! [`Statements`] of its backend's [`Dialect`], binds the column forms of
//! [`rows`](super::rows) and maps rows back, for any database that
//! implements [`Backend`] (Postgres in [`postgres`](super::postgres), SQLite
//! in [`sqlite`](super::sqlite)). A backend only says how it connects and
//! how ids and timestamps are stored.

use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use uuid::Uuid;

use super::cluster::{ClusterSql, KillRow, LockRow, ReplicaRow, time_text};
use super::dialect::{Dialect, Statements};
use super::records::{AuditEvent, EventChunk, GrantRow, SessionFilter, SessionRecord};
use super::rows::{AuditRow, ChunkRow, EndRow, SessionRow, same_start};
use super::store::{Store, StoreError, Write, is_fk_violation, to_u64};

/// A Rust value that a column of `DB` takes and gives back.
pub(crate) trait Param<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

impl<DB: Database, T> Param<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

/// What a database brings to [`SqlStore`]: its dialect, and how it stores
/// ids and timestamps.
pub(crate) trait Backend: Database {
    /// An id as bound and read (a UUID, or its text).
    type Id: Param<Self> + Unpin;
    /// A timestamp as bound and read (a `timestamptz`, or fixed-width text).
    type Time: Param<Self> + Unpin;

    /// How this backend's SQL differs.
    const DIALECT: Dialect;

    /// The statements in [`Backend::DIALECT`], built once.
    fn statements() -> &'static Statements;

    /// The id as stored.
    fn id(id: Uuid) -> Self::Id;

    /// The stored id; `what` names the column in errors.
    fn uuid(what: &'static str, id: Self::Id) -> Result<Uuid, StoreError>;

    /// The timestamp as stored.
    fn time(t: DateTime<Utc>) -> Self::Time;

    /// The stored timestamp; `what` names the column in errors.
    fn datetime(what: &'static str, t: Self::Time) -> Result<DateTime<Utc>, StoreError>;

    /// The rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Wakes the replicas listening for cluster notices (Postgres
    /// `NOTIFY`; nothing elsewhere).
    fn notify_cluster(
        _pool: &Pool<Self>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        std::future::ready(Ok(()))
    }

    /// Listens for cluster notices (Postgres `LISTEN`); `None`: poll.
    fn cluster_notices(_pool: &Pool<Self>) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }

    /// Applies this backend's pending migrations.
    fn migrate(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send + '_;
}

/// A store in a SQL database: [`PgStore`](super::PgStore) or
/// [`SqliteStore`](super::SqliteStore).
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store over a connected pool (not migrated).
    pub(crate) fn from_pool(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("pool", &self.pool)
            .finish()
    }
}

/// Row mapping, for the [`Store`] impl below.
struct Rows<DB>(PhantomData<DB>);

impl<DB> Rows<DB>
where
    DB: Backend,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    String: Param<DB>,
    i32: Param<DB>,
    i64: Param<DB>,
    Vec<u8>: Param<DB>,
{
    fn session(row: &DB::Row) -> Result<SessionRecord, StoreError> {
        let ended_at: Option<DB::Time> = row.try_get("ended_at")?;
        let end = EndRow::from_columns(
            ended_at.map(|t| DB::datetime("ended_at", t)).transpose()?,
            row.try_get("end_reason")?,
            row.try_get("exit_status")?,
            (row.try_get("bytes_in")?, row.try_get("bytes_out")?),
            (
                row.try_get("chunk_count")?,
                row.try_get("end_seal")?,
                row.try_get("end_cause")?,
            ),
        )?;
        let replica: Option<DB::Id> = row.try_get("replica_id")?;
        SessionRow {
            id: DB::uuid("session id", row.try_get("id")?)?,
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
            started_at: DB::datetime("started_at", row.try_get("started_at")?)?,
            end,
            chain_head: row.try_get("chain_head")?,
            start_seal: row.try_get("start_seal")?,
            backend: row.try_get("backend")?,
            os_user: row.try_get("os_user")?,
            replica_id: replica.map(|r| DB::uuid("replica id", r)).transpose()?,
        }
        .into_record()
    }

    fn audit(row: &DB::Row) -> Result<AuditEvent, StoreError> {
        let session_id: Option<DB::Id> = row.try_get("session_id")?;
        let chain_id: Option<DB::Id> = row.try_get("chain_id")?;
        AuditRow {
            id: DB::uuid("audit id", row.try_get("id")?)?,
            at: DB::datetime("audit at", row.try_get("at")?)?,
            kind: row.try_get("kind")?,
            user_name: row.try_get("user_name")?,
            session_id: session_id
                .map(|s| DB::uuid("audit session_id", s))
                .transpose()?,
            source_ip: row.try_get("source_ip")?,
            detail: row.try_get("detail")?,
            chain_id: chain_id
                .map(|c| DB::uuid("audit chain_id", c))
                .transpose()?,
            chain_seq: row.try_get("chain_seq")?,
            seal: row.try_get("seal")?,
        }
        .into_event()
    }

    fn chunk(id: Uuid, row: &DB::Row) -> Result<EventChunk, StoreError> {
        let seq: i64 = row.try_get("seq")?;
        ChunkRow {
            session_id: id,
            seq,
            created_at: DB::datetime("created_at", row.try_get("created_at")?)
                .map_err(|e| StoreError::corrupt_chunk(id, seq, e))?,
            events: row.try_get("events")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
            seal: row.try_get("seal")?,
        }
        .into_chunk()
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    // Reading rows (nullable columns decode for any database)…
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    String: Param<DB>,
    i32: Param<DB>,
    i64: Param<DB>,
    Vec<u8>: Param<DB>,
    // …and binding values, nullable ones included.
    bool: Param<DB>,
    Option<String>: Param<DB>,
    Option<i32>: Param<DB>,
    Option<i64>: Param<DB>,
    Option<Vec<u8>>: Param<DB>,
    Option<DB::Id>: Param<DB>,
    Option<DB::Time>: Param<DB>,
{
    async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.pool).await?;
        Ok(())
    }

    async fn write(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        let sql = DB::statements();
        let mut tx = match DB::DIALECT.begin_write {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        };
        for write in writes {
            match *write {
                Write::Session(s) => {
                    let r = SessionRow::from_record(s)?;
                    let end = r.end.as_ref();
                    let done = sqlx::query(sql.insert_session.as_str())
                        .bind(DB::id(r.id))
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
                        .bind(DB::time(r.started_at))
                        .bind(end.map(|e| DB::time(e.ended_at)))
                        .bind(end.map(|e| e.end_reason.clone()))
                        .bind(end.and_then(|e| e.exit_status))
                        .bind(end.map(|e| e.bytes_in))
                        .bind(end.map(|e| e.bytes_out))
                        .bind(&r.chain_head)
                        .bind(&r.start_seal)
                        .bind(end.and_then(|e| e.end_seal.clone()))
                        .bind(end.and_then(|e| e.chunk_count))
                        .bind(&r.backend)
                        .bind(&r.os_user)
                        .bind(r.replica_id.map(DB::id))
                        .bind(end.and_then(|e| e.end_cause.clone()))
                        .execute(&mut *tx)
                        .await?;
                    if DB::rows_affected(&done) == 0 {
                        // Stored already: the same start is a replay.
                        let stored = sqlx::query(sql.get_session.as_str())
                            .bind(DB::id(s.id))
                            .fetch_optional(&mut *tx)
                            .await?;
                        match stored.as_ref().map(Rows::<DB>::session).transpose()? {
                            Some(stored) if same_start(&stored, s) => {}
                            _ => return Err(StoreError::SessionConflict(s.id)),
                        }
                    }
                }
                Write::Finish(id, end) => {
                    let e = EndRow::from_end(end)?;
                    let done = sqlx::query(sql.finish_session.as_str())
                        .bind(DB::id(id))
                        .bind(DB::time(e.ended_at))
                        .bind(&e.end_reason)
                        .bind(e.exit_status)
                        .bind(e.bytes_in)
                        .bind(e.bytes_out)
                        .bind(&e.chain_head)
                        .bind(e.chunk_count)
                        .bind(&e.end_seal)
                        .bind(&e.end_cause)
                        .execute(&mut *tx)
                        .await?;
                    if DB::rows_affected(&done) == 0 {
                        return Err(StoreError::SessionNotFound(id));
                    }
                }
                Write::Chunk(chunk) => {
                    // Store the chunk; advance the session's head when it is
                    // the latest (see Store::append_chunk).
                    let c = ChunkRow::from_chunk(chunk)?;
                    let inserted = sqlx::query(sql.insert_chunk.as_str())
                        .bind(DB::id(c.session_id))
                        .bind(c.seq)
                        .bind(DB::time(c.created_at))
                        .bind(&c.events)
                        .bind(&c.prev_hash)
                        .bind(&c.hash)
                        .bind(&c.seal)
                        .execute(&mut *tx)
                        .await;
                    let inserted = match inserted {
                        Ok(done) => DB::rows_affected(&done) == 1,
                        Err(e) if is_fk_violation(&e) => {
                            return Err(StoreError::SessionNotFound(c.session_id));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if inserted {
                        sqlx::query(sql.advance_head.as_str())
                            .bind(DB::id(c.session_id))
                            .bind(&c.hash)
                            .bind(c.seq)
                            .execute(&mut *tx)
                            .await?;
                        continue;
                    }
                    let stored: Vec<u8> = sqlx::query_scalar(sql.chunk_hash.as_str())
                        .bind(DB::id(c.session_id))
                        .bind(c.seq)
                        .fetch_one(&mut *tx)
                        .await?;
                    if stored != c.hash {
                        return Err(StoreError::ChunkConflict {
                            session_id: c.session_id,
                            seq: c.seq,
                        });
                    }
                }
                Write::Audit(e) => {
                    let a = AuditRow::from_event(e)?;
                    sqlx::query(sql.insert_audit.as_str())
                        .bind(DB::id(a.id))
                        .bind(DB::time(a.at))
                        .bind(&a.kind)
                        .bind(&a.user_name)
                        .bind(a.session_id.map(DB::id))
                        .bind(&a.source_ip)
                        .bind(&a.detail)
                        .bind(a.chain_id.map(DB::id))
                        .bind(a.chain_seq)
                        .bind(&a.seal)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(DB::statements().get_session.as_str())
            .bind(DB::id(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Rows::<DB>::session).transpose()
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(DB::statements().list_sessions.as_str())
            .bind(&filter.user)
            .bind(&filter.target)
            .bind(filter.since.map(DB::time))
            .bind(filter.live_only)
            .bind(filter.limit.map(i64::from).or(DB::DIALECT.no_limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Rows::<DB>::session).collect()
    }

    async fn chunks(&self, id: Uuid) -> Result<Vec<EventChunk>, StoreError> {
        let rows = sqlx::query(DB::statements().chunks.as_str())
            .bind(DB::id(id))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Rows::<DB>::chunk(id, row)).collect()
    }

    async fn audit_for_session(&self, id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(DB::statements().audit_for_session.as_str())
            .bind(DB::id(id))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Rows::<DB>::audit).collect()
    }

    async fn audit_chain_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<DB::Id> = sqlx::query_scalar(DB::statements().audit_chain_ids.as_str())
            .fetch_all(&self.pool)
            .await?;
        ids.into_iter()
            .map(|id| DB::uuid("audit chain_id", id))
            .collect()
    }

    async fn audit_chain(&self, chain_id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(DB::statements().audit_chain.as_str())
            .bind(DB::id(chain_id))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Rows::<DB>::audit).collect()
    }

    async fn unchained_audit_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(DB::statements().unchained_audit_count.as_str())
            .fetch_one(&self.pool)
            .await?;
        to_u64("audit count", n)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn upsert_replica(&self, r: &ReplicaRow) -> Result<(), StoreError> {
        ClusterSql(&self.pool).upsert_replica(r).await
    }

    async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        ClusterSql(&self.pool).replicas().await
    }

    async fn insert_kill(&self, k: &KillRow) -> Result<bool, StoreError> {
        ClusterSql(&self.pool).insert_kill(k).await
    }

    async fn pending_kills(&self, replica: Uuid) -> Result<Vec<KillRow>, StoreError> {
        ClusterSql(&self.pool).pending_kills(replica).await
    }

    async fn get_kill(&self, id: Uuid) -> Result<Option<KillRow>, StoreError> {
        ClusterSql(&self.pool).get_kill(id).await
    }

    async fn complete_kill(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        ClusterSql(&self.pool).complete_kill(id, at, outcome).await
    }

    async fn lock_user(&self, l: &LockRow) -> Result<bool, StoreError> {
        ClusterSql(&self.pool).lock_user(l).await
    }

    async fn unlock_user(&self, user: &str) -> Result<bool, StoreError> {
        ClusterSql(&self.pool).unlock_user(user).await
    }

    async fn user_locks(&self) -> Result<Vec<LockRow>, StoreError> {
        ClusterSql(&self.pool).user_locks().await
    }

    async fn notify_cluster(&self) -> Result<(), StoreError> {
        DB::notify_cluster(&self.pool).await
    }

    fn cluster_notices(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        DB::cluster_notices(&self.pool)
    }

    async fn pin_host_key(
        &self,
        target_id: &str,
        offered: &str,
        fingerprint: &str,
    ) -> Result<String, StoreError> {
        // The same text in both dialects.
        sqlx::query(
            "INSERT INTO host_keys (target_id, public_key, fingerprint, first_seen) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (target_id) DO NOTHING",
        )
        .bind(target_id.to_owned())
        .bind(offered.to_owned())
        .bind(fingerprint.to_owned())
        .bind(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .execute(&self.pool)
        .await?;
        let pinned: String =
            sqlx::query_scalar("SELECT public_key FROM host_keys WHERE target_id = $1")
                .bind(target_id.to_owned())
                .fetch_one(&self.pool)
                .await?;
        Ok(pinned)
    }

    // The grant statements are the same text in both dialects; times are
    // fixed-width RFC 3339 text with microseconds (see the migration).
    async fn insert_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO reason_grants (id, user_name, reason, target_pattern, source_ip, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(g.id.to_string())
        .bind(g.user.clone())
        .bind(g.reason.clone())
        .bind(g.target_pattern.clone())
        .bind(g.source_ip.to_string())
        .bind(time_text(g.created_at))
        .bind(time_text(g.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn live_grants(
        &self,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantRow>, StoreError> {
        let rows: Vec<GrantColumns> = sqlx::query_as(
            "SELECT id, user_name, reason, target_pattern, source_ip, created_at, expires_at \
                 FROM reason_grants WHERE user_name = $1 AND expires_at > $2 \
                 AND revoked_at IS NULL ORDER BY created_at DESC, id",
        )
        .bind(user.to_owned())
        .bind(time_text(now))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(grant_row).collect()
    }

    async fn count_live_grants(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reason_grants WHERE expires_at > $1 AND revoked_at IS NULL",
        )
        .bind(time_text(now))
        .fetch_one(&self.pool)
        .await?;
        to_u64("live grant count", n)
    }

    async fn revoke_grants(
        &self,
        user: &str,
        id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE reason_grants SET revoked_at = $3 WHERE user_name = $1 \
             AND expires_at > $3 AND revoked_at IS NULL AND ($2 IS NULL OR id = $2) RETURNING id",
        )
        .bind(user.to_owned())
        .bind(id.map(|i| i.to_string()))
        .bind(time_text(now))
        .fetch_all(&self.pool)
        .await?;
        ids.iter()
            .map(|i| Uuid::parse_str(i).map_err(|e| StoreError::corrupt("reason_grants", e)))
            .collect()
    }
}

/// A `reason_grants` row as selected: id, user_name, reason,
/// target_pattern, source_ip, created_at, expires_at.
type GrantColumns = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

/// A stored grant row, checked.
fn grant_row(
    (id, user, reason, target_pattern, source_ip, created, expires): GrantColumns,
) -> Result<GrantRow, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::corrupt("reason_grants", e.to_string());
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| corrupt(&e))
    };
    Ok(GrantRow {
        id: Uuid::parse_str(&id).map_err(|e| corrupt(&e))?,
        user,
        reason,
        target_pattern,
        source_ip: source_ip.parse().map_err(|e| corrupt(&e))?,
        created_at: time(&created)?,
        expires_at: time(&expires)?,
    })
}
