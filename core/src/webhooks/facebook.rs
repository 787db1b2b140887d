//! `/webhooks/facebook/{accountId}`: Messenger's verification handshake and
//! its page events (providers.md 3.1–3.3).
//!
//! Facebook batches: one POST may carry several pages' entries, each with
//! several events. The signature (over the raw bytes, never re-serialized
//! JSON) is checked once, right after the account's global record is read;
//! then every key the delivery needs is read in one round trip, and each
//! event is applied in order. A POST of more events than Meta batches is
//! refused whole; receipts past the request's budget of message ids are
//! applied by their watermark, which covers the conversation's latest
//! messages at a fixed cost.
//! A storage failure on any event answers 503, so Facebook redelivers the
//! whole batch and the dedupe skips what was stored. Events for pages this
//! account does not hold are skipped: the page belongs to another account.

use super::{
    bad_signature, customer_text, echo, invalid_callback, read_account, signer, too_many,
    unknown_account, MAX_RECEIPT_IDS,
};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::constant_time_eq;
use crate::config::accounts::{Account, Settings};
use crate::conversations::ingest::{apply_status, apply_watermark, ingest, thread_keys, Inbound};
use crate::conversations::{provider_message_key, thread_id, Attachment};
use crate::error::Error;
use crate::ports::{Ports, UnixMillis};
use crate::providers::facebook::{self, Event, EventKind};
use crate::providers::receipt_rank;

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    let answer = match request.method {
        Method::Get => verify(request, ports),
        Method::Post => serve(request, ports).await.map(|()| echo("EVENT_RECEIVED")),
        _ => return method_not_allowed(&["GET", "POST"]),
    };
    answer.unwrap_or_else(Error::into_response)
}

fn account_id(request: &Request) -> Result<&str, Error> {
    match request.segments()[..] {
        ["webhooks", "facebook", account_id] => Ok(account_id),
        _ => Err(Error::no_route(&request.path)),
    }
}

/// The subscription handshake: echo `hub.challenge` when `hub.verify_token`
/// is the token generated for this account.
fn verify(request: &Request, ports: &Ports<'_>) -> Result<Response, Error> {
    let account_id = account_id(request)?;
    let org = signer(ports.kv, account_id, "facebook")?.org;
    let (account, _) = read_account(ports.kv, &org, account_id, "facebook", Vec::new())?;
    let Settings::Facebook { verify_token, .. } = &account.settings else {
        return Err(unknown_account(account_id, "facebook"));
    };
    let subscribing = request.query_param("hub.mode").as_deref() == Some("subscribe");
    let token_matches = request
        .query_param("hub.verify_token")
        .is_some_and(|given| constant_time_eq(given.as_bytes(), verify_token.as_bytes()));
    match request.query_param("hub.challenge") {
        Some(challenge) if subscribing && token_matches => Ok(echo(&challenge)),
        _ => Err(Error::forbidden(
            "verification_failed",
            format!("hub.mode must be \"subscribe\" and hub.verify_token the verify_token of account {account_id} (GET /api/accounts/{account_id} shows it)")),
        ),
    }
}

/// The keys an event needs read, if it is on one of the account's pages.
fn event_keys(org: &str, account: &str, event: &Event, now: UnixMillis) -> Vec<String> {
    match &event.kind {
        EventKind::Message {
            mid,
            text,
            attachments,
        } => thread_keys(
            org,
            account,
            "facebook",
            &inbound(event, mid, text, attachments),
            now,
        ),
        EventKind::Delivery { mids, .. } => mids
            .iter()
            .map(|mid| provider_message_key(org, "facebook", mid))
            .collect(),
        EventKind::Echo { .. } | EventKind::Read { .. } => Vec::new(),
    }
}

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<(), Error> {
    let account_id = account_id(request)?;
    let kv = ports.kv;
    let signer = signer(kv, account_id, "facebook")?;
    let signature = request.header("x-hub-signature-256");
    if !facebook::signature_valid(&signer.secret, &request.body, signature) {
        return Err(bad_signature("X-Hub-Signature-256"));
    }
    let org = &signer.org;
    let mut events = facebook::parse_webhook(&request.body).map_err(invalid_callback)?;
    if events.len() > facebook::MAX_EVENTS {
        let (count, limit) = (events.len(), facebook::MAX_EVENTS);
        return Err(too_many("too_many_events", "events", count, limit));
    }
    within_receipt_budget(&mut events);
    let now = ports.clock.now_millis();
    let keys_per_event: Vec<Vec<String>> = events
        .iter()
        .map(|event| event_keys(org, account_id, event, now))
        .collect();
    let key_counts: Vec<usize> = keys_per_event.iter().map(Vec::len).collect();
    let keys = keys_per_event.into_iter().flatten().collect();
    let (account, mut found) = read_account(kv, org, account_id, "facebook", keys)?;
    let pages = account.addresses();
    // One batch carries events of many pages and customers: each stands on
    // its own. An event refused for good (a page no workstream serves) is
    // skipped so that the others are stored; an event that failed for now
    // fails the batch after the others ran, and Facebook's redelivery
    // stores it (the others are duplicates by then).
    let mut retry = None;
    for (event, count) in events.iter().zip(key_counts) {
        let values: Vec<Option<Vec<u8>>> = found.by_ref().take(count).collect();
        if pages.contains(&event.page_id.as_str()) {
            match apply(ports, org, &account, event, values).await {
                Err(error) if !error.is_refusal() => {
                    retry.get_or_insert(error);
                }
                Ok(()) | Err(_) => {}
            }
        }
    }
    retry.map_or(Ok(()), Err)
}

/// Leaves the message ids of receipts within the request's budget of
/// [`MAX_RECEIPT_IDS`]; a receipt past it keeps only its watermark, which
/// marks the same messages when they are the conversation's latest (as a
/// receipt's messages are), at a fixed cost.
fn within_receipt_budget(events: &mut [Event]) {
    let mut left = MAX_RECEIPT_IDS;
    for event in events {
        if let EventKind::Delivery { mids, .. } = &mut event.kind {
            match left.checked_sub(mids.len()) {
                Some(rest) => left = rest,
                None => mids.clear(),
            }
        }
    }
}

async fn apply(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    event: &Event,
    found: Vec<Option<Vec<u8>>>,
) -> Result<(), Error> {
    let conversation = || thread_id(org, &account.id, &event.page_id, &event.psid);
    match &event.kind {
        EventKind::Message {
            mid,
            text,
            attachments,
        } => {
            let inbound = inbound(event, mid, text, attachments);
            ingest(ports, org, account, &inbound, found).await?;
        }
        // Our own sends, echoed: already recorded when they went out.
        EventKind::Echo { .. } => {}
        EventKind::Delivery { mids, watermark } if mids.is_empty() => {
            apply_watermark(
                ports.kv,
                org,
                &conversation(),
                *watermark,
                "delivered",
                receipt_rank,
            )?;
        }
        EventKind::Delivery { .. } => {
            for value in found {
                apply_status(ports.kv, org, value, "delivered", None, receipt_rank)?;
            }
        }
        EventKind::Read { watermark } => {
            apply_watermark(
                ports.kv,
                org,
                &conversation(),
                *watermark,
                "read",
                receipt_rank,
            )?;
        }
    }
    Ok(())
}

/// A customer's message as every webhook normalizes it: the same PSID on
/// web, app or widget is the same customer of the page.
fn inbound(event: &Event, mid: &str, text: &str, attachments: &[Attachment]) -> Inbound {
    Inbound {
        provider_message_id: mid.to_owned(),
        customer_address: event.psid.clone(),
        channel_address: event.page_id.clone(),
        text: customer_text(text, facebook::MAX_TEXT_CHARS),
        attachments: attachments.to_vec(),
        profile_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(mids: usize) -> Event {
        Event {
            page_id: "p".into(),
            psid: "c".into(),
            timestamp: 0,
            kind: EventKind::Delivery {
                mids: (0..mids).map(|n| format!("m_{n}")).collect(),
                watermark: 7,
            },
        }
    }

    fn ids_named(events: &[Event]) -> Vec<usize> {
        events
            .iter()
            .map(|event| match &event.kind {
                EventKind::Delivery { mids, watermark } => {
                    assert_eq!(*watermark, 7, "the watermark stays");
                    mids.len()
                }
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn receipts_past_the_budget_of_ids_keep_only_their_watermark() {
        let mut events = vec![
            receipt(600),
            receipt(500),
            receipt(400),
            receipt(0),
            receipt(1),
        ];
        within_receipt_budget(&mut events);
        assert_eq!(ids_named(&events), [600, 0, 400, 0, 0]);
        let mut exactly = vec![receipt(MAX_RECEIPT_IDS)];
        within_receipt_budget(&mut exactly);
        assert_eq!(ids_named(&exactly), [MAX_RECEIPT_IDS]);
    }
}
