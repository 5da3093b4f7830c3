//! Formatting shared by the `sessions` commands: timestamps, durations,
//! byte counts, text from the database made safe for a terminal, and the
//! `--since` parser.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// RFC 3339 with microseconds (`2026-11-03T10:11:12.123456Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A duration as `42s`, `3m05s`, `2h03m` or `3d04h` (negative shown as 0s).
pub fn duration(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if s < 60 {
        format!("{secs}s")
    } else if s < 3600 {
        format!("{mins}m{secs:02}s")
    } else if s < 86_400 {
        format!("{}h{mins:02}m", s / 3600)
    } else {
        format!("{days}d{hours:02}h")
    }
}

/// A byte count for people: `512 B`, `1.2 KiB`, `3.4 MiB`, … `8.0 EiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// Text from the database with control characters escaped (`\u{1b}`,
/// `\n`), so a stored value cannot drive the administrator's terminal.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Parses `--since`: RFC 3339 (`2026-11-03T10:00:00Z`), a date
/// (`2026-11-03`, midnight UTC) or a duration before `now` (`90s`, `30m`,
/// `2h`, `7d`, `2w`).
pub fn parse_since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let bad = || {
        format!(
            "expected RFC 3339 (2026-11-03T10:00:00Z), a date (2026-11-03) or a duration ago (90s, 30m, 2h, 7d, 2w), got {value:?}"
        )
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_secs: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .and_then(TimeDelta::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| format!("{value:?} reaches back too far"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn since_accepts_rfc3339_dates_and_durations() {
        let now = at("2026-11-03T12:00:00Z");
        assert_eq!(
            parse_since("2026-11-01T08:30:00+02:00", now).unwrap(),
            at("2026-11-01T06:30:00Z")
        );
        assert_eq!(
            parse_since("2026-10-31", now).unwrap(),
            at("2026-10-31T00:00:00Z")
        );
        assert_eq!(parse_since("90s", now).unwrap(), at("2026-11-03T11:58:30Z"));
        assert_eq!(parse_since("30m", now).unwrap(), at("2026-11-03T11:30:00Z"));
        assert_eq!(parse_since("2h", now).unwrap(), at("2026-11-03T10:00:00Z"));
        assert_eq!(parse_since("7d", now).unwrap(), at("2026-10-27T12:00:00Z"));
        assert_eq!(parse_since("2w", now).unwrap(), at("2026-10-20T12:00:00Z"));
        assert_eq!(parse_since("0m", now).unwrap(), now);
    }

    #[test]
    fn since_refuses_nonsense() {
        let now = at("2026-11-03T12:00:00Z");
        for bad in [
            "",
            "m",
            "2",
            "2y",
            "-3h",
            "1.5h",
            "yesterday",
            "2026-13-01",
            "h2",
        ] {
            let err = parse_since(bad, now).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
        let err = parse_since("99999999999999999d", now).unwrap_err();
        assert!(err.contains("too far") || err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn sizes_durations_and_text() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1_258_291), "1.2 MiB");
        assert_eq!(bytes(1 << 40), "1.0 TiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(duration(TimeDelta::seconds(42)), "42s");
        assert_eq!(duration(TimeDelta::seconds(185)), "3m05s");
        assert_eq!(duration(TimeDelta::seconds(7380)), "2h03m");
        assert_eq!(duration(TimeDelta::seconds(3 * 86_400 + 4 * 3600)), "3d04h");
        assert_eq!(duration(TimeDelta::seconds(-5)), "0s");
        assert_eq!(printable("plain ✓"), "plain ✓");
        assert_eq!(printable("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
        assert_eq!(
            timestamp(at("2026-11-03T10:11:12.999Z")),
            "2026-11-03 10:11:12"
        );
    }
}
