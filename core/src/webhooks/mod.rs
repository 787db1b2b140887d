//! The providers' webhooks (R-IN): one pipeline for every provider, each
//! provider's part (signature, parsing into [`Event`]s, handshakes) behind
//! [`Seam`]; the events become [`crate::conversations::ingest`] calls and
//! status updates.
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
//! The same record carries a copy of the account document, written with
//! it, so a message needs no second read for its account. Each event is
//! then applied in order: a message reads its thread itself
//! ([`ingest`]); status callbacks read their messages' records in one
//! round trip.
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
//!
//! [`MAX_RECEIPT_IDS`]: crate::providers::webhook::MAX_RECEIPT_IDS
//! [`customer_text`]: crate::providers::webhook::customer_text

use crate::api::{method_not_allowed, Method, Request, Response};
use crate::config::accounts::Account;
use crate::conversations::ingest::{apply_status, apply_watermark, ingest};
use crate::conversations::{provider_message_key, thread_id};
use crate::error::Error;
use crate::ports::{KeyValue, Ports};
use crate::providers::webhook::{global_key, unknown_account, Signer, WebhookKey};
use crate::providers::{Event, Provider, Seam, SeamTask};
use crate::store;
use serde::Deserialize;

/// `/webhooks/{provider}/{accountId}`, for every provider.
pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    match request.segments()[..] {
        ["webhooks", provider, _] => match Provider::parse(provider) {
            Some(provider) => provider.run(Serve { request, ports }).await,
            None => Error::no_route(&request.path).into_response(),
        },
        _ => Error::no_route(&request.path).into_response(),
    }
}

/// [`serve`] for a provider named at run time.
struct Serve<'a, 'p> {
    request: &'a Request,
    ports: &'a Ports<'p>,
}

impl SeamTask for Serve<'_, '_> {
    type Output = Response;

    async fn run<S: Seam>(self) -> Response {
        serve::<S>(self.request, self.ports).await
    }
}

/// The pipeline for provider `S`: global record → handshake or signature
/// → events → one read of what they need → each applied.
pub async fn serve<S: Seam>(request: &Request, ports: &Ports<'_>) -> Response {
    if !S::METHODS
        .iter()
        .any(|m| Method::parse(m) == request.method)
    {
        return method_not_allowed(S::METHODS);
    }
    verified::<S>(request, ports)
        .await
        .unwrap_or_else(Error::into_response)
}

async fn verified<S: Seam>(request: &Request, ports: &Ports<'_>) -> Result<Response, Error> {
    let ["webhooks", _, account_id] = request.segments()[..] else {
        return Err(Error::no_route(&request.path));
    };
    let (signer, copy) = signer(ports.kv, account_id, S::PROVIDER)?;
    let unverified = S::unverified(request);
    let account = || match &copy {
        Some(account) => Ok(account.settings.clone()),
        None => read_account(ports.kv, &signer.org, account_id, S::PROVIDER)
            .map(|account| account.settings),
    };
    if let Some(answer) = S::handshake(&unverified, request, &signer, &account) {
        return answer;
    }
    if !S::signed(&unverified, request, ports, &signer) {
        return Err(bad_signature(S::SIGNATURE_HEADER));
    }
    let events = S::events(unverified, request)?;
    apply_events::<S>(ports, &signer, copy, events).await?;
    Ok(S::accepted())
}

/// Applies `events` in order, with the account (`copy`, or read now when
/// the record had none and a message needs it) and the records status
/// callbacks name, read in one round trip.
async fn apply_events<S: Seam>(
    ports: &Ports<'_>,
    signer: &Signer,
    copy: Option<Account>,
    mut events: Vec<Event>,
) -> Result<(), Error> {
    let (kv, org, account_id) = (ports.kv, signer.org.as_str(), signer.account_id.as_str());
    let needs_account = S::BATCHES || events.iter().any(|e| matches!(e, Event::Message(_)));
    let account = match copy {
        Some(account) => Some(account),
        None if needs_account => Some(read_account(kv, org, account_id, S::PROVIDER)?),
        None => None,
    };
    complete_addresses::<S>(signer, account.as_ref(), &mut events)?;
    let keys_per_event: Vec<Vec<String>> = events
        .iter()
        .map(|event| status_keys(org, S::PROVIDER, event))
        .collect();
    let keys: Vec<String> = keys_per_event.iter().flatten().cloned().collect();
    let mut found = read_keys(kv, &keys)?;
    let ours: Option<Vec<&str>> = S::BATCHES
        .then(|| account.as_ref().map(Account::addresses))
        .flatten();
    // A batch carries events of many addresses and customers: each stands
    // on its own. An event refused for good (a page no workstream serves)
    // is skipped so that the others are stored; an event that failed for
    // now fails the batch after the others ran, and the provider's
    // redelivery stores it (the others are duplicates by then).
    let mut retry = None;
    for (event, keys) in events.iter().zip(keys_per_event) {
        let values: Vec<Option<Vec<u8>>> = found.by_ref().take(keys.len()).collect();
        if let (Some(ours), Some(address)) = (&ours, event.channel_address()) {
            if !ours.contains(&address) {
                continue;
            }
        }
        match apply(ports, signer, account.as_ref(), S::PROVIDER, event, values).await {
            Ok(()) => {}
            Err(error) if !S::BATCHES => return Err(error),
            Err(error) if !error.is_refusal() => {
                retry.get_or_insert(error);
            }
            Err(_) => {}
        }
    }
    retry.map_or(Ok(()), Err)
}

/// Messages whose callback named no address of ours get it from the
/// account, read first (TeleSign may leave `sender_id` out); the account,
/// if it was read.
fn complete_addresses<S: Seam>(
    signer: &Signer,
    account: Option<&Account>,
    events: &mut [Event],
) -> Result<(), Error> {
    let incomplete =
        |event: &Event| matches!(event, Event::Message(m) if m.channel_address.is_empty());
    if !events.iter().any(incomplete) {
        return Ok(());
    }
    let (account_id, provider) = (signer.account_id.as_str(), S::PROVIDER);
    let settings = account
        .and_then(|account| S::of(&account.settings))
        .ok_or_else(|| unknown_account(account_id, provider))?;
    for event in events.iter_mut() {
        if let Event::Message(inbound) = event {
            if inbound.channel_address.is_empty() {
                S::complete(inbound, account_id, settings)?;
            }
        }
    }
    Ok(())
}

fn read_keys(kv: &dyn KeyValue, keys: &[String]) -> Result<Found, Error> {
    if keys.is_empty() {
        return Ok(Vec::new().into_iter());
    }
    Ok(kv.get_many(keys)?.into_iter())
}

/// The record a status callback names (a message reads its own keys).
fn status_keys(org: &str, provider: Provider, event: &Event) -> Vec<String> {
    match event {
        Event::Status { message_id, .. } => vec![provider_message_key(org, provider, message_id)],
        Event::Message(_) | Event::Watermark { .. } | Event::Nothing => Vec::new(),
    }
}

/// Applies one event; `found` holds the values of its [`event_keys`].
async fn apply(
    ports: &Ports<'_>,
    signer: &Signer,
    account: Option<&Account>,
    provider: Provider,
    event: &Event,
    found: Vec<Option<Vec<u8>>>,
) -> Result<(), Error> {
    let (org, account_id) = (signer.org.as_str(), signer.account_id.as_str());
    match event {
        Event::Message(inbound) => {
            let account = account.ok_or_else(|| unknown_account(account_id, provider))?;
            ingest(ports, org, account, inbound).await?;
        }
        Event::Status {
            status, error_code, ..
        } => {
            for value in found {
                apply_status(
                    ports.kv,
                    org,
                    value,
                    status,
                    error_code.as_deref(),
                    provider,
                )?;
            }
        }
        Event::Watermark {
            channel_address,
            customer_address,
            watermark_millis,
            status,
        } => {
            let conversation = thread_id(org, account_id, channel_address, customer_address);
            apply_watermark(
                ports.kv,
                org,
                &conversation,
                *watermark_millis,
                status,
                provider,
            )?;
        }
        Event::Nothing => {}
    }
    Ok(())
}

#[derive(Deserialize)]
struct GlobalRecord {
    org: String,
    provider: Provider,
    #[serde(default)]
    deleted_at: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    /// Absent from records written before they carried the named keys.
    #[serde(default)]
    keys: Vec<WebhookKey>,
    /// The account document as its last save wrote it; absent from
    /// records written before they carried it.
    #[serde(default)]
    account: Option<Account>,
}

/// The [`Signer`] of a `provider` account named in a webhook URL, and the
/// account's copy if the record has one: one read of its global record,
/// which holds the secret and the named keys. A record written before it
/// carried the secret takes a second read, of the account document itself
/// (and takes the keys from it too); one written after it carried the
/// secret but before it carried keys was written before accounts held any.
pub fn signer(
    kv: &dyn KeyValue,
    account_id: &str,
    provider: Provider,
) -> Result<(Signer, Option<Account>), Error> {
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
    let (secret, keys, account) = match record.secret {
        Some(secret) => (secret, record.keys, record.account),
        None => {
            let account = read_account(kv, &record.org, account_id, provider)?;
            let settings = &account.settings;
            let (secret, keys) = (
                settings.webhook_secret().to_owned(),
                settings.webhook_keys(),
            );
            (secret, keys, Some(account))
        }
    };
    let signer = Signer {
        account_id: account_id.to_owned(),
        org: record.org,
        secret,
        keys,
    };
    Ok((
        signer,
        account.filter(|a| a.id == account_id && a.settings.provider() == provider),
    ))
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

/// The account document named in a webhook URL, for a global record
/// written before it carried a copy.
pub fn read_account(
    kv: &dyn KeyValue,
    org: &str,
    account_id: &str,
    provider: Provider,
) -> Result<Account, Error> {
    let account: Account =
        store::load(kv, org, account_id)?.ok_or_else(|| unknown_account(account_id, provider))?;
    if account.settings.provider() != provider {
        return Err(unknown_account(account_id, provider));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::Settings;
    use crate::memory::MemoryKeyValue;
    use serde_json::json;

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "fedcba9876543210fedcba9876543210";
    const KEY_ID: &str = "SK0123456789abcdef0123456789abcdef";

    fn with_account(global: serde_json::Value) -> MemoryKeyValue {
        let kv = MemoryKeyValue::default();
        let account = Account {
            id: ACCOUNT.into(),
            name: "WhatsApp".into(),
            settings: Settings::Twilio(crate::providers::twilio::Settings {
                account_sid: "AC00000000000000000000000000000000".into(),
                auth_token: "token-in-the-account".into(),
                numbers: Vec::new(),
                sms_numbers: Vec::new(),
                shared_keys: vec![crate::providers::twilio::SharedKey {
                    id: KEY_ID.into(),
                    secret: "key-secret-in-the-account".into(),
                }],
            }),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
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
        let (found, _) = signer(&kv, ACCOUNT, Provider::Twilio).unwrap();
        assert_eq!(
            (found.org.as_str(), found.secret.as_str()),
            (ORG, "token-in-the-record")
        );
        assert_eq!(
            signer_error(&kv, Provider::Telesign),
            (404, "unknown_account")
        );
        assert_eq!(
            signer(&kv, "not-an-id", Provider::Twilio)
                .err()
                .map(|e| e.status()),
            Some(404)
        );
    }

    #[test]
    fn a_record_written_before_it_held_the_secret_reads_the_account() {
        let kv = with_account(json!({"org": ORG, "provider": "twilio"}));
        let (found, _) = signer(&kv, ACCOUNT, Provider::Twilio).unwrap();
        assert_eq!(found.secret, "token-in-the-account");
        assert_eq!(found.key(KEY_ID), Some("key-secret-in-the-account"));
    }

    #[test]
    fn the_global_record_holds_the_named_keys() {
        let kv = with_account(json!({
            "org": ORG, "provider": "twilio", "secret": "token-in-the-record",
            "keys": [{"id": KEY_ID, "secret": "key-secret-in-the-record"}],
        }));
        // Taken from the record, not from the account document.
        let (found, _) = signer(&kv, ACCOUNT, Provider::Twilio).unwrap();
        assert_eq!(found.key(KEY_ID), Some("key-secret-in-the-record"));
        assert_eq!(found.key("SK00000000000000000000000000000000"), None);
        // A record written before it held keys: the account had none then.
        let kv = with_account(
            json!({"org": ORG, "provider": "twilio", "secret": "token-in-the-record"}),
        );
        let (found, _) = signer(&kv, ACCOUNT, Provider::Twilio).unwrap();
        assert!(found.keys.is_empty());
    }

    #[test]
    fn a_deleted_account_is_gone() {
        let kv = with_account(
            json!({"org": ORG, "provider": "twilio", "deleted_at": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(
            signer_error(&kv, Provider::Twilio),
            (410, "account_deleted")
        );
    }

    fn signer_error(kv: &MemoryKeyValue, provider: Provider) -> (u16, &'static str) {
        let error = signer(kv, ACCOUNT, provider).err().expect("refused");
        (error.status(), error.code())
    }
}
