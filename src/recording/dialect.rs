//! The statements both recording backends run, written once and specialised
//! by a [`Dialect`]: what Postgres and SQLite spell differently.
//!
//! Placeholders are `$1`, `$2`… in both: Postgres numbers its parameters
//! so, and sqlx's SQLite driver binds a `$NNN` parameter to argument NNN
//! (as `?NNN`), repeats included. What differs is typing: Postgres keeps
//! JSON in `json` columns (written from text with `$n::json`, read back
//! with `column::text`) and is told the type of a parameter that is only
//! compared with NULL, where SQLite keeps JSON as checked text and takes
//! any parameter as it comes; and the LIMIT that means "no limit".

/// What one backend's SQL writes its own way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Postgres casts: `$15::json` into JSON columns, `parameters::text`
    /// out of them, `$1::text IS NULL` for optional filters. SQLite: none.
    pub casts: bool,
    /// The LIMIT value that means none: NULL on Postgres (`LIMIT ALL`),
    /// -1 on SQLite.
    pub no_limit: Option<i64>,
    /// The statement that opens a write transaction (`None`: sqlx's
    /// `BEGIN`). SQLite takes the write lock at once with
    /// `BEGIN IMMEDIATE`, so that two writers wait for each other (up to
    /// the busy timeout) instead of one failing on upgrade.
    pub begin_write: Option<&'static str>,
}

impl Dialect {
    /// `expr` as type `ty` where the dialect casts.
    fn cast(&self, expr: &str, ty: &str) -> String {
        if self.casts {
            format!("{expr}::{ty}")
        } else {
            expr.to_owned()
        }
    }

    /// A select list of `columns` (comma-separated), JSON ones read as
    /// text.
    fn select_list(&self, columns: &str, json: &[&str]) -> String {
        columns
            .split(", ")
            .map(|c| match json.contains(&c) {
                true if self.casts => format!("{c}::text AS {c}"),
                _ => c.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `$1, $2, …` for `columns` (comma-separated), JSON ones cast to
    /// `json`.
    fn values_list(&self, columns: &str, json: &[&str]) -> String {
        columns
            .split(", ")
            .enumerate()
            .map(|(i, c)| {
                let p = format!("${}", i + 1);
                if json.contains(&c) {
                    self.cast(&p, "json")
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Columns of `sessions`, in the order [`Statements::insert_session`]
/// binds them.
const SESSION_COLUMNS: &str = "id, ssm_session_id, user_name, auth_method, \
     key_fingerprint, cert_key_id, cert_serial, cert_ca_fingerprint, source_ip, source_port, \
     client_version, target_id, target_name, document, parameters, justification, aws_reason, \
     decision, policy_ids, kind, recording, started_at, ended_at, end_reason, exit_status, \
     bytes_in, bytes_out, chain_head, start_seal, end_seal, chunk_count, backend, os_user, \
     replica_id, end_cause";

/// The JSON columns of `sessions`.
const SESSION_JSON: &[&str] = &["parameters", "policy_ids"];

/// Columns of `audit_events` (but its insertion counter `n`), in the order
/// [`Statements::insert_audit`] binds them.
const AUDIT_COLUMNS: &str =
    "id, at, kind, user_name, session_id, source_ip, detail, chain_id, chain_seq, seal";

/// The JSON column of `audit_events`.
const AUDIT_JSON: &[&str] = &["detail"];

/// Every statement of the store, in one dialect. Built once per backend;
/// each field is bound in the order its placeholders number.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `sessions` row, `ON CONFLICT (id) DO NOTHING`.
    pub insert_session: String,
    /// `$1` id, `$2`… the end columns, `$7` chain head (kept when null).
    pub finish_session: String,
    /// `$1` id.
    pub get_session: String,
    /// `$1` user, `$2` target id or name, `$3` since, `$4` live only,
    /// `$5` limit.
    pub list_sessions: String,
    /// `session_chunks` row, `ON CONFLICT (session_id, seq) DO NOTHING`.
    pub insert_chunk: String,
    /// `$1` session, `$2` hash, `$3` seq: the head moves when no later
    /// chunk is stored.
    pub advance_head: String,
    /// `$1` session, `$2` seq.
    pub chunk_hash: String,
    /// `$1` session.
    pub chunks: String,
    /// `audit_events` row, `ON CONFLICT (id) DO NOTHING`.
    pub insert_audit: String,
    /// `$1` session.
    pub audit_for_session: String,
    /// No parameter.
    pub audit_chain_ids: String,
    /// `$1` chain.
    pub audit_chain: String,
    /// No parameter.
    pub unchained_audit_count: String,
}

impl Statements {
    /// The statements in dialect `d`.
    pub fn new(d: &Dialect) -> Self {
        let sessions = d.select_list(SESSION_COLUMNS, SESSION_JSON);
        let audit = d.select_list(AUDIT_COLUMNS, AUDIT_JSON);
        Self {
            insert_session: format!(
                "INSERT INTO sessions ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
                SESSION_COLUMNS,
                d.values_list(SESSION_COLUMNS, SESSION_JSON)
            ),
            finish_session: "UPDATE sessions SET ended_at = $2, end_reason = $3, \
                 exit_status = $4, bytes_in = $5, bytes_out = $6, \
                 chain_head = COALESCE($7, chain_head), chunk_count = $8, end_seal = $9, end_cause = $10 \
                 WHERE id = $1"
                .to_owned(),
            get_session: format!("SELECT {sessions} FROM sessions WHERE id = $1"),
            list_sessions: format!(
                "SELECT {sessions} FROM sessions \
                 WHERE ({user} IS NULL OR user_name = $1) \
                 AND ({target} IS NULL OR target_id = $2 OR target_name = $2) \
                 AND ({since} IS NULL OR started_at >= $3) \
                 AND (NOT $4 OR ended_at IS NULL) \
                 ORDER BY started_at DESC, id LIMIT $5",
                user = d.cast("$1", "text"),
                target = d.cast("$2", "text"),
                since = d.cast("$3", "timestamptz"),
            ),
            insert_chunk: "INSERT INTO session_chunks \
                 (session_id, seq, created_at, events, prev_hash, hash, seal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id, seq) DO NOTHING"
                .to_owned(),
            advance_head: "UPDATE sessions SET chain_head = $2 WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM session_chunks WHERE session_id = $1 AND seq > $3)"
                .to_owned(),
            chunk_hash: "SELECT hash FROM session_chunks WHERE session_id = $1 AND seq = $2"
                .to_owned(),
            chunks: "SELECT seq, created_at, events, prev_hash, hash, seal FROM session_chunks \
                 WHERE session_id = $1 ORDER BY seq"
                .to_owned(),
            insert_audit: format!(
                "INSERT INTO audit_events ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
                AUDIT_COLUMNS,
                d.values_list(AUDIT_COLUMNS, AUDIT_JSON)
            ),
            audit_for_session: format!(
                "SELECT {audit} FROM audit_events WHERE session_id = $1 ORDER BY at, n"
            ),
            audit_chain_ids: "SELECT chain_id FROM audit_events WHERE chain_id IS NOT NULL \
                 GROUP BY chain_id ORDER BY min(n)"
                .to_owned(),
            audit_chain: format!(
                "SELECT {audit} FROM audit_events WHERE chain_id = $1 ORDER BY chain_seq, n"
            ),
            unchained_audit_count: "SELECT count(*) FROM audit_events WHERE chain_id IS NULL"
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Dialect = Dialect {
        casts: true,
        no_limit: None,
        begin_write: None,
    };
    const LITE: Dialect = Dialect {
        casts: false,
        no_limit: Some(-1),
        begin_write: Some("BEGIN IMMEDIATE"),
    };

    #[test]
    fn postgres_casts_json_and_optional_filters() {
        let s = Statements::new(&PG);
        for (statement, part) in [
            (&s.insert_session, "$14, $15::json, $16"),
            (&s.insert_session, "$18, $19::json, $20"),
            (&s.insert_session, "$35) ON CONFLICT (id) DO NOTHING"),
            (
                &s.get_session,
                "document, parameters::text AS parameters, justification",
            ),
            (
                &s.list_sessions,
                "($3::timestamptz IS NULL OR started_at >= $3)",
            ),
            (&s.insert_audit, "$6, $7::json, $8"),
            (
                &s.audit_chain,
                "source_ip, detail::text AS detail, chain_id",
            ),
        ] {
            assert!(statement.contains(part), "{part} in {statement}");
        }
    }

    #[test]
    fn both_bind_every_column_once() {
        assert_eq!(SESSION_COLUMNS.split(", ").count(), 35);
        assert_eq!(AUDIT_COLUMNS.split(", ").count(), 10);
        for d in [PG, LITE] {
            let s = Statements::new(&d);
            assert!(s.insert_session.contains("end_cause) VALUES ($1, $2"));
            assert!(s.insert_session.contains("$35"));
            assert!(!s.insert_session.contains("$36"));
        }
    }

    #[test]
    fn sqlite_takes_text_as_it_is() {
        let s = Statements::new(&LITE);
        for statement in [
            &s.insert_session,
            &s.get_session,
            &s.list_sessions,
            &s.insert_audit,
        ] {
            assert!(!statement.contains("::"), "{statement}");
        }
        assert!(s.insert_session.contains("$14, $15, $16"));
        assert!(s.list_sessions.contains("($1 IS NULL OR user_name = $1)"));
    }
}
