//! Session recording and audit storage: the [`Store`] trait with its
//! Postgres and SQLite implementations, the records it keeps, the binary
//! event encoding, and the hash chain that makes tampering evident.
//!
//! Layout:
//! - [`records`]: the values stored (sessions, event chunks, audit events);
//! - [`store`]: the [`Store`] trait, [`StoreError`], and [`connect`], which
//!   picks the backend from the database URL and applies the migrations
//!   (`migrations/postgres/`, `migrations/sqlite/`, embedded at build time);
//! - [`postgres`], [`sqlite`]: the two backends;
//! - [`codec`]: how a chunk's events are encoded (the `events` column, and
//!   what is hashed);
//! - [`chain`]: sealing chunks into a hash chain and verifying it.
//!
//! Writing to the store from the gateway (batching, spooling while the
//! database is down, failing closed) is not here: this module only stores
//! and reads back.

pub mod chain;
pub mod codec;
pub mod postgres;
pub mod records;
mod rows;
pub mod sqlite;
pub mod store;

pub use chain::{BrokenLink, ChainWriter, LinkError, verify};
pub use postgres::PgStore;
pub use records::{
    AuditEvent, AuditKind, AuthKind, Decision, EndReason, Event, EventChunk, EventKind,
    RecordingMode, SessionEnd, SessionFilter, SessionKind, SessionRecord, UnknownCode, now,
    truncate_micros,
};
pub use sqlite::SqliteStore;
pub use store::{Store, StoreError, StoreOptions, connect, connect_with, redact_url};
