//! `ssmgate users lock | unlock | locked`: a locked user is refused new
//! sessions by every replica (checked before the policies, audited as a
//! denied decision with `"locked": true`) and their live sessions are
//! ended (recorded as `terminated`, cause `user locked by WHO: REASON`)
//! within about a second (a Postgres `NOTIFY`, or the replicas' poll).

use super::{Db, SessionsError, emit, operator};
use crate::cli::{UsersArgs, UsersCommand};
use crate::recording::{LockRow, SessionFilter, now};

/// Runs `users …`.
pub async fn run(args: UsersArgs) -> Result<(), SessionsError> {
    let db = Db::open(args.db.database.as_deref(), &args.db.config).await?;
    match args.command {
        UsersCommand::Lock { name, reason } => {
            let reason = reason.trim().to_owned();
            if reason.is_empty()
                || reason.chars().count() > 500
                || reason.chars().any(char::is_control)
            {
                return Err(SessionsError::Refused(
                    "--reason must be 1-500 characters without control characters".into(),
                ));
            }
            // Counted before the lock: the replicas end them at once.
            let live = db
                .list(&SessionFilter {
                    user: Some(name.clone()),
                    live_only: true,
                    ..SessionFilter::default()
                })
                .await?
                .len();
            let lock = LockRow {
                user: name.clone(),
                locked_at: now(),
                locked_by: operator(),
                reason,
            };
            let new = db.store().lock_user(&lock).await.map_err(|e| db.err(e))?;
            db.store().notify_cluster().await.map_err(|e| db.err(e))?;
            db.audit_admin("users lock", None).await;
            emit(&format!(
                "{name} {}; {live} live session(s) of theirs are being ended by their replicas\n",
                if new {
                    "is locked"
                } else {
                    "was already locked"
                }
            ))
        }
        UsersCommand::Unlock { name } => {
            let was = db.store().unlock_user(&name).await.map_err(|e| db.err(e))?;
            db.store().notify_cluster().await.map_err(|e| db.err(e))?;
            db.audit_admin("users unlock", None).await;
            emit(&format!(
                "{name} {}\n",
                if was { "is unlocked" } else { "was not locked" }
            ))
        }
        UsersCommand::Locked => {
            let locks = db.store().user_locks().await.map_err(|e| db.err(e))?;
            if locks.is_empty() {
                return emit("no user is locked\n");
            }
            let text: String = locks
                .iter()
                .map(|l| {
                    format!(
                        "{}  locked {} by {}: {}\n",
                        super::format::printable(&l.user),
                        l.locked_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        super::format::printable(&l.locked_by),
                        super::format::printable(&l.reason)
                    )
                })
                .collect();
            emit(&text)
        }
    }
}
