//! Session recording and audit storage: the [`Store`] trait with its
//! Postgres and SQLite implementations, the records it keeps, the binary
//! event encoding, and the hash chain and keyed seals that make tampering
//! evident.
//!
//! Layout:
//! - [`records`]: the values stored (sessions, event chunks, audit events);
//! - [`store`]: the [`Store`] trait, [`StoreError`], and [`connect`], which
//!   picks the backend from the database URL and applies the migrations
//!   (`migrations/postgres/`, `migrations/sqlite/`, embedded at build time);
//! - [`postgres`], [`sqlite`]: the two backends, each only its connection
//!   set-up and how it stores ids and timestamps; `sql` (the generic
//!   [`SqlStore`] they both are) runs the statements of `dialect` and maps
//!   rows through `rows`;
//! - [`codec`]: how a chunk's events are encoded (the `events` column, and
//!   what is hashed);
//! - [`chain`]: linking chunks into a hash chain and verifying it;
//! - [`keys`]: the recording key file (HMAC keys kept outside the
//!   database, rotated by id);
//! - [`seal`]: the keyed seals of chunks, session starts and ends, and
//!   audit events;
//! - [`check`]: keyed verification of sessions and audit chains (what
//!   `ssmgate sessions verify` reports).
//!
//!
//! Writing from the gateway:
//! - [`recorder`]: the [`Recorder`] handle (memory-bounded queue, audit
//!   events, the fail-closed check);
//! - [`tap`]: a session's [`SessionTap`] (batching events into sealed
//!   chunks, byte counts, the end);
//! - [`writer`]: the task that writes ops in order, switching to the
//!   [`spool`] file while the store is down or slow;
//! - [`op`]: one write ([`Op`]) and its spool encoding.

pub mod chain;
pub mod check;
pub mod cluster;
pub mod codec;
mod dialect;
pub mod keys;
pub mod op;
pub mod postgres;
pub mod recorder;
pub mod records;
mod rows;
pub mod seal;
pub mod spool;
mod sql;
pub mod sqlite;
pub mod store;
pub mod tap;
mod writer;

pub use chain::{BrokenLink, ChainWriter, LinkError, verify};
pub use check::{ChainReport, SessionReport, check_audit_chain, check_session};
pub use cluster::{KillRow, LockRow, ReplicaRow};
pub use keys::{KeyError, SealKey, SealKeys};
pub use op::Op;
pub use postgres::PgStore;
pub use recorder::{
    CHAIN_CLOSED, Recorder, RecorderError, RecorderOptions, RecorderStats, RecordingUnavailable,
};
pub use records::{
    AuditEvent, AuditKind, AuditLink, AuthKind, Decision, EndReason, Event, EventChunk, EventKind,
    GrantRow, RecordingMode, SessionEnd, SessionFilter, SessionKind, SessionRecord, UnknownCode,
    now, truncate_micros,
};
pub use seal::Seal;
pub use spool::SpoolError;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;
pub use store::{Store, StoreError, StoreOptions, connect, connect_with, redact_url};
pub use tap::SessionTap;
