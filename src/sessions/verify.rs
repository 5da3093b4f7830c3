//! `ssmgate sessions verify`: recomputes sessions' hash chains
//! ([`crate::recording::chain::verify`]) and reports `OK` or `BROKEN` per
//! session; with `--all`, a summary. Any broken session fails the command.

use super::{Db, SessionsError, emit};
use crate::recording::{SessionFilter, SessionRecord, StoreError, verify};

/// The result of checking one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The chain is intact.
    Ok {
        /// Chunks checked.
        chunks: usize,
        /// Events in them.
        events: usize,
    },
    /// The chain is broken at chunk `seq`.
    Broken {
        /// The first chunk that cannot be trusted.
        seq: i64,
        /// What is wrong there.
        why: String,
    },
}

impl Outcome {
    /// The line printed for session `s`.
    pub fn line(&self, s: &SessionRecord) -> String {
        match self {
            Self::Ok { chunks, events } => format!("OK {} {chunks} chunks {events} events", s.id),
            Self::Broken { seq, why } => {
                format!("BROKEN {}: chain broken at chunk {seq}: {why}", s.id)
            }
        }
    }
}

/// Checks one session's chain. Chunks that cannot even be decoded are a
/// broken chain at that chunk; other store failures are errors.
pub async fn check(db: &Db, s: &SessionRecord) -> Result<Outcome, SessionsError> {
    let chunks = match db.store().chunks(s.id).await {
        Ok(c) => c,
        Err(StoreError::CorruptChunk { seq, why, .. }) => {
            return Ok(Outcome::Broken {
                seq,
                why: format!("stored events are unreadable ({why})"),
            });
        }
        Err(e) => return Err(db.err(e)),
    };
    Ok(match verify(s, &chunks) {
        Ok(()) => Outcome::Ok {
            chunks: chunks.len(),
            events: chunks.iter().map(|c| c.events.len()).sum(),
        },
        Err(b) => Outcome::Broken {
            seq: b.seq,
            why: b.why.to_string(),
        },
    })
}

/// Runs `sessions verify ID` or `sessions verify --all`.
pub async fn run(db: &Db, id: Option<&str>, all: bool) -> Result<(), SessionsError> {
    let sessions = match id {
        Some(id) if !all => vec![db.resolve(id).await?],
        _ => db.list(&SessionFilter::default()).await?,
    };
    let mut broken = 0;
    for s in &sessions {
        let outcome = check(db, s).await?;
        if matches!(outcome, Outcome::Broken { .. }) {
            broken += 1;
        }
        emit(&format!("{}\n", outcome.line(s)))?;
    }
    if all {
        emit(&format!(
            "verified {} sessions: {broken} broken\n",
            sessions.len()
        ))?;
    }
    if broken > 0 {
        return Err(SessionsError::Broken {
            broken,
            checked: sessions.len(),
        });
    }
    Ok(())
}
