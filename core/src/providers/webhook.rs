//! What every provider's webhook part shares: the account's global record
//! and the secrets it signs with ([`Signer`]), the errors a webhook
//! answers, and how a customer's text is kept.
//!
//! It sits in the provider seam because each provider's parser uses it;
//! the one pipeline that drives the parsers ([`crate::webhooks`]) uses it
//! from here.

use super::Provider;
use crate::api::Response;
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The global record a webhook reads first: the account's organisation,
/// provider and webhook secret, or its tombstone.
pub fn global_key(account_id: &str) -> String {
    format!("account/{account_id}")
}

/// A webhook's account, its tenant and the secrets its provider signs the
/// account's requests with.
pub struct Signer {
    pub account_id: String,
    pub org: String,
    pub secret: String,
    /// The secrets a request may name instead of [`Signer::secret`].
    pub keys: Vec<WebhookKey>,
}

impl Signer {
    /// The secret of key `id`, if the account holds it.
    pub fn key(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|key| key.id == id)
            .map(|key| key.secret.as_str())
    }
}

/// A secret a provider may sign an account's webhooks with instead of
/// [`Signer::secret`], named by the request (Twilio's shared keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookKey {
    pub id: String,
    pub secret: String,
}

/// 404 for a webhook URL that names no account of `provider`.
pub fn unknown_account(account_id: &str, provider: Provider) -> Error {
    Error::not_found(
        "unknown_account",
        format!("no {provider} account {account_id}; check the callback URL configured at the provider (GET /api/accounts/{{id}} shows it)"),
    )
}

/// Message ids one request may update the status of: far more than a
/// provider's receipts name (a few messages sent close together), and a
/// bound on what one request writes (a write per id whose status moves).
pub const MAX_RECEIPT_IDS: usize = 1_000;

/// 422 for a signed request that carries more than one request may: its
/// redelivery would be refused the same way, so it is not a 5xx.
pub fn too_many(code: &'static str, what: &str, count: usize, limit: usize) -> Error {
    Error::Invalid {
        field: None,
        code,
        message: format!("the request carries {count} {what}; one request may carry at most {limit}, so nothing was stored. Send them in several requests"),
    }
}

/// `text` as a customer's message keeps it: whole when it has at most
/// `limit` characters, else its beginning and a note for the agent that
/// says how long it was, `limit` characters in all.
pub fn customer_text(text: &str, limit: usize) -> String {
    let length = text.chars().count();
    if length <= limit {
        return text.to_owned();
    }
    let note =
        format!(" [… cut: the message had {length} characters, this channel carries {limit}]");
    let kept = limit.saturating_sub(note.chars().count());
    text.chars()
        .take(kept)
        .chain(note.chars())
        .take(limit)
        .collect()
}

/// 400 for a signed callback the gateway cannot read.
pub fn invalid_callback(message: String) -> Error {
    Error::malformed("invalid_callback", message)
}

/// A handshake answer: the value the provider sent, echoed as plain text.
pub fn echo(value: &str) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: value.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_text_keeps_what_fits_and_cuts_the_rest_with_a_note() {
        assert_eq!(customer_text("hello", 5), "hello");
        let long = "é".repeat(2_000);
        let kept = customer_text(&long, 1_600);
        assert_eq!(kept.chars().count(), 1_600);
        assert!(kept.starts_with(&"é".repeat(1_500)), "{kept}");
        assert!(
            kept.ends_with(" [… cut: the message had 2000 characters, this channel carries 1600]"),
            "{kept}"
        );
    }
}
