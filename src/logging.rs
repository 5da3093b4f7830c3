//! The process's log output: `tracing` to stderr, as text or as one JSON
//! object per line (`[log] format`), filtered by `SSMGATE_LOG`, else
//! `RUST_LOG`, else `[log] level` (default `info`), with every field value
//! escaped and bounded so that no value, whoever supplied it, can forge a
//! log line, hide text with invisible characters or blow up a line (see
//! [`crate::untrusted`]).
//!
//! Everything logged while a session is handled runs inside its
//! [`session_span`], which carries the gateway session id from the
//! channel's open and the SSM session id once StartSession returned it
//! ([`record_ssm_session`]). In text the span leads the line:
//!
//! ```text
//! 2025-01-01T12:00:00.000000Z  INFO session{gateway_session=6f1c… ssm_session=alice-0a1b…}: ssmgate::gateway::session: session started user=alice …
//! ```
//!
//! In JSON each line is one flat object: `timestamp`, `level`, `module`
//! (the code's module path, tracing's "target"), `message`, then the
//! fields of the spans the event happened in, outermost first, then the
//! event's own (an event's field of the same name wins, so no key appears
//! twice; a field named `timestamp`, `level` or `module` is written as
//! `field.NAME`). The `target` key is the session's target, as in text:
//!
//! ```json
//! {"timestamp":"2025-01-01T12:00:00.000000Z","level":"INFO","module":"ssmgate::gateway::session","message":"session started","gateway_session":"6f1c…","ssm_session":"alice-0a1b…","user":"alice","target":"i-0a1b…"}
//! ```
//!
//! Strings are escaped by [`crate::untrusted::write_escaped`] before JSON's
//! own escaping, and cut at [`MAX_FIELD_CHARS`], as in text.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
pub use tracing_subscriber::EnvFilter as Filter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, JsonFields, Writer, debug_fn};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter, SubscriberBuilder,
};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

pub use crate::config::LogFormat;
use crate::untrusted::{bounded_to, write_escaped};

/// Most characters of one field value in a log line.
pub const MAX_FIELD_CHARS: usize = 2048;

/// Installs the global text subscriber writing to `writer`. Fails when one
/// is already installed.
pub fn install<W>(
    filter: EnvFilter,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    install_as(LogFormat::Text, filter, writer)
}

/// Installs the global subscriber writing `format` lines to `writer`.
/// Fails when one is already installed.
pub fn install_as<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => text(filter, writer).try_init(),
        LogFormat::Json => json(filter, writer).try_init(),
    }
}

/// A JSON-lines subscriber writing to `writer`, not installed (for
/// `tracing::subscriber::with_default`).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    json(filter, writer).finish()
}

fn text<W>(
    filter: EnvFilter,
    writer: W,
) -> SubscriberBuilder<
    impl for<'w> FormatFields<'w> + Send + Sync + 'static,
    format::Format,
    EnvFilter,
    W,
>
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
        // Colours only for a person at a terminal, not a pipe or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(fields)
}

fn json<W>(filter: EnvFilter, writer: W) -> SubscriberBuilder<JsonFields, JsonLines, EnvFilter, W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
}

/// The filter from `SSMGATE_LOG`, or `info`.
pub fn filter_from_env() -> EnvFilter {
    filter_or("info")
}

/// The filter from `SSMGATE_LOG`, else `RUST_LOG`, else `level` (a
/// variable that is set but not a valid filter is skipped, with a note on
/// stderr).
pub fn filter_or(level: &str) -> EnvFilter {
    for var in ["SSMGATE_LOG", "RUST_LOG"] {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
                Ok(filter) => return filter,
                Err(e) => eprintln!("ssmgate: ignoring {var}: {e}"),
            },
            _ => {}
        }
    }
    EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The span a session's work runs in: every line logged inside carries
/// `gateway_session`, and `ssm_session` once [`record_ssm_session`] set
/// it. At level ERROR so that it is enabled whenever any line is (a span
/// filtered out would take the ids off `warn` lines under `level = "warn"`).
pub fn session_span(gateway_session: Uuid) -> tracing::Span {
    tracing::error_span!(
        "session",
        gateway_session = %gateway_session,
        ssm_session = tracing::field::Empty
    )
}

/// Sets the current session span's `ssm_session` (nothing outside one).
pub fn record_ssm_session(ssm_session: &str) {
    tracing::Span::current().record("ssm_session", tracing::field::display(ssm_session));
}

/// One JSON object per event: time, level, module, message, then the
/// fields of the spans it happened in (outermost first), then its own.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut line = Line(vec![
            ("timestamp".into(), Value::String(time)),
            ("level".into(), Value::String(meta.level().as_str().into())),
            ("module".into(), Value::String(meta.target().into())),
            ("message".into(), Value::String(String::new())),
        ]);
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // Span fields are stored as a JSON object (`JsonFields`).
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&fields.fields) {
                    for (name, value) in map {
                        line.set(&name, bounded_value(value));
                    }
                }
            }
        }
        event.record(&mut line);
        let mut out = String::from("{");
        for (i, (name, value)) in line.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(name.clone()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
        out.push('}');
        writeln!(writer, "{out}")
    }
}

/// A line's keys in order; setting a key again replaces its value.
struct Line(Vec<(String, Value)>);

/// Keys of the line itself, not of a field.
const RESERVED: [&str; 3] = ["timestamp", "level", "module"];

impl Line {
    fn set(&mut self, name: &str, value: Value) {
        let name = if RESERVED.contains(&name) {
            format!("field.{name}")
        } else {
            name.to_owned()
        };
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    fn text(&mut self, field: &Field, s: &str) {
        self.set(field.name(), Value::String(bounded_to(s, MAX_FIELD_CHARS)));
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: they become their text.
        match serde_json::Number::from_f64(value) {
            Some(n) => self.set(field.name(), Value::Number(n)),
            None => self.text(field, &value.to_string()),
        }
    }
}

/// `value` with its strings escaped and bounded as event fields are.
fn bounded_value(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(bounded_to(&s, MAX_FIELD_CHARS)),
        Value::Array(_) | Value::Object(_) => {
            Value::String(bounded_to(&value.to_string(), MAX_FIELD_CHARS))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    fn json_lines(text: &str) -> Vec<serde_json::Map<String, Value>> {
        text.lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(Value::Object(m)) => m,
                other => panic!("not a JSON object: {l:?} ({other:?})"),
            })
            .collect()
    }

    #[test]
    fn json_lines_inside_a_session_carry_both_ids() {
        let buf = Buffer::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), buf.clone());
        let gateway = Uuid::new_v4();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            let span = session_span(gateway);
            let _entered = span.enter();
            tracing::info!(user = "alice", "before start");
            record_ssm_session("alice-0123456789abcdef0");
            tracing::warn!(
                gateway_session = %gateway,
                bytes = 42_u64,
                ok = true,
                evil = "a\nb\u{202e}c",
                target = "i-0a1b",
                level = 3,
                "session started"
            );
        });
        let lines = json_lines(&buf.text());
        assert_eq!(lines.len(), 3, "{}", buf.text());
        assert_eq!(lines[0]["message"], "outside");
        assert!(!lines[0].contains_key("gateway_session"));
        assert_eq!(lines[1]["message"], "before start");
        assert_eq!(lines[1]["gateway_session"], gateway.to_string());
        assert_eq!(lines[1]["user"], "alice");
        assert!(!lines[1].contains_key("ssm_session"));
        let started = &lines[2];
        assert_eq!(started["level"], "WARN");
        assert_eq!(started["module"], module_path!());
        assert_eq!(started["target"], "i-0a1b");
        assert_eq!(started["field.level"], 3);
        assert_eq!(started["gateway_session"], gateway.to_string());
        assert_eq!(started["ssm_session"], "alice-0123456789abcdef0");
        assert_eq!(started["bytes"], 42);
        assert_eq!(started["ok"], true);
        assert_eq!(started["evil"], "a\\nb\\u{202e}c");
        assert!(
            started["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        // The span's key and the event's own are one key.
        let raw = buf.text();
        let last = raw.lines().last().unwrap_or_default();
        assert_eq!(last.matches("\"gateway_session\"").count(), 1, "{last}");
    }

    #[test]
    fn json_values_are_bounded() {
        let buf = Buffer::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), buf.clone());
        let long = "x".repeat(MAX_FIELD_CHARS * 3);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(name = %long, "long");
        });
        let lines = json_lines(&buf.text());
        let name = lines[0]["name"].as_str().unwrap_or_default();
        assert!(name.len() < MAX_FIELD_CHARS + 32, "{}", name.len());
        assert!(name.ends_with(&format!("…[+{} chars]", MAX_FIELD_CHARS * 2)));
    }

    #[test]
    fn text_lines_show_the_session_span() {
        let buf = Buffer::default();
        let subscriber = text(EnvFilter::new("info"), buf.clone())
            .with_ansi(false)
            .finish();
        let gateway = Uuid::new_v4();
        tracing::subscriber::with_default(subscriber, || {
            let span = session_span(gateway);
            let _entered = span.enter();
            record_ssm_session("alice-0123");
            tracing::info!(user = "a\nb", "session started");
        });
        let text = buf.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(&format!(
                "session{{gateway_session={gateway} ssm_session=alice-0123}}"
            )),
            "{text}"
        );
        assert!(text.contains(r#"user="a\nb""#), "{text}");
    }

    #[test]
    fn the_environment_replaces_the_configured_level() {
        // Only reads: the variables may or may not be set around the test.
        let shown = filter_or("debug").to_string();
        let env_set = ["SSMGATE_LOG", "RUST_LOG"].iter().any(|v| {
            std::env::var(v)
                .map(|s| EnvFilter::try_new(&s).is_ok() && !s.trim().is_empty())
                .unwrap_or(false)
        });
        if !env_set {
            assert_eq!(shown, "debug");
        }
    }
}
