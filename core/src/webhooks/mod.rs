//! The providers' webhooks (R-IN): one module per provider, each turning
//! its provider's callbacks into [`crate::conversations::ingest`] calls.
//!
//! A webhook URL carries only the account id, so the first read is the
//! account's global record, which names the organisation and holds the
//! secret the provider signs with (or says the account was deleted: 410, so
//! the provider's console shows a clear failure rather than a typo-shaped
//! 404). The signature is checked right after that read, before anything
//! else is read or written (R-IN-2): anyone who knows a callback URL can
//! post to it, and what an unsigned request costs must not grow with what
//! it carries. A check is one pass over the body (and one sort of
//! Twilio's parameters), done once.
//!
//! What a signed request may cost is bounded too: the provider signs it,
//! but a leaked secret, a replay or a provider's bug must not multiply the
//! store's work without end. Each bound sits well above what the provider
//! sends: the events of a Messenger POST (`facebook::MAX_EVENTS`), the
//! message ids of one request's receipts ([`MAX_RECEIPT_IDS`]). A request
//! over one is refused whole, before anything is stored, with a 422 and
//! not a 5xx: a 5xx asks the provider to try again, and this request will
//! never pass (Twilio does not retry; Meta, TeleSign and Google retry any
//! failure on a schedule that ends). Messenger receipts are the exception:
//! each also carries a watermark that says the same at a fixed cost, so
//! those past the budget are applied by it rather than refused.
//!
//! A customer's text longer than its channel carries ([`customer_text`])
//! is kept, cut to the limit with a note saying so, rather than refused: a
//! refusal loses the whole message (Twilio drops it; Meta, TeleSign and
//! Google redeliver the same refusal until they give up), while each limit
//! is at least the provider's own, so no text a provider legitimately sends
//! is ever cut.

pub mod facebook;
pub mod gbm;
pub mod telesign;
pub mod twilio;

use crate::api::Response;
use crate::config::accounts::{global_key, Account};
use crate::error::Error;
use crate::ports::KeyValue;
use crate::store;
use serde::Deserialize;

#[derive(Deserialize)]
struct GlobalRecord {
    org: String,
    provider: String,
    #[serde(default)]
    deleted_at: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

/// The tenant of a webhook's account and the secret its provider signs the
/// account's requests with.
pub struct Signer {
    pub org: String,
    pub secret: String,
}

/// The [`Signer`] of a `provider` account named in a webhook URL: one read
/// of its global record. A record written before it carried the secret
/// takes a second read, of the account document itself.
pub fn signer(kv: &dyn KeyValue, account_id: &str, provider: &str) -> Result<Signer, Error> {
    let unknown = || unknown_account(account_id, provider);
    if !crate::store::is_id(account_id) {
        return Err(unknown());
    }
    let record: GlobalRecord = match kv.get(&global_key(account_id))? {
        Some(bytes) => crate::store::decode(&global_key(account_id), &bytes)?,
        None => return Err(unknown()),
    };
    if record.provider != provider {
        return Err(unknown());
    }
    if let Some(deleted_at) = record.deleted_at {
        return Err(Error::Gone {
            code: "account_deleted",
            message: format!("account {account_id} was deleted at {deleted_at}; remove this callback URL at the provider"),
        });
    }
    let secret = match record.secret {
        Some(secret) => secret,
        None => {
            let (account, _) = read_account(kv, &record.org, account_id, provider, Vec::new())?;
            account.settings.webhook_secret().to_owned()
        }
    };
    Ok(Signer {
        org: record.org,
        secret,
    })
}

pub fn unknown_account(account_id: &str, provider: &str) -> Error {
    Error::not_found(
        "unknown_account",
        format!("no {provider} account {account_id}; check the callback URL configured at the provider (GET /api/accounts/{{id}} shows it)"),
    )
}

/// 403 for a request whose signature does not check out.
pub fn bad_signature(header: &str) -> Error {
    Error::forbidden(
        "invalid_signature",
        format!("the {header} header is missing or does not match this account's secret; nothing was stored"),
    )
}

/// The values of keys read together, in the order asked for.
pub type Found = std::vec::IntoIter<Option<Vec<u8>>>;

/// The account named in a webhook URL and the values of `keys`, in one
/// read round trip.
pub fn read_account(
    kv: &dyn KeyValue,
    org: &str,
    account_id: &str,
    provider: &str,
    keys: Vec<String>,
) -> Result<(Account, Found), Error> {
    let account_key = store::document_key::<Account>(org, account_id);
    let mut all = Vec::with_capacity(keys.len() + 1);
    all.push(account_key.clone());
    all.extend(keys);
    let mut found = kv.get_many(&all)?.into_iter();
    let account: Account = match found.next().flatten() {
        Some(bytes) => store::decode(&account_key, &bytes)?,
        None => return Err(unknown_account(account_id, provider)),
    };
    if account.settings.provider() != provider {
        return Err(unknown_account(account_id, provider));
    }
    Ok((account, found))
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
    use crate::config::accounts::Settings;
    use crate::memory::MemoryKeyValue;
    use serde_json::json;

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "fedcba9876543210fedcba9876543210";

    fn with_account(global: serde_json::Value) -> MemoryKeyValue {
        let kv = MemoryKeyValue::default();
        let account = Account {
            id: ACCOUNT.into(),
            name: "WhatsApp".into(),
            settings: Settings::Twilio {
                account_sid: "AC00000000000000000000000000000000".into(),
                auth_token: "token-in-the-account".into(),
                numbers: Vec::new(),
            },
            created_at: String::new(),
            updated_at: String::new(),
            last_validation: None,
        };
        kv.set(
            &store::document_key::<Account>(ORG, ACCOUNT),
            &store::encode(&account),
        )
        .unwrap();
        kv.set(&global_key(ACCOUNT), &store::encode(&global))
            .unwrap();
        kv
    }

    #[test]
    fn the_global_record_names_the_tenant_and_the_secret() {
        let kv = with_account(
            json!({"org": ORG, "provider": "twilio", "secret": "token-in-the-record"}),
        );
        let found = signer(&kv, ACCOUNT, "twilio").unwrap();
        assert_eq!(
            (found.org.as_str(), found.secret.as_str()),
            (ORG, "token-in-the-record")
        );
        assert_eq!(signer_error(&kv, "telesign"), (404, "unknown_account"));
        assert_eq!(
            signer(&kv, "not-an-id", "twilio").err().map(|e| e.status()),
            Some(404)
        );
    }

    #[test]
    fn a_record_written_before_it_held_the_secret_reads_the_account() {
        let kv = with_account(json!({"org": ORG, "provider": "twilio"}));
        assert_eq!(
            signer(&kv, ACCOUNT, "twilio").unwrap().secret,
            "token-in-the-account"
        );
    }

    #[test]
    fn a_deleted_account_is_gone() {
        let kv = with_account(
            json!({"org": ORG, "provider": "twilio", "deleted_at": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(signer_error(&kv, "twilio"), (410, "account_deleted"));
    }

    fn signer_error(kv: &MemoryKeyValue, provider: &str) -> (u16, &'static str) {
        let error = signer(kv, ACCOUNT, provider).err().expect("refused");
        (error.status(), error.code())
    }

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
