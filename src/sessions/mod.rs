//! `ssmgate sessions`: the administrator's view of the recording store —
//! list, show, replay, export (asciicast) and verify recorded sessions.
//!
//! This file owns the dispatch, opening the store (from `--database`,
//! `SSMGATE_DATABASE_URL` or the config's `[database] url`), resolving a
//! session id or unique prefix, writing to stdout, and the error type.
//! Each subcommand lives in its own file:
//! - [`list`]: the table and `--json` lines;
//! - [`show`]: every field of one session and its audit trail;
//! - [`replay`]: output played back with its timing;
//! - [`asciicast`]: the asciicast v2 export (with UTF-8 carrying);
//! - [`verify`]: the chain and seal checks (with the recording key);
//! - [`kill`]: ending a live session on the replica that runs it;
//! - [`users`]: `ssmgate users lock | unlock | locked`;
//! - [`format`]: shared formatting (times, durations, sizes) and `--since`.

pub mod asciicast;
pub mod format;
pub mod kill;
pub mod list;
pub mod replay;
pub mod show;
pub mod users;
pub mod verify;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use toml_diagnostics::ConfigError;
use uuid::Uuid;

use crate::cli::{SessionsArgs, SessionsCommand};
use crate::config::Config;
use crate::recording::{
    AuditEvent, AuditKind, Event, EventChunk, KeyError, RecordingMode, SessionFilter, SessionKind,
    SessionRecord, Store, StoreError, connect, now, redact_url,
};

/// Why a `sessions` command failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// The config file (for its database URL) could not be loaded.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The store failed; `url` is already redacted.
    #[error("database {url}: {source}")]
    Store {
        /// The database URL without its password.
        url: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The id argument is neither a UUID nor a usable prefix of one.
    #[error(
        "{0:?} is not a session id: give a full id or at least 4 hex digits of one (as `sessions list` shows)"
    )]
    BadId(String),
    /// No session has this id or prefix.
    #[error("no session matches {0:?} (see `ssmgate sessions list`)")]
    NotFound(String),
    /// Several sessions share the prefix.
    #[error("{prefix:?} matches {count} sessions; give more of the id:\n{}", candidates.join("\n"))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many sessions match.
        count: usize,
        /// One line per candidate (at most 10).
        candidates: Vec<String>,
    },
    /// `--since` could not be understood.
    #[error("--since {value:?}: {why}")]
    Since {
        /// What was given.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A port or ssh session: bytes were relayed, no terminal was recorded.
    #[error("session {id} is a {kind} session and has no terminal recording; see `sessions show`")]
    NoTerminal {
        /// The session.
        id: Uuid,
        /// Its kind.
        kind: SessionKind,
    },
    /// The session was recorded metadata-only.
    #[error(
        "session {0} was recorded metadata-only and has no terminal recording; see `sessions show`"
    )]
    MetadataOnly(Uuid),
    /// Some sessions or audit chains failed verification (each was
    /// reported on stdout).
    #[error(
        "verification failed: {broken} of {checked} checked sessions and audit chains are broken"
    )]
    Broken {
        /// How many were broken.
        broken: usize,
        /// How many were checked.
        checked: usize,
    },
    /// No recording key to verify with.
    #[error(
        "keyed verification is impossible: {0}; give the recording key file with --key-file, or --config with the gateway's config ([recording] key_file)"
    )]
    NoKey(String),
    /// The key file could not be read.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// Seals were made with keys the key file does not list.
    #[error(
        "{count} sessions or audit chains carry seals of keys the key file does not list ({ids}); add those keys to verify them"
    )]
    UnknownKeys {
        /// How many sessions and chains could not be checked.
        count: usize,
        /// The key ids, comma-separated.
        ids: String,
    },
    /// An administrative request that cannot be carried out (the text
    /// says why).
    #[error("{0}")]
    Refused(String),
    /// Writing the output failed.
    #[error("cannot write {what}: {source}")]
    Write {
        /// Where to.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl SessionsError {
    /// The process exit status: 1 for tampering found and most errors, 3
    /// when verification could not be done for want of a key.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoKey(_) | Self::Keys(_) | Self::UnknownKeys { .. } => 3,
            _ => 1,
        }
    }
}

/// Runs `ssmgate sessions …`.
pub async fn run(args: SessionsArgs) -> Result<(), SessionsError> {
    // The key is needed before anything is written to the audit trail.
    let keys = match &args.command {
        SessionsCommand::Verify(a) => Some(verify::load_keys(
            a.key_file.as_deref(),
            args.db.database.is_some(),
            &args.db.config,
        )?),
        _ => None,
    };
    let db = Db::open(args.db.database.as_deref(), &args.db.config).await?;
    // Who looked at or checked recordings is itself part of the trail.
    match &args.command {
        SessionsCommand::Replay(a) => db.audit_admin("sessions replay", Some(&a.id)).await,
        SessionsCommand::Export(a) => db.audit_admin("sessions export", Some(&a.id)).await,
        SessionsCommand::Verify(a) => db.audit_admin("sessions verify", a.id.as_deref()).await,
        SessionsCommand::Kill(a) => db.audit_admin("sessions kill", Some(&a.id)).await,
        SessionsCommand::List(_) | SessionsCommand::Show(_) => {}
    }
    match args.command {
        SessionsCommand::List(a) => list::run(&db, &a, orphan_after(&args.db.config)).await,
        SessionsCommand::Kill(a) => kill::run(&db, &a, orphan_after(&args.db.config)).await,
        SessionsCommand::Show(a) => show::run(&db, &a.id).await,
        SessionsCommand::Replay(a) => replay::run(&db, &a).await,
        SessionsCommand::Export(a) => asciicast::run(&db, &a).await,
        SessionsCommand::Verify(a) => match keys {
            Some(keys) => verify::run(&db, &keys, a.id.as_deref(), a.all).await,
            None => Err(SessionsError::NoKey("no key file".into())),
        },
    }
}

/// Who runs this command: `USER@HOST` (the OS user, or its uid).
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    let host = crate::ops::host_name();
    crate::untrusted::bounded_to(&format!("{user}@{host}"), 200)
}

/// After how long a silent replica is gone, from the config when it can
/// be read (else the default).
fn orphan_after(config: &Path) -> std::time::Duration {
    Config::load(config)
        .map(|c| c.cluster.orphan_after)
        .unwrap_or_else(|_| crate::config::ClusterConfig::default().orphan_after)
}

/// The open store and its URL as shown in messages.
pub struct Db {
    store: Arc<dyn Store>,
    shown: String,
}

impl Db {
    /// Records an administrative action (who ran it: the OS user and host)
    /// in the audit trail; a failure to record it is reported, not fatal.
    async fn audit_admin(&self, action: &str, arg: Option<&str>) {
        let os_user = operator();
        let session_id = match arg {
            Some(a) => self.resolve(a).await.ok().map(|s| s.id),
            None => None,
        };
        let event = AuditEvent {
            id: Uuid::new_v4(),
            at: now(),
            kind: AuditKind::Admin,
            user: None,
            session_id,
            source_ip: None,
            detail: serde_json::json!({ "action": action, "argument": arg, "os_user": os_user })
                .to_string(),
            // Not in any audit chain (only a recorder writes one): an
            // administrator's look is recorded, but not sealed.
            link: None,
        };
        if let Err(e) = self.store.insert_audit(&event).await {
            eprintln!("ssmgate: could not record this action in the audit trail: {e}");
        }
    }

    /// Opens (and migrates) the database `url` names, or else the one the
    /// config file names.
    pub async fn open(url: Option<&str>, config: &Path) -> Result<Self, SessionsError> {
        let url = match url {
            Some(u) => u.to_owned(),
            None => Config::load(config)?.database.url,
        };
        let shown = redact_url(&url);
        let store = connect(&url).await.map_err(|source| SessionsError::Store {
            url: shown.clone(),
            source,
        })?;
        Ok(Self { store, shown })
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Wraps a store error with the (redacted) URL.
    pub fn err(&self, source: StoreError) -> SessionsError {
        SessionsError::Store {
            url: self.shown.clone(),
            source,
        }
    }

    /// Sessions matching `filter`, newest first.
    pub async fn list(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, SessionsError> {
        self.store
            .list_sessions(filter)
            .await
            .map_err(|e| self.err(e))
    }

    /// A session's chunks in seq order.
    pub async fn chunks(&self, id: Uuid) -> Result<Vec<EventChunk>, SessionsError> {
        self.store.chunks(id).await.map_err(|e| self.err(e))
    }

    /// The session `arg` names: a full id, or a prefix of exactly one id.
    pub async fn resolve(&self, arg: &str) -> Result<SessionRecord, SessionsError> {
        let arg = arg.trim();
        if let Ok(id) = Uuid::parse_str(arg) {
            return self
                .store
                .get_session(id)
                .await
                .map_err(|e| self.err(e))?
                .ok_or_else(|| SessionsError::NotFound(arg.to_owned()));
        }
        let prefix = normalize_prefix(arg).ok_or_else(|| SessionsError::BadId(arg.to_owned()))?;
        let mut matches: Vec<SessionRecord> = self
            .list(&SessionFilter::default())
            .await?
            .into_iter()
            .filter(|s| id_matches(&s.id, &prefix))
            .collect();
        match matches.len() {
            0 => Err(SessionsError::NotFound(arg.to_owned())),
            1 => Ok(matches.swap_remove(0)),
            count => Err(SessionsError::Ambiguous {
                prefix: arg.to_owned(),
                count,
                candidates: matches.iter().take(10).map(candidate_line).collect(),
            }),
        }
    }
}

/// The session `arg` names and its events, for replay and export: refused
/// for port and ssh sessions and for metadata-only recordings. A recording
/// that fails verification is still returned, with a warning on stderr.
pub async fn terminal_recording(
    db: &Db,
    arg: &str,
) -> Result<(SessionRecord, Vec<Event>), SessionsError> {
    let s = db.resolve(arg).await?;
    if matches!(s.kind, SessionKind::Port | SessionKind::Ssh) {
        return Err(SessionsError::NoTerminal {
            id: s.id,
            kind: s.kind,
        });
    }
    if s.recording == RecordingMode::Metadata {
        return Err(SessionsError::MetadataOnly(s.id));
    }
    let chunks = db.chunks(s.id).await?;
    if let Err(broken) = crate::recording::verify(&s, &chunks) {
        eprintln!(
            "ssmgate: warning: session {} fails verification ({broken}); it may have been altered",
            s.id
        );
    }
    let events = chunks.into_iter().flat_map(|c| c.events).collect();
    Ok((s, events))
}

/// The prefix's hex digits, lowercased, when it has at least 4 and nothing
/// but hex digits and hyphens.
fn normalize_prefix(arg: &str) -> Option<String> {
    if !arg.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    let hex: String = arg
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() >= 4).then_some(hex)
}

/// True when the id's hex digits start with `hex_prefix`.
fn id_matches(id: &Uuid, hex_prefix: &str) -> bool {
    id.simple().to_string().starts_with(hex_prefix)
}

/// How a candidate is listed in an ambiguity error.
fn candidate_line(s: &SessionRecord) -> String {
    format!(
        "  {}  {}  {}@{}",
        s.id,
        format::timestamp(s.started_at),
        format::printable(&s.user),
        format::printable(target_label(s)),
    )
}

/// The target as shown: its name, else its instance id.
pub fn target_label(s: &SessionRecord) -> &str {
    s.target_name.as_deref().unwrap_or(&s.target_id)
}

/// Writes `text` to stdout and flushes; a closed stdout (EPIPE) is not an
/// error — the reader has seen all it wanted.
pub fn emit(text: &str) -> Result<(), SessionsError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(SessionsError::Write {
            what: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_need_four_hex_digits() {
        assert_eq!(normalize_prefix("6F1C"), Some("6f1c".into()));
        assert_eq!(normalize_prefix("6f1c2d3e-4a"), Some("6f1c2d3e4a".into()));
        assert_eq!(normalize_prefix("6f1"), None);
        assert_eq!(normalize_prefix("6f1g"), None);
        assert_eq!(normalize_prefix("--6f1-"), None);
        let id = Uuid::parse_str("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab").unwrap_or_default();
        assert!(id_matches(&id, "6f1c2d3e4a5b"));
        assert!(!id_matches(&id, "6f1d"));
    }
}
