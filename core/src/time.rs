//! Calendar arithmetic for timestamps on the wire.
//!
//! The core only has the clock port's Unix milliseconds (Wasm guests have no
//! time zone database and need none): everything the API shows is UTC, as
//! RFC 3339 (`2026-11-22T08:15:00.000Z`) or, for HTTP headers, IMF-fixdate.

use crate::ports::UnixMillis;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// An instant as the API and the stored documents show it: RFC 3339 in UTC
/// with milliseconds ([`rfc3339`]). It holds the clock's milliseconds, so
/// comparing and adding need no parsing and the text is written one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, format = DateTime, example = "2026-11-22T08:15:00.000Z")
)]
pub struct Timestamp(UnixMillis);

impl Timestamp {
    pub fn from_millis(millis: UnixMillis) -> Timestamp {
        Timestamp(millis)
    }

    pub fn millis(self) -> UnixMillis {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_rfc3339(&text)
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-22T08:15:00.000Z`.
pub fn rfc3339(millis: UnixMillis) -> String {
    let (year, month, day) = civil_from_days(millis.div_euclid(MILLIS_PER_DAY));
    let in_day = millis.rem_euclid(MILLIS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `±hh:mm`),
/// fractions of a second allowed, or a plain date (`2026-11-22`, midnight UTC).
pub fn parse_rfc3339(text: &str) -> Result<UnixMillis, String> {
    rfc3339_millis(text).ok_or_else(|| {
        format!("\"{text}\" is not an RFC 3339 time; write e.g. \"2026-11-22T08:15:00Z\" or \"2026-11-22\"")
    })
}

/// [`parse_rfc3339`] but `None` for what it refuses: one sentence answers
/// whatever part is wrong, so the parts need not say which.
fn rfc3339_millis(text: &str) -> Option<UnixMillis> {
    let midnight = date_midnight(text)?;
    let bytes = text.as_bytes();
    if bytes.len() == 10 {
        return Some(midnight);
    }
    if bytes.len() < 20
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (hour, minute, second) = (
        digits(text, 11..13)?,
        digits(text, 14..16)?,
        digits(text, 17..19)?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let Fraction { millis, rest } = fraction_of_second(&text[19..])?;
    let offset_minutes = utc_offset_minutes(rest)?;
    Some(midnight + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis)
}

/// Midnight UTC of the `yyyy-mm-dd` that starts `text`, when that is a day
/// of the calendar.
fn date_midnight(text: &str) -> Option<UnixMillis> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        digits(text, 0..4)?,
        digits(text, 5..7)?,
        digits(text, 8..10)?,
    );
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month as u32, day as u32) * MILLIS_PER_DAY)
}

/// The number at `range` of `text`, which must be all digits: `parse`
/// alone would take a sign.
fn digits(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let digits = text.get(range)?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// A time's fraction of a second and the offset after it.
struct Fraction<'a> {
    millis: i64,
    rest: &'a str,
}

/// The optional `.` fraction that starts `text`; digits past
/// milliseconds are read and dropped.
fn fraction_of_second(text: &str) -> Option<Fraction<'_>> {
    let Some(fraction) = text.strip_prefix('.') else {
        return Some(Fraction {
            millis: 0,
            rest: text,
        });
    };
    let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
    Some(Fraction {
        millis: padded.parse().ok()?,
        rest: &fraction[digits..],
    })
}

/// Minutes east of UTC of a `Z` or `±hh:mm` offset.
fn utc_offset_minutes(offset: &str) -> Option<i64> {
    match offset {
        "Z" | "z" => Some(0),
        _ if offset.len() == 6 && offset.as_bytes()[3] == b':' => {
            let sign = match offset.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = offset[1..3].parse().ok()?;
            let minutes: i64 = offset[4..6].parse().ok()?;
            Some(sign * (hours * 60 + minutes))
        }
        _ => None,
    }
}

/// An RFC 7231 IMF-fixdate, `Wed, 14 Dec 2016 18:20:12 GMT`, for `Date`
/// headers that providers sign and check against their clock.
pub fn http_date(unix_millis: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = unix_millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn http_date_matches_known_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // TeleSign's SDK vector date.
        assert_eq!(
            http_date(1_481_739_612_000),
            "Wed, 14 Dec 2016 18:20:12 GMT"
        );
        // RFC 7231's example.
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        // Leap days: 2000 (divisible by 400) and 2024; 2100 is not leap.
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(1_709_208_000_999),
            "Thu, 29 Feb 2024 12:00:00 GMT"
        );
        assert_eq!(
            http_date(4_107_542_400_000),
            "Mon, 01 Mar 2100 00:00:00 GMT"
        );
        assert_eq!(
            http_date(1_735_689_599_000),
            "Tue, 31 Dec 2024 23:59:59 GMT"
        );
        // Before the epoch, milliseconds round down.
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
        assert_eq!(
            http_date(-2_208_988_800_000),
            "Mon, 01 Jan 1900 00:00:00 GMT"
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_481_739_612_000), "2016-12-14T18:20:12.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn timestamps_keep_the_stored_spelling() {
        let stored = "\"2026-11-22T08:15:00.120Z\"";
        let timestamp: Timestamp = serde_json::from_str(stored).unwrap();
        assert_eq!(
            timestamp.millis(),
            parse_rfc3339("2026-11-22T08:15:00.120Z").unwrap()
        );
        assert_eq!(serde_json::to_string(&timestamp).unwrap(), stored);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn parses_offsets_fractions_and_dates() {
        assert_eq!(parse_rfc3339("2016-12-14T18:20:12Z"), Ok(1_481_739_612_000));
        assert_eq!(
            parse_rfc3339("2016-12-14T19:20:12.5+01:00"),
            Ok(1_481_739_612_500)
        );
        assert_eq!(parse_rfc3339("2000-02-29"), Ok(951_782_400_000));
        for bad in [
            "2001-02-29",
            "2016-12-14 18:20:12Z",
            "2016-12-14T18:20:12",
            "yesterday",
            "2016-13-01",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn formatting_round_trips(millis in -62_135_596_800_000i64..253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(millis)), Ok(millis));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
