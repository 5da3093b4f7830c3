//! The process's log output: `tracing` to stderr, filtered by `SSMGATE_LOG`
//! (default `info`), with every field value escaped and bounded so that no
//! value, whoever supplied it, can forge a log line, hide text with
//! invisible characters or blow up a line (see [`crate::untrusted`]).

use std::fmt;

use tracing::field::Field;
pub use tracing_subscriber::EnvFilter as Filter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::untrusted::write_escaped;

/// Most characters of one field value in a log line.
pub const MAX_FIELD_CHARS: usize = 2048;

/// Installs the global subscriber writing to `writer`. Fails when one is
/// already installed.
pub fn install<W>(
    filter: EnvFilter,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fields = debug_fn(
        |w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() != "message" {
                write!(w, "{}=", field.name())?;
            }
            write_escaped(w, &text, MAX_FIELD_CHARS)
        },
    )
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .fmt_fields(fields)
        .try_init()
}

/// The filter from `SSMGATE_LOG`, or `info`.
pub fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_env("SSMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}
