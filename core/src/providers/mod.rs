//! The providers' HTTP APIs as the core calls them: credential checks (R-CFG-3) now, senders later.
//!
//! Each module builds the exact request its provider expects (providers.md)
//! and reads the answer into a [`CredentialCheck`]. The host hands in the
//! time, nonces and the HTTP port, so every request is deterministic and the
//! tests pin it byte for byte.
//!
//! A check has three outcomes because they call for different actions: the
//! provider refused the credentials (the user must fix them), accepted them,
//! or could not be asked (try again later; nothing is known about them).
//! Messages carry the provider's own words so the user sees what the provider
//! saw, with every secret of the request scrubbed out first: hosts and
//! providers may quote a URL or a header back in an error.

pub mod facebook;
pub mod google;
pub mod telesign;
pub mod twilio;

use crate::ports::OutboundError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    pub verdict: Verdict,
    /// HTTP status the provider answered, if any
    pub provider_status: Option<u16>,
    /// the provider's own message (e.g. Twilio's `message`, Graph's
    /// error.message, TeleSign's status.description / errors[].description,
    /// Google's error_description), or the network error; never a secret
    pub message: String,
}

impl CredentialCheck {
    /// A check whose message is scrubbed of every non-empty secret, as sent
    /// and percent-encoded.
    fn new(
        verdict: Verdict,
        provider_status: Option<u16>,
        message: impl Into<String>,
        secrets: &[&str],
    ) -> CredentialCheck {
        let mut message = message.into();
        for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
            message = message
                .replace(*secret, "[redacted]")
                .replace(&percent_encode(secret), "[redacted]");
        }
        CredentialCheck {
            verdict,
            provider_status,
            message,
        }
    }

    /// The request got no HTTP answer.
    fn unreachable(error: &OutboundError, secrets: &[&str]) -> CredentialCheck {
        CredentialCheck::new(Verdict::Unreachable, None, error.to_string(), secrets)
    }
}

/// What an HTTP status alone says about credentials: 1xx/3xx/5xx never
/// reached the provider's credential check and 429 was turned away before
/// it, so only 2xx and the other 4xx are answers about the credentials.
fn verdict_for(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Valid,
        429 => Verdict::Unreachable,
        400..=499 => Verdict::Invalid,
        _ => Verdict::Unreachable,
    }
}

/// The body as JSON, if it is JSON.
fn json(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// The string at `pointer` (RFC 6901) in `value`, if it is a non-empty string.
fn text<'a>(value: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .filter(|text| !text.is_empty())
}

/// The message for an answer that carried no provider message.
fn http_status(status: u16) -> String {
    format!("HTTP {status}")
}

/// `base` without its trailing `/`s, followed by `path`.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters:
/// safe in a path segment, a query value and a form value alike.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `Authorization: Basic …` (RFC 7617) with the password used verbatim.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
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

/// Days since 1970-01-01 → (year, month 1–12, day 1–31) in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn basic_auth_matches_telesigns_sdk_vector() {
        assert_eq!(
            basic_auth(
                "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
                "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw=="
            ),
            "Basic RkZGRkZGRkYtRUVFRS1ERERELTEyMzQtQUIxMjM0NTY3ODkwOkVYQU1QTEUtLS0tVEU4c1RnZzQ1eXVzdW1vTjZCWXNCVmtoK3lSSjVjemdzbkNlaFphT1lsZFBKZG1GaDZOZVg4a3VuWjJ6VTFZV2FVdy8wd1Y2eGZ3PT0="
        );
    }

    #[test]
    fn statuses_map_to_verdicts() {
        assert_eq!(verdict_for(200), Verdict::Valid);
        assert_eq!(verdict_for(204), Verdict::Valid);
        assert_eq!(verdict_for(401), Verdict::Invalid);
        assert_eq!(verdict_for(404), Verdict::Invalid);
        assert_eq!(verdict_for(429), Verdict::Unreachable);
        assert_eq!(verdict_for(503), Verdict::Unreachable);
        assert_eq!(verdict_for(302), Verdict::Unreachable);
    }

    #[test]
    fn messages_never_carry_a_secret() {
        let check = CredentialCheck::new(
            Verdict::Unreachable,
            None,
            "GET https://x/?access_token=a%2Bb and a+b and hunter2",
            &["a+b", "hunter2", ""],
        );
        assert_eq!(
            check.message,
            "GET https://x/?access_token=[redacted] and [redacted] and [redacted]"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("aZ09-._~ /+=:Ͽ"),
            "aZ09-._~%20%2F%2B%3D%3A%CF%BF"
        );
    }
}
