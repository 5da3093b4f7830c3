//! Text that came from a user (login names, forward hosts, environment
//! values, reasons) on its way into logs and the audit trail: escaped so it
//! cannot forge a line or hide itself, and bounded so a 64 KB login name
//! costs a few hundred bytes of log, not 64 KB.
//!
//! [`Untrusted`] is for `tracing` fields (`user = %Untrusted(name)`);
//! [`bounded`] for JSON audit details (serde escapes, this only bounds and
//! removes invisible formatting). The log formatter escapes every field as
//! well (the `logging` module); this module is the first line, the formatter
//! the backstop.

use std::fmt;

/// Most characters of one untrusted value kept in a log line or audit field.
pub const MAX_CHARS: usize = 256;

/// A user-controlled string, displayed escaped and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, MAX_CHARS)
    }
}

/// Writes `s` with control and invisible formatting characters escaped
/// (`\n`, `\u{202e}`, …) and a `…[+N chars]` marker after `max` characters.
pub fn write_escaped(out: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    for (count, c) in s.chars().enumerate() {
        if count == max {
            let rest = s.chars().count() - max;
            return write!(out, "…[+{rest} chars]");
        }
        if needs_escape(c) {
            write!(out, "{}", c.escape_default())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

/// `s` escaped and bounded, as an owned string (for audit details).
pub fn bounded(s: &str) -> String {
    bounded_to(s, MAX_CHARS)
}

/// `s` escaped and bounded to `max` characters.
pub fn bounded_to(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 2));
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut out, s, max);
    out
}

/// Control characters, and the invisible formatting characters that can
/// reorder or hide text on a terminal (bidi controls, zero-width
/// characters, the BOM, the line and paragraph separators).
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_invisible_format(c)
}

/// Unicode format characters that change how text reads without being
/// seen: bidi embeddings/overrides/isolates and marks, zero-width spaces
/// and joiners, word joiner and invisible operators, the BOM, soft hyphen,
/// line/paragraph separators, interlinear annotation and tag characters.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{115F}' | '\u{1160}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_newlines_and_invisible_characters() {
        let forged = "web-1\n2026-01-01T00:00:00Z INFO key accepted user=alice";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.contains("web-1\\n2026"), "{shown}");
        let bidi = "INC-1\u{202E}toor";
        assert_eq!(Untrusted(bidi).to_string(), "INC-1\\u{202e}toor");
        assert_eq!(Untrusted("a\u{200B}b").to_string(), "a\\u{200b}b");
        assert_eq!(Untrusted("plain é 日本").to_string(), "plain é 日本");
    }

    #[test]
    fn bounds_length() {
        let long = "a".repeat(64 * 1024);
        let shown = bounded(&long);
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with(&format!("…[+{} chars]", 64 * 1024 - MAX_CHARS)));
        assert_eq!(bounded(&"b".repeat(MAX_CHARS)), "b".repeat(MAX_CHARS));
    }
}
