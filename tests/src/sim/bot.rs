//! A workstream's bot, checking Switchboard's calls the way README.md
//! ("Bots") tells bots to, written from that text rather than taken from
//! the core.

use super::{hmac_sha256, Recorded};
use hmac::Mac;

/// `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`.
pub fn bot_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether a bot holding `secret` accepts `call`: signed over its exact
/// body and timestamp, the timestamp within five minutes of `now_secs`.
pub fn bot_accepts(secret: &str, call: &Recorded, now_secs: u64) -> bool {
    let (Some(timestamp), Some(signature)) = (
        call.header("x-switchboard-timestamp"),
        call.header("x-switchboard-signature"),
    ) else {
        return false;
    };
    let fresh = timestamp
        .parse::<u64>()
        .is_ok_and(|at| at.abs_diff(now_secs) <= 300);
    fresh && signature == bot_signature(secret, timestamp, &call.body)
}
