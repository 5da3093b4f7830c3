//! `ssmgate sessions verify`: checks sessions' chunk chains and keyed
//! seals, and with `--all` every audit chain too
//! ([`crate::recording::check`]), with the recording key file
//! (`--key-file`, or the config's `[recording] key_file`).
//!
//! One line per session: `OK`, `UNSEALED` (recorded before keyed sealing),
//! `UNKNOWN-KEY` (sealed with a key the file does not list), or one
//! `BROKEN` line per difference found; with `--all` the same per audit
//! chain, then a summary. Exit status: 0 all intact, 1 anything broken,
//! 3 no key or an unknown key id (see [`SessionsError::exit_code`]).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::{Db, SessionsError, emit};
use crate::config::Config;
use crate::recording::{
    ChainReport, SealKeys, SessionFilter, SessionRecord, SessionReport, StoreError,
    check_audit_chain, check_session,
};

/// The keys to verify with: `--key-file`, else the config's
/// `[recording] key_file`. When `--database` was given, a missing config
/// file only means there is no key from it.
pub fn load_keys(
    key_file: Option<&Path>,
    database_given: bool,
    config: &Path,
) -> Result<SealKeys, SessionsError> {
    if let Some(path) = key_file {
        return Ok(SealKeys::load(path)?);
    }
    if database_given && !config.exists() {
        return Err(SessionsError::NoKey(format!(
            "no --key-file, and no config file {} to name one",
            config.display()
        )));
    }
    let path = Config::load(config)?.recording.key_file;
    match SealKeys::load(&path) {
        Err(e) if e.is_not_found() => Err(SessionsError::NoKey(format!(
            "the key file {} ([recording] key_file of {}) does not exist",
            path.display(),
            config.display()
        ))),
        other => Ok(other?),
    }
}

/// The lines printed for one session.
pub fn session_lines(s: &SessionRecord, r: &SessionReport) -> String {
    let id = s.id;
    if !r.problems.is_empty() {
        return r
            .problems
            .iter()
            .map(|p| format!("BROKEN {id}: {p}\n"))
            .collect();
    }
    if !r.unknown_keys.is_empty() {
        return format!(
            "UNKNOWN-KEY {id}: sealed with key {}, which the key file does not list; cannot verify\n",
            quoted(&r.unknown_keys)
        );
    }
    let counts = format!("{} chunks {} events", r.chunks, r.events);
    if r.unsealed {
        return format!(
            "UNSEALED {id} {counts}: recorded before keyed sealing; its unkeyed hash chain is intact, but a database writer could have rewritten it\n"
        );
    }
    if r.live {
        format!("OK {id} {counts} (live: its end is sealed when it ends)\n")
    } else {
        format!("OK {id} {counts}\n")
    }
}

/// The lines printed for one audit chain.
pub fn chain_lines(r: &ChainReport) -> String {
    let id = r.chain_id;
    if !r.problems.is_empty() {
        return r
            .problems
            .iter()
            .map(|p| format!("BROKEN audit chain {id}: {p}\n"))
            .collect();
    }
    if !r.unknown_keys.is_empty() {
        return format!(
            "UNKNOWN-KEY audit chain {id}: sealed with key {}, which the key file does not list; cannot verify\n",
            quoted(&r.unknown_keys)
        );
    }
    let range = r
        .last_seq
        .map_or_else(String::new, |l| format!(" (seq 0–{l})"));
    let state = if r.closed {
        "closed".to_owned()
    } else {
        "open: no audit_chain_closed event (the gateway is running or stopped abruptly, or its newest events were deleted; the gateway's log has the last seq)".to_owned()
    };
    format!("OK audit chain {id}: {} events{range}, {state}\n", r.events)
}

fn quoted(ids: &BTreeSet<String>) -> String {
    ids.iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one session with its chunks and audit events. Chunks that
/// cannot be decoded are a break at that chunk; other store failures are
/// errors.
pub async fn check(
    db: &Db,
    keys: &SealKeys,
    s: &SessionRecord,
) -> Result<SessionReport, SessionsError> {
    let chunks = match db.store().chunks(s.id).await {
        Ok(c) => Ok(c),
        Err(StoreError::CorruptChunk { seq, why, .. }) => Err((seq, why)),
        Err(e) => return Err(db.err(e)),
    };
    let audit = db
        .store()
        .audit_for_session(s.id)
        .await
        .map_err(|e| db.err(e))?;
    let read = chunks.as_deref().map_err(Clone::clone);
    Ok(check_session(keys, s, read, &audit))
}

/// Tallies of a run.
#[derive(Default)]
struct Tally {
    broken: usize,
    unknown: usize,
    unknown_ids: BTreeSet<String>,
    unsealed: usize,
    checked: usize,
}

impl Tally {
    fn add(&mut self, problems: bool, unknown: &BTreeSet<String>) {
        self.checked += 1;
        if problems {
            self.broken += 1;
        } else if !unknown.is_empty() {
            self.unknown += 1;
        }
        self.unknown_ids.extend(unknown.iter().cloned());
    }
}

/// Runs `sessions verify ID` or `sessions verify --all`.
pub async fn run(
    db: &Db,
    keys: &SealKeys,
    id: Option<&str>,
    all: bool,
) -> Result<(), SessionsError> {
    let sessions = match id {
        Some(id) if !all => vec![db.resolve(id).await?],
        _ => db.list(&SessionFilter::default()).await?,
    };
    let mut t = Tally::default();
    for s in &sessions {
        let r = check(db, keys, s).await?;
        t.add(!r.problems.is_empty(), &r.unknown_keys);
        if r.unsealed && r.is_intact() {
            t.unsealed += 1;
        }
        emit(&session_lines(s, &r))?;
    }
    if all {
        let mut summary = format!("verified {} sessions: {} broken", sessions.len(), t.broken);
        if t.unsealed > 0 {
            summary.push_str(&format!(", {} unsealed", t.unsealed));
        }
        emit(&format!("{summary}\n"))?;
        verify_chains(db, keys, sessions, &mut t).await?;
    }
    if t.broken > 0 {
        return Err(SessionsError::Broken {
            broken: t.broken,
            checked: t.checked,
        });
    }
    if t.unknown > 0 {
        return Err(SessionsError::UnknownKeys {
            count: t.unknown,
            ids: quoted(&t.unknown_ids),
        });
    }
    Ok(())
}

/// Checks every audit chain and prints a line per chain and a summary.
async fn verify_chains(
    db: &Db,
    keys: &SealKeys,
    sessions: Vec<SessionRecord>,
    t: &mut Tally,
) -> Result<(), SessionsError> {
    let store = db.store();
    let by_id: HashMap<_, _> = sessions.into_iter().map(|s| (s.id, s)).collect();
    let chains = store.audit_chain_ids().await.map_err(|e| db.err(e))?;
    let (mut events, mut broken) = (0, 0);
    for chain_id in &chains {
        let rows = store.audit_chain(*chain_id).await.map_err(|e| db.err(e))?;
        let r = check_audit_chain(keys, *chain_id, &rows, &by_id);
        events += r.events;
        broken += usize::from(!r.problems.is_empty());
        t.add(!r.problems.is_empty(), &r.unknown_keys);
        emit(&chain_lines(&r))?;
    }
    let unchained = store.unchained_audit_count().await.map_err(|e| db.err(e))?;
    let mut summary = format!(
        "verified {} audit chains ({events} events): {broken} broken",
        chains.len()
    );
    if unchained > 0 {
        summary.push_str(&format!(
            "; {unchained} audit events are in no chain (recorded before keyed sealing, or by `ssmgate sessions`) and cannot be verified"
        ));
    }
    emit(&format!("{summary}\n"))
}
