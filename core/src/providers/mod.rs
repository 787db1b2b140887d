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

use crate::encoding::percent_encode;
use crate::error::Error;
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
        CredentialCheck {
            verdict,
            provider_status,
            message: scrub(message, secrets),
        }
    }

    /// The request got no HTTP answer.
    fn unreachable(error: &OutboundError, secrets: &[&str]) -> CredentialCheck {
        CredentialCheck::new(Verdict::Unreachable, None, error.to_string(), secrets)
    }
}

/// `message` with every non-empty secret, as sent and percent-encoded,
/// replaced by `[redacted]`.
fn scrub(message: impl Into<String>, secrets: &[&str]) -> String {
    let mut message = message.into();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        message = message
            .replace(*secret, "[redacted]")
            .replace(&percent_encode(secret), "[redacted]");
    }
    message
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

/// A provider's API origin from its Spin variable (e.g. `twilio_api_base`).
pub fn api_base(variables: &dyn crate::ports::Variables, name: &str) -> Result<String, Error> {
    variables
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Misconfigured(format!(
                "the Spin variable {name} is not set; the operator must set it"
            ))
        })
}

/// What became of a message handed to a provider's send API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took the message: its id for it, and its first status.
    Sent { id: String, status: String },
    /// The channel's window for this message is closed (Twilio 63016,
    /// Graph 10/2018278).
    OutsideWindow { message: String },
    /// HTTP 429 or the provider's rate-limit error; `retry_after_seconds` from the Retry-After header when present.
    RateLimited {
        retry_after_seconds: Option<u64>,
        message: String,
    },
    /// Any other refusal: the HTTP status, the provider's error code and message.
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// No HTTP answer (network / host policy).
    Unreachable { message: String },
}

/// `Retry-After` in seconds; the HTTP-date form is not read (it would need
/// the clock) and counts as absent.
pub(crate) fn retry_after(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Where a Messenger or Business Messages message is, by its receipts:
/// `sent` < `delivered` < `read`. Receipts arrive out of order, so a status
/// only ever moves up this order; unknown statuses rank lowest.
pub fn receipt_rank(status: &str) -> u8 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        _ => 0,
    }
}

/// `base` without its trailing `/`s, followed by `path`.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters:
/// safe in a path segment, a query value and a form value alike.
/// `Authorization: Basic …` (RFC 7617) with the password used verbatim.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
