//! `ssmgate sessions list`: the sessions matching the filters, newest
//! first, as an aligned table or as one JSON object per line.

use chrono::Utc;
use serde_json::{Value, json};

use super::format::{bytes, duration, parse_since, printable, rfc3339, timestamp};
use super::{Db, SessionsError, emit, target_label};
use crate::cli::SessionsListArgs;
use crate::ops::cluster::silent_since;
use crate::recording::{ReplicaRow, SessionFilter, SessionRecord};

/// Runs `sessions list`; a replica silent for `orphan_after` is gone
/// (its live sessions show as `orphaned`).
pub async fn run(
    db: &Db,
    args: &SessionsListArgs,
    orphan_after: std::time::Duration,
) -> Result<(), SessionsError> {
    let since = match &args.since {
        Some(v) => Some(
            parse_since(v, Utc::now()).map_err(|why| SessionsError::Since {
                value: v.clone(),
                why,
            })?,
        ),
        None => None,
    };
    let filter = SessionFilter {
        user: args.user.clone(),
        target: args.target.clone(),
        since,
        live_only: args.live,
        limit: (args.limit > 0).then_some(args.limit),
    };
    let sessions = db.list(&filter).await?;
    let replicas = if args.live {
        db.store().replicas().await.map_err(|e| db.err(e))?
    } else {
        Vec::new()
    };
    let placed = Placement {
        replicas: &replicas,
        orphan_after: chrono::Duration::from_std(orphan_after).unwrap_or(chrono::Duration::MAX),
        now: Utc::now(),
    };
    let text = if args.json {
        sessions
            .iter()
            .map(|s| {
                let mut j = to_json(s);
                if args.live {
                    let (replica, state) = placed.of(s);
                    j["replica_address"] = json!(replica);
                    j["state"] = json!(state);
                }
                format!("{j}\n")
            })
            .collect()
    } else if sessions.is_empty() {
        "no sessions match\n".to_owned()
    } else if args.live {
        live_table(&sessions, &placed)
    } else {
        table(&sessions)
    };
    emit(&text)
}

/// Where live sessions run: the registered replicas, and when a silent
/// one counts as gone.
pub struct Placement<'a> {
    /// Every registered replica.
    pub replicas: &'a [ReplicaRow],
    /// Silent this long: gone.
    pub orphan_after: chrono::Duration,
    /// Now.
    pub now: chrono::DateTime<Utc>,
}

impl Placement<'_> {
    /// The replica's address (or id) and `live` or `orphaned`.
    pub fn of(&self, s: &SessionRecord) -> (String, &'static str) {
        let Some(id) = s.replica else {
            return ("-".into(), "live");
        };
        match self.replicas.iter().find(|r| r.id == id) {
            Some(r) => {
                let gone = r.stopped_at.is_some() || self.now - silent_since(r) > self.orphan_after;
                let short: String = id.to_string().chars().take(8).collect();
                (
                    format!("{} ({short})", printable(&r.address)),
                    if gone { "orphaned" } else { "live" },
                )
            }
            None => (id.to_string(), "orphaned"),
        }
    }
}

/// The table of live sessions: the usual columns and where each runs.
pub fn live_table(sessions: &[SessionRecord], placed: &Placement<'_>) -> String {
    let header = [
        "ID", "STARTED", "DURATION", "USER", "TARGET", "KIND", "REPLICA", "STATE",
    ];
    let rows = sessions.iter().map(|s| {
        let mut r = row(s);
        r.truncate(3);
        let (replica, state) = placed.of(s);
        r.extend([
            printable(&s.user).into_owned(),
            printable(target_label(s)).into_owned(),
            s.kind.to_string(),
            replica,
            state.to_owned(),
        ]);
        r[2] = duration(placed.now - s.started_at);
        r
    });
    render(&header, rows.collect())
}

/// The table, with a header row; columns padded to their widest cell.
pub fn table(sessions: &[SessionRecord]) -> String {
    let header = [
        "ID", "STARTED", "DURATION", "USER", "TARGET", "KIND", "END", "EXIT", "IN", "OUT",
    ];
    render(&header, sessions.iter().map(row).collect())
}

/// `header` and `body` as aligned columns.
fn render(header: &[&str], body: Vec<Vec<String>>) -> String {
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    rows.extend(body);
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in r.iter().zip(&widths).enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = width.saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One table row.
fn row(s: &SessionRecord) -> Vec<String> {
    let short: String = s.id.to_string().chars().take(8).collect();
    let (dur, reason, exit, bin, bout) = match &s.end {
        Some(e) => (
            duration(e.ended_at - s.started_at),
            e.reason.to_string(),
            e.exit_status
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            bytes(e.bytes_in),
            bytes(e.bytes_out),
        ),
        None => (
            "live".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ),
    };
    vec![
        short,
        timestamp(s.started_at),
        dur,
        printable(&s.user).into_owned(),
        printable(target_label(s)).into_owned(),
        s.kind.to_string(),
        reason,
        exit,
        bin,
        bout,
    ]
}

/// Every field of a session as one JSON object.
pub fn to_json(s: &SessionRecord) -> Value {
    let end = s.end.as_ref();
    // The parameters are stored as JSON text: emit them as JSON when they
    // parse, as the text otherwise.
    let parameters = s
        .parameters
        .as_ref()
        .map(|p| serde_json::from_str::<Value>(p).unwrap_or_else(|_| Value::String(p.clone())));
    json!({
        "id": s.id.to_string(),
        "ssm_session_id": s.ssm_session_id,
        "user": s.user,
        "auth_method": s.auth_method.as_str(),
        "key_fingerprint": s.key_fingerprint,
        "cert_key_id": s.cert_key_id,
        "cert_serial": s.cert_serial,
        "cert_ca_fingerprint": s.cert_ca_fingerprint,
        "source_ip": s.source_ip.to_string(),
        "source_port": s.source_port,
        "client_version": s.client_version,
        "target_id": s.target_id,
        "target_name": s.target_name,
        "document": s.document,
        "parameters": parameters,
        "justification": s.justification,
        "aws_reason": s.aws_reason,
        "decision": s.decision.as_str(),
        "policy_ids": s.policy_ids,
        "kind": s.kind.as_str(),
        "recording": s.recording.as_str(),
        "started_at": rfc3339(s.started_at),
        "live": s.is_live(),
        "ended_at": end.map(|e| rfc3339(e.ended_at)),
        "duration_secs": end.map(|e| (e.ended_at - s.started_at).as_seconds_f64()),
        "end_reason": end.map(|e| e.reason.as_str()),
        "end_cause": end.and_then(|e| e.cause.as_deref()),
        "replica": s.replica.map(|r| r.to_string()),
        "exit_status": end.and_then(|e| e.exit_status),
        "bytes_in": end.map(|e| e.bytes_in),
        "bytes_out": end.map(|e| e.bytes_out),
        "chain_head": s.chain_head.map(hex::encode),
    })
}
