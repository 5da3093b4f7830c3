//! `ssmgate sessions list`: the sessions matching the filters, newest
//! first, as an aligned table or as one JSON object per line.

use chrono::Utc;
use serde_json::{Value, json};

use super::format::{bytes, duration, parse_since, printable, rfc3339, timestamp};
use super::{Db, SessionsError, emit, target_label};
use crate::cli::SessionsListArgs;
use crate::recording::{SessionFilter, SessionRecord};

/// Runs `sessions list`.
pub async fn run(db: &Db, args: &SessionsListArgs) -> Result<(), SessionsError> {
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
    let text = if args.json {
        sessions
            .iter()
            .map(|s| format!("{}\n", to_json(s)))
            .collect()
    } else if sessions.is_empty() {
        "no sessions match\n".to_owned()
    } else {
        table(&sessions)
    };
    emit(&text)
}

/// The table, with a header row; columns padded to their widest cell.
pub fn table(sessions: &[SessionRecord]) -> String {
    let header = [
        "ID", "STARTED", "DURATION", "USER", "TARGET", "KIND", "END", "EXIT", "IN", "OUT",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    rows.extend(sessions.iter().map(row));
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
        "exit_status": end.and_then(|e| e.exit_status),
        "bytes_in": end.map(|e| e.bytes_in),
        "bytes_out": end.map(|e| e.bytes_out),
        "chain_head": s.chain_head.map(hex::encode),
    })
}
