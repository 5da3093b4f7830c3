//! UTC calendar arithmetic (no time-zone database): a [`SystemTime`] as an
//! RFC 3339 / Cedar `datetime` string, its UTC hour and weekday, and RFC 3339
//! parsing. Used by the policy context, policy tools and the simulator's
//! `channel_closed` timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Weekday names as policies see them (`context.weekday`), Monday first.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A point in time broken down in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year, e.g. 2026.
    pub year: i64,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-59.
    pub second: u32,
    /// 0-999.
    pub millis: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: usize,
}

impl Utc {
    /// Breaks `t` down; times before 1970 count as 1970-01-01T00:00:00Z.
    pub fn from_system(t: SystemTime) -> Utc {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis: since.subsec_millis(),
            // 1970-01-01 was a Thursday (index 3).
            weekday: (days + 3).rem_euclid(7) as usize,
        }
    }

    /// `Mon` … `Sun`.
    pub fn weekday_name(&self) -> &'static str {
        WEEKDAYS[self.weekday % 7]
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ`, a string Cedar's `datetime()` accepts.
    pub fn to_cedar(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds), for people.
    pub fn to_rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a calendar date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space may replace
/// the `T`; `z` and `t` are accepted). Times before 1970 are refused.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "\"{text}\" is not an RFC 3339 time such as 2026-11-03T14:00:00Z or 2026-11-03T15:00:00+01:00"
        )
    };
    let b = text.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return Err(bad());
    }
    let num = |from: usize, len: usize| -> Result<u32, String> {
        let s = text.get(from..from + len).ok_or_else(bad)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let seps_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !seps_ok {
        return Err(bad());
    }
    let (year, month, day) = (i64::from(num(0, 4)?), num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let kept = &frac[..digits.min(9)];
        nanos = kept.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - kept.len() as u32);
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            let sign = match rb.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            let (h, m) = match rb.len() {
                6 if rb[3] == b':' => (&rest[1..3], &rest[4..6]),
                5 => (&rest[1..3], &rest[3..5]),
                _ => return Err(bad()),
            };
            let h: i64 = h.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second.min(59))
        - offset_secs;
    let secs =
        u64::try_from(secs).map_err(|_| format!("{text}: times before 1970 are not supported"))?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_down_known_times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_793_714_709_123);
        let u = Utc::from_system(t);
        assert_eq!(u.to_cedar(), "2026-11-03T14:05:09.123Z");
        // The CreatedDate of the data-channel spec's test vectors.
        let spec = Utc::from_system(UNIX_EPOCH + Duration::from_millis(1_503_434_274_948));
        assert_eq!(spec.to_cedar(), "2017-08-22T20:37:54.948Z");
        assert_eq!(u.weekday_name(), "Tue");
        assert_eq!(u.hour, 14);
        let epoch = Utc::from_system(UNIX_EPOCH);
        assert_eq!(epoch.to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(epoch.weekday_name(), "Thu");
        let leap = Utc::from_system(parse_rfc3339("2024-02-29T23:59:59Z").unwrap());
        assert_eq!((leap.month, leap.day, leap.weekday_name()), (2, 29, "Thu"));
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-03T14:05:09Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-03T15:05:09+01:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-03 09:05:09-0500").unwrap(), z);
        let f = parse_rfc3339("2026-11-03T14:05:09.5Z").unwrap();
        assert_eq!(f.duration_since(z).unwrap(), Duration::from_millis(500));
        for s in (0..2000).map(|d| UNIX_EPOCH + Duration::from_secs(d * 86_400 * 17 + d * 3607)) {
            let u = Utc::from_system(s);
            assert_eq!(parse_rfc3339(&u.to_rfc3339()).unwrap(), s);
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
            "2026-11-03T14:05:09.Z",
            "1969-12-31T23:59:59Z",
            "2026-11-03T14:05:09Zjunk",
            "２026-11-03T14:05:09Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
