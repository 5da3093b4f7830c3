//! `ssmgate sessions show`: every recorded field of one session, labelled
//! one per line, how much was recorded, and the session's audit trail.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::format::{bytes, duration, printable, rfc3339, timestamp};
use super::{Db, SessionsError, emit};
use crate::recording::{AuditEvent, EventChunk, EventKind, SessionRecord, StoreError};

/// Runs `sessions show`.
pub async fn run(db: &Db, id: &str) -> Result<(), SessionsError> {
    let s = db.resolve(id).await?;
    let chunks = match db.store().chunks(s.id).await {
        Ok(c) => Ok(c),
        Err(e @ StoreError::CorruptChunk { .. }) => Err(e.to_string()),
        Err(e) => return Err(db.err(e)),
    };
    let audit = db
        .store()
        .audit_for_session(s.id)
        .await
        .map_err(|e| db.err(e))?;
    emit(&render(&s, &chunks, &audit))
}

/// The text `show` prints; `chunks` is the stored chunks, or why they could
/// not be read.
pub fn render(
    s: &SessionRecord,
    chunks: &Result<Vec<EventChunk>, String>,
    audit: &[AuditEvent],
) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), text);
    lines.push(("id", s.id.to_string()));
    lines.push(("ssm session id", opt(&s.ssm_session_id)));
    lines.push(("user", text(&s.user)));
    lines.push(("auth method", s.auth_method.to_string()));
    lines.push(("key fingerprint", opt(&s.key_fingerprint)));
    lines.push(("cert key id", opt(&s.cert_key_id)));
    lines.push((
        "cert serial",
        s.cert_serial
            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
    ));
    lines.push(("cert CA", opt(&s.cert_ca_fingerprint)));
    lines.push((
        "source",
        SocketAddr::new(s.source_ip, s.source_port).to_string(),
    ));
    lines.push(("client version", opt(&s.client_version)));
    lines.push(("target id", text(&s.target_id)));
    lines.push(("target name", opt(&s.target_name)));
    lines.push(("backend", opt(&s.backend)));
    lines.push((
        "replica",
        s.replica.map_or_else(|| "-".to_owned(), |r| r.to_string()),
    ));
    lines.push(("os user", opt(&s.os_user)));
    lines.push(("document", opt(&s.document)));
    lines.push(("parameters", opt(&s.parameters)));
    lines.push(("justification", opt(&s.justification)));
    lines.push(("aws reason", opt(&s.aws_reason)));
    lines.push(("decision", s.decision.to_string()));
    lines.push((
        "policies",
        if s.policy_ids.is_empty() {
            "-".to_owned()
        } else {
            s.policy_ids
                .iter()
                .map(|p| text(p))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    lines.push(("kind", s.kind.to_string()));
    lines.push(("recording", s.recording.to_string()));
    lines.push(("started", rfc3339(s.started_at)));
    match &s.end {
        Some(e) => {
            lines.push(("ended", rfc3339(e.ended_at)));
            lines.push(("duration", duration(e.ended_at - s.started_at)));
            lines.push(("end reason", e.reason.to_string()));
            if let Some(cause) = &e.cause {
                lines.push(("end cause", text(cause)));
            }
            lines.push((
                "exit status",
                e.exit_status
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            ));
            lines.push((
                "bytes in",
                format!("{} ({})", e.bytes_in, bytes(e.bytes_in)),
            ));
            lines.push((
                "bytes out",
                format!("{} ({})", e.bytes_out, bytes(e.bytes_out)),
            ));
        }
        None => lines.push(("ended", "- (live)".to_owned())),
    }
    lines.push((
        "chain head",
        s.chain_head.map_or_else(|| "-".to_owned(), hex::encode),
    ));
    match chunks {
        Ok(c) => {
            lines.push(("chunks", c.len().to_string()));
            let events: usize = c.iter().map(|c| c.events.len()).sum();
            lines.push(("events", events.to_string()));
        }
        Err(why) => lines.push(("chunks", format!("unreadable: {}", text(why)))),
    }
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (label, value) in &lines {
        let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
    }
    if let Ok(c) = chunks {
        let files: Vec<&crate::recording::Event> = c
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.kind == EventKind::File)
            .collect();
        if !files.is_empty() {
            let _ = writeln!(out, "\nfile operations ({}):", files.len());
            for e in files {
                let _ = writeln!(
                    out,
                    "  +{:>8} ms  {}",
                    e.offset_ms,
                    text(&String::from_utf8_lossy(&e.data))
                );
            }
        }
    }
    let _ = writeln!(out, "\naudit trail ({} events):", audit.len());
    for a in audit {
        let _ = writeln!(
            out,
            "  {}  {:<14}  {:<12}  {}{}",
            timestamp(a.at),
            a.kind.as_str(),
            a.user.as_deref().map_or_else(|| "-".to_owned(), text),
            a.source_ip
                .map_or_else(String::new, |ip| format!("from {ip} ")),
            text(&a.detail),
        );
    }
    out
}

fn text(s: &str) -> String {
    printable(s).into_owned()
}
