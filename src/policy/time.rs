//! Times as policies see them, on chrono: the context's `time` (a Cedar
//! `datetime` string), `hour` and `weekday` (UTC), and RFC 3339 parsing for
//! `--at` and test files, with an error that shows what is expected.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

/// `t` in UTC; times before 1970 count as 1970-01-01T00:00:00Z.
pub fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::from(t.max(UNIX_EPOCH))
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, a string Cedar's `datetime()` accepts.
pub fn cedar_datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds), for people.
pub fn rfc3339_secs(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `Mon` … `Sun`, as policies see it (`context.weekday`).
pub fn weekday_name(t: &DateTime<Utc>) -> String {
    t.weekday().to_string()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space may replace
/// the `T`; `z` and `t` are accepted, and so is `±HHMM`). A leap second
/// (`:60`) counts as `:59`. Times before 1970 are refused.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "\"{text}\" is not an RFC 3339 time such as 2026-11-03T14:00:00Z or 2026-11-03T15:00:00+01:00"
        )
    };
    let t = DateTime::parse_from_rfc3339(text)
        .or_else(|e| match colon_in_offset(text) {
            Some(fixed) => DateTime::parse_from_rfc3339(&fixed),
            None => Err(e),
        })
        .map_err(|_| bad())?;
    let secs = u64::try_from(t.timestamp())
        .map_err(|_| format!("{text}: times before 1970 are not supported"))?;
    // chrono gives a leap second as :59 with a fraction past 1 s.
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `text` with a `±HHMM` offset at its end written `±HH:MM`, if it has one.
fn colon_in_offset(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let at = b.len().checked_sub(5)?;
    let offset = &b[at..];
    let numeric = matches!(offset[0], b'+' | b'-') && offset[1..].iter().all(u8::is_ascii_digit);
    numeric.then(|| format!("{}:{}", &text[..at + 3], &text[at + 3..]))
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn breaks_down_known_times() {
        let u = utc(UNIX_EPOCH + Duration::from_millis(1_793_714_709_123));
        assert_eq!(cedar_datetime(&u), "2026-11-03T14:05:09.123Z");
        // The CreatedDate of the data-channel spec's test vectors.
        let spec = utc(UNIX_EPOCH + Duration::from_millis(1_503_434_274_948));
        assert_eq!(cedar_datetime(&spec), "2017-08-22T20:37:54.948Z");
        assert_eq!(weekday_name(&u), "Tue");
        assert_eq!(u.hour(), 14);
        let epoch = utc(UNIX_EPOCH);
        assert_eq!(rfc3339_secs(&epoch), "1970-01-01T00:00:00Z");
        assert_eq!(weekday_name(&epoch), "Thu");
        let before = utc(UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(before, epoch, "times before 1970 count as the epoch");
        let leap = utc(parse_rfc3339("2024-02-29T23:59:59Z").unwrap());
        assert_eq!(
            (leap.month(), leap.day(), weekday_name(&leap).as_str()),
            (2, 29, "Thu")
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-03T14:05:09Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-03T15:05:09+01:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-03 09:05:09-0500").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-03t14:05:09z").unwrap(), z);
        let f = parse_rfc3339("2026-11-03T14:05:09.5Z").unwrap();
        assert_eq!(f.duration_since(z).unwrap(), Duration::from_millis(500));
        let leap = parse_rfc3339("2016-12-31T23:59:60.25Z").unwrap();
        let before = parse_rfc3339("2016-12-31T23:59:59Z").unwrap();
        assert_eq!(
            leap.duration_since(before).unwrap(),
            Duration::from_millis(250)
        );
        for s in (0..2000).map(|d| UNIX_EPOCH + Duration::from_secs(d * 86_400 * 17 + d * 3607)) {
            assert_eq!(parse_rfc3339(&rfc3339_secs(&utc(s))).unwrap(), s);
        }
    }

    #[test]
    fn refuses_bad_times() {
        for bad in [
            "",
            "2026-11-03",
            "2026-11-03T14:05:09",
            "2026-13-03T14:05:09Z",
            "2026-02-30T14:05:09Z",
            "2026-11-03T24:00:00Z",
            "2026-11-03T14:05:09+1",
            "2026-11-03T14:05:09+2400",
            "2026-11-03T14:05:09.Z",
            "1969-12-31T23:59:59Z",
            "2026-11-03T14:05:09Zjunk",
            "２026-11-03T14:05:09Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        let err = parse_rfc3339("tomorrow").unwrap_err();
        assert!(
            err.contains("\"tomorrow\" is not an RFC 3339 time such as"),
            "{err}"
        );
        let err = parse_rfc3339("1969-12-31T23:59:59Z").unwrap_err();
        assert!(err.contains("before 1970"), "{err}");
    }
}
