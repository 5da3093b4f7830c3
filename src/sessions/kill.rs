//! `ssmgate sessions kill`: asks the replica that runs a live session to
//! end it (a row in `session_kills`, and a Postgres `NOTIFY`; replicas on
//! SQLite poll every second), then waits for the replica's answer and the
//! session's recorded end. The replica records the end as `terminated`
//! with the cause `killed by WHO: REASON`, calls TerminateSession, tells the
//! user, and audits it (`admin` / `session_kill`).

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Db, SessionsError, emit, operator};
use crate::cli::SessionsKillArgs;
use crate::ops::cluster::silent_since;
use crate::recording::{KillRow, now};

/// Runs `sessions kill`.
pub async fn run(
    db: &Db,
    args: &SessionsKillArgs,
    orphan_after: Duration,
) -> Result<(), SessionsError> {
    let reason = args.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(SessionsError::Refused(
            "--reason must be 1-500 characters without control characters".into(),
        ));
    }
    let s = db.resolve(&args.id).await?;
    if let Some(end) = &s.end {
        return Err(SessionsError::Refused(format!(
            "session {} already ended ({}, {})",
            s.id,
            end.reason,
            end.ended_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    let Some(replica_id) = s.replica else {
        return Err(SessionsError::Refused(format!(
            "session {} was recorded without its replica (by an older gateway); it cannot be reached from here",
            s.id
        )));
    };
    let replicas = db.store().replicas().await.map_err(|e| db.err(e))?;
    let replica = replicas.iter().find(|r| r.id == replica_id);
    let gone = replica.is_none_or(|r| {
        let silent = now() - silent_since(r);
        r.stopped_at.is_some()
            || silent > chrono::Duration::from_std(orphan_after).unwrap_or(chrono::Duration::MAX)
    });
    if gone {
        return Err(SessionsError::Refused(format!(
            "session {} is orphaned: its replica {replica_id} is gone, so nothing runs it any more; another replica closes its record after [cluster] orphan_close_after_secs",
            s.id
        )));
    }
    let kill = KillRow {
        id: Uuid::new_v4(),
        session_id: s.id,
        replica_id: Some(replica_id),
        requested_at: now(),
        requested_by: operator(),
        reason: reason.to_owned(),
        done_at: None,
        outcome: None,
    };
    let asked = Instant::now();
    db.store().insert_kill(&kill).await.map_err(|e| db.err(e))?;
    db.store().notify_cluster().await.map_err(|e| db.err(e))?;
    let address = replica.map(|r| r.address.as_str()).unwrap_or("?");
    let deadline = asked + Duration::from_secs(args.wait);
    loop {
        let done = db.store().get_kill(kill.id).await.map_err(|e| db.err(e))?;
        let ended = db
            .store()
            .get_session(s.id)
            .await
            .map_err(|e| db.err(e))?
            .and_then(|s| s.end);
        match (done.and_then(|k| k.outcome), ended) {
            (Some(o), Some(end)) if o == "ended" => {
                return emit(&format!(
                    "session {} ended by replica {replica_id} ({address}) in {:.1} s: {}{}\n",
                    s.id,
                    asked.elapsed().as_secs_f64(),
                    end.reason,
                    end.cause.map(|c| format!(" ({c})")).unwrap_or_default()
                ));
            }
            (Some(o), _) if o != "ended" => {
                return Err(SessionsError::Refused(format!(
                    "replica {replica_id} ({address}) does not run session {} ({o}); it may have just ended",
                    s.id
                )));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(SessionsError::Refused(format!(
                "replica {replica_id} ({address}) has not ended session {} within {} s; the request stays and is carried out when the replica reads it",
                s.id, args.wait
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
