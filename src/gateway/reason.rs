//! The `Reason` sent with `StartSession`, composed by the gateway (never
//! taken verbatim from the user): who, which gateway session, and the
//! user's justification, in one line that satisfies the API's `^.{1,256}$`
//! and that CloudTrail readers can trust field by field.

/// Most characters the API accepts in `Reason`.
pub const MAX_AWS_REASON_CHARS: usize = 256;
/// Longest user name kept whole (longer ones are cut; no valid
/// configuration produces them).
const MAX_USER_CHARS: usize = 128;
/// Longest gateway session id kept whole (ours are 36-character UUIDs).
const MAX_SESSION_CHARS: usize = 64;
/// Appended where text was cut.
const ELLIPSIS: char = '…';

/// `ssmgate user=<user> session=<id>[ reason="<justification>"]`.
///
/// The gateway's fields come first, always in this order; the user's text
/// comes last, in double quotes, with `\`, `"` and `=` escaped by a
/// backslash, so that no justification can look like a field of the
/// gateway's (`… user=root` becomes `… user\=root`), whether the reader
/// parses quotes or takes the last `key=value` it sees.
///
/// Control characters (every Unicode `Cc`, so `\t`, `\r` and `\n` too) and
/// invisible formatting characters (bidi controls, zero-width characters;
/// [`crate::untrusted::is_invisible_format`]) are removed; runs of
/// whitespace in the justification become one space, and whitespace inside
/// the user name or session id becomes `_` (so neither can fake another
/// field). The result has at most [`MAX_AWS_REASON_CHARS`] characters
/// (characters, not bytes): the justification is cut and ends with `…`
/// when it does not fit (never inside an escape); the user and session id
/// are never cut (unless absurdly long). An empty justification is left
/// out.
pub fn compose_reason(user: &str, justification: Option<&str>, gateway_session_id: &str) -> String {
    let user = cut(&field(user), MAX_USER_CHARS);
    let session = cut(&field(gateway_session_id), MAX_SESSION_CHARS);
    let mut out = format!("ssmgate user={user} session={session}");
    let text = justification.map(free_text).unwrap_or_default();
    if text.is_empty() {
        return out;
    }
    const LABEL: &str = " reason=\"";
    // The label, and the closing quote.
    let room = MAX_AWS_REASON_CHARS.saturating_sub(out.chars().count() + LABEL.chars().count() + 1);
    if room < 2 {
        return out;
    }
    out.push_str(LABEL);
    out.push_str(&quote_cut(&text, room));
    out.push('"');
    out
}

/// `text` with `\`, `"` and `=` escaped, in at most `room` characters;
/// cut text ends with `…` and never splits an escape.
fn quote_cut(text: &str, room: usize) -> String {
    let pieces: Vec<String> = text
        .chars()
        .map(|c| match c {
            '\\' | '"' | '=' => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect();
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= room {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut used = 0;
    for piece in &pieces {
        let n = piece.chars().count();
        if used + n > room - 1 {
            break;
        }
        out.push_str(piece);
        used += n;
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out.push(ELLIPSIS);
    out
}

/// Characters that are dropped outright: controls and bidi overrides.
fn dropped(c: char) -> bool {
    c.is_control() || crate::untrusted::is_invisible_format(c)
}

/// A single-token field: controls dropped, whitespace → `_`.
fn field(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| !dropped(*c))
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if s.is_empty() { "-".to_owned() } else { s }
}

/// Free text: controls dropped, whitespace collapsed and trimmed.
fn free_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !dropped(*c))
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters; cut text ends with `…` (within `max`).
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    // Don't leave a dangling space before the ellipsis.
    while out.ends_with(' ') {
        out.pop();
    }
    out.push(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "0b6f6f55-1c1a-4c5b-9d0e-2f9a4f3b7c11";

    fn api_ok(reason: &str) -> bool {
        let n = reason.chars().count();
        (1..=MAX_AWS_REASON_CHARS).contains(&n)
            && !reason
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}'))
    }

    #[test]
    fn plain() {
        assert_eq!(
            compose_reason("alice", Some("INC-123 disk full"), SID),
            format!("ssmgate user=alice session={SID} reason=\"INC-123 disk full\"")
        );
        assert_eq!(
            compose_reason("alice", None, SID),
            format!("ssmgate user=alice session={SID}")
        );
        assert_eq!(
            compose_reason("alice", Some(" \t\r\n "), SID),
            format!("ssmgate user=alice session={SID}")
        );
    }

    #[test]
    fn control_characters_and_whitespace() {
        let r = compose_reason(
            "alice",
            Some("a\tb\r\nc\u{7}d\u{1b}[31m  e\u{85}f\u{2028}g"),
            SID,
        );
        assert_eq!(
            r,
            format!("ssmgate user=alice session={SID} reason=\"a b cd[31m e f g\"")
        );
        assert!(api_ok(&r));
    }

    #[test]
    fn injection_attempts_cannot_forge_fields() {
        let r = compose_reason(
            "alice",
            Some("ok\nssmgate user=root session=evil reason=x"),
            SID,
        );
        assert!(api_ok(&r));
        assert!(!r.contains('\n'));
        let first_session = r.find("session=").unwrap();
        assert_eq!(&r[first_session + 8..first_session + 8 + SID.len()], SID);
        assert!(r.starts_with(&format!(
            "ssmgate user=alice session={SID} reason=\"ok ssmgate user\\=root session\\=evil"
        )));
        // A reader taking the last `user=`/`session=` still finds ours.
        assert_eq!(r.matches(" user=").count(), 1, "{r}");
        assert_eq!(r.matches(" session=").count(), 1, "{r}");
        let r = compose_reason("alice", Some("x\" session=evil user=root"), SID);
        assert!(
            r.ends_with("reason=\"x\\\" session\\=evil user\\=root\""),
            "{r}"
        );
        let r = compose_reason("alice", Some("INC-1 \u{202E}toor\u{200B}"), SID);
        assert!(r.ends_with("reason=\"INC-1 toor\""), "{r}");

        let r = compose_reason("alice session=evil\n", Some("x"), SID);
        assert_eq!(
            r,
            format!("ssmgate user=alice_session=evil session={SID} reason=\"x\"")
        );
        let r = compose_reason("\u{202E}bob", None, "s\u{0}id");
        assert_eq!(r, "ssmgate user=bob session=sid");
    }

    #[test]
    fn multibyte_counts_characters() {
        let just = "日本語のテキスト🚀".repeat(40);
        let r = compose_reason("ålice", Some(&just), SID);
        assert_eq!(r.chars().count(), MAX_AWS_REASON_CHARS);
        assert!(r.len() > MAX_AWS_REASON_CHARS, "more bytes than characters");
        assert!(r.ends_with("…\""));
        assert!(r.starts_with(&format!("ssmgate user=ålice session={SID} reason=\"日本語")));
        assert!(api_ok(&r));
    }

    #[test]
    fn ten_kilobyte_justification_is_cut_keeping_user_and_session() {
        let just = "x".repeat(10 * 1024);
        let r = compose_reason("alice", Some(&just), SID);
        assert_eq!(r.chars().count(), MAX_AWS_REASON_CHARS);
        assert!(r.starts_with(&format!("ssmgate user=alice session={SID} reason=\"xxx")));
        assert!(r.ends_with("x…\""));
        assert!(api_ok(&r));
    }

    #[test]
    fn exactly_fitting_text_is_not_cut() {
        let prefix = format!("ssmgate user=alice session={SID} reason=\"");
        let just = "y".repeat(MAX_AWS_REASON_CHARS - prefix.chars().count() - 1);
        let r = compose_reason("alice", Some(&just), SID);
        assert_eq!(r, format!("{prefix}{just}\""));
        let r = compose_reason("alice", Some(&format!("{just}y")), SID);
        assert_eq!(r.chars().count(), MAX_AWS_REASON_CHARS);
        assert!(r.ends_with("…\""));
        // An escape is never split by the cut.
        let r = compose_reason("alice", Some(&"=".repeat(300)), SID);
        assert!(api_ok(&r));
        assert!(r.ends_with("\\=…\""), "{r}");
    }

    #[test]
    fn absurd_user_names_still_fit() {
        let r = compose_reason(&"u".repeat(5000), Some(&"j".repeat(5000)), &"s".repeat(500));
        assert!(api_ok(&r));
        assert!(r.contains(" reason=\"j"));
        let r = compose_reason("", None, "");
        assert_eq!(r, "ssmgate user=- session=-");
    }
}
