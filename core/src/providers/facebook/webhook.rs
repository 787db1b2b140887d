//! `/webhooks/facebook/{accountId}`: Messenger's verification handshake and
//! its page events (providers.md 3.1–3.3), as the core's events.
//!
//! Facebook batches: one POST may carry several pages' entries, each with
//! several events (the pipeline skips those of pages this account does not
//! hold: the page belongs to another account). The signature is over the
//! raw bytes, never re-serialized JSON. A POST of more events than Meta
//! batches is refused whole; receipts past the request's budget of message
//! ids are applied by their watermark, which covers the conversation's
//! latest messages at a fixed cost.

use super::{
    parse_webhook, signature_valid, Event, EventKind, Settings, MAX_EVENTS, MAX_TEXT_CHARS,
};
use crate::api::{ApiError, Method, Request, Response};
use crate::auth::constant_time_eq;
use crate::conversations::ingest::Inbound;
use crate::conversations::Attachment;
use crate::ports::Ports;
use crate::providers::{self, Provider, Variant};
use crate::webhooks::{
    customer_text, echo, invalid_callback, read_account, too_many, unknown_account, Signer,
    MAX_RECEIPT_IDS,
};

/// The subscription handshake (`GET`): echo `hub.challenge` when
/// `hub.verify_token` is the token generated for this account.
pub(super) fn handshake(
    request: &Request,
    ports: &Ports<'_>,
    signer: &Signer,
) -> Option<Result<Response, ApiError>> {
    (request.method == Method::Get).then(|| verify(request, ports, signer))
}

fn verify(request: &Request, ports: &Ports<'_>, signer: &Signer) -> Result<Response, ApiError> {
    let account_id = &signer.account_id;
    let (account, _) = read_account(
        ports.kv,
        &signer.org,
        account_id,
        Provider::Facebook,
        Vec::new(),
    )?;
    let Some(Settings { verify_token, .. }) = Settings::of(&account.settings) else {
        return Err(unknown_account(account_id, Provider::Facebook));
    };
    let subscribing = request.query_param("hub.mode").as_deref() == Some("subscribe");
    let token_matches = request
        .query_param("hub.verify_token")
        .is_some_and(|given| constant_time_eq(given.as_bytes(), verify_token.as_bytes()));
    match request.query_param("hub.challenge") {
        Some(challenge) if subscribing && token_matches => Ok(echo(&challenge)),
        _ => Err(ApiError {
            status: 403,
            code: "verification_failed",
            message: format!("hub.mode must be \"subscribe\" and hub.verify_token the verify_token of account {account_id} (GET /api/accounts/{account_id} shows it)"),
            field: None,
        }),
    }
}

pub(super) fn signed(request: &Request, app_secret: &str) -> bool {
    signature_valid(
        app_secret,
        &request.body,
        request.header("x-hub-signature-256"),
    )
}

pub(super) fn events(request: &Request) -> Result<Vec<providers::Event>, ApiError> {
    let mut events = parse_webhook(&request.body).map_err(invalid_callback)?;
    if events.len() > MAX_EVENTS {
        let (count, limit) = (events.len(), MAX_EVENTS);
        return Err(too_many("too_many_events", "events", count, limit));
    }
    within_receipt_budget(&mut events);
    Ok(events.iter().flat_map(core_events).collect())
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

/// What a Messenger event tells the core.
fn core_events(event: &Event) -> Vec<providers::Event> {
    let watermark = |watermark_millis: i64, status: &'static str| providers::Event::Watermark {
        channel_address: event.page_id.clone(),
        customer_address: event.psid.clone(),
        watermark_millis,
        status,
    };
    match &event.kind {
        EventKind::Message {
            mid,
            text,
            attachments,
        } => vec![providers::Event::Message(inbound(
            event,
            mid,
            text,
            attachments,
        ))],
        // Our own sends, echoed: already recorded when they went out.
        EventKind::Echo { .. } => vec![providers::Event::Nothing],
        EventKind::Delivery {
            mids,
            watermark: at,
        } if mids.is_empty() => {
            vec![watermark(*at, "delivered")]
        }
        EventKind::Delivery { mids, .. } => mids
            .iter()
            .map(|mid| providers::Event::Status {
                message_id: mid.clone(),
                status: "delivered".to_owned(),
                error_code: None,
                channel_address: Some(event.page_id.clone()),
            })
            .collect(),
        EventKind::Read { watermark: at } => vec![watermark(*at, "read")],
    }
}

/// A customer's message: the same PSID on web, app or widget is the same
/// customer of the page.
fn inbound(event: &Event, mid: &str, text: &str, attachments: &[Attachment]) -> Inbound {
    Inbound {
        provider_message_id: mid.to_owned(),
        customer_address: event.psid.clone(),
        channel_address: event.page_id.clone(),
        text: customer_text(text, MAX_TEXT_CHARS),
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
