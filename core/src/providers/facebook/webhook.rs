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

use super::*;
use crate::api::{Method, Request, Response};
use crate::auth::constant_time_eq;
use crate::error::Error;
use crate::message::Attachment;
use crate::message::Inbound;
use crate::providers::webhook::{
    customer_text, echo, invalid_callback, too_many, unknown_account, Signer, MAX_RECEIPT_IDS,
};
use crate::providers::{self, Provider, Variant};

/// Whether `header` (`X-Hub-Signature-256`) is `sha256=` and the hex
/// HMAC-SHA256 of the raw `body` keyed with the app secret (providers.md
/// 3.2), compared in constant time. Hex digits of either case are accepted.
/// An empty app secret validates nothing: anyone could sign with it.
pub fn signature_valid(app_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|header| header.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if app_secret.is_empty() {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let expected = hex(&mac.finalize().into_bytes());
    constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes())
}

/// Events one webhook POST may carry. Meta batches at most 1,000 updates
/// into a POST, and a Page entry's `messaging` holds one event; twice that
/// leaves room, and still bounds what one signed POST may cost.
pub const MAX_EVENTS: usize = 2_000;

/// The longest text a person's message carries: people may write 20,000
/// characters in Messenger (a page sends at most 2,000).
pub const MAX_TEXT_CHARS: usize = 20_000;

/// One event of a webhook delivery, for one page and one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub page_id: String,
    /// The customer's page-scoped id: the sender of customer events, the
    /// recipient of echoes.
    pub psid: String,
    /// Milliseconds since the epoch (the event's timestamp).
    pub timestamp: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A customer's message; postbacks (button taps) also arrive as
    /// messages: text = the button's title, id = its mid, or
    /// `postback:{psid}:{timestamp}` when Facebook sent none.
    Message {
        mid: String,
        text: String,
        attachments: Vec<Attachment>,
    },
    /// Our own send, echoed back (`message.is_echo`): never a customer
    /// message.
    Echo { mid: String },
    /// Everything up to `watermark` (ms) is delivered; `mids` names some of
    /// them when Facebook sends them.
    Delivery { mids: Vec<String>, watermark: i64 },
    /// Everything up to `watermark` (ms) is read.
    Read { watermark: i64 },
}

/// All events of a delivery, in order, across every entry (Facebook batches
/// several pages and events into one POST; providers.md 3.3). `object` must
/// be `page`. Events of other kinds (optins, referrals, reactions …) and
/// entries without `messaging` (e.g. `standby` for another app's thread)
/// are skipped, not errors.
///
/// An event without `timestamp` takes its entry's `time`: Facebook's
/// delivery samples leave the event's out.
///
/// Attachments keep their `payload.url`, typed by Facebook's `type` (see
/// `content_type`). A shared location has coordinates and no URL; it is
/// kept as a `Location: lat, long` line after the text, so the agent still
/// sees where the customer is. Other attachments without a URL are dropped.
///
/// Err = a sentence naming the field that is malformed or missing.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<Event>, String> {
    let delivery: Value = serde_json::from_slice(body)
        .map_err(|error| format!("the webhook body is not JSON: {error}"))?;
    match delivery.get("object").and_then(Value::as_str) {
        Some("page") => {}
        Some(other) => {
            return Err(format!(
                "the webhook is about {other:?} objects, not \"page\": subscribe this \
                 endpoint to Page events only"
            ))
        }
        None => return Err("the webhook has no \"object\" (Messenger sends \"page\")".into()),
    }
    let entries = delivery
        .get("entry")
        .and_then(Value::as_array)
        .ok_or("the webhook has no \"entry\" array")?;
    let mut events = Vec::new();
    for (e, entry) in entries.iter().enumerate() {
        let at = format!("entry[{e}]");
        let page_id = string(entry, &at, "id")?;
        let time = entry.get("time").and_then(Value::as_i64);
        let Some(messaging) = entry.get("messaging") else {
            continue;
        };
        let messaging = messaging
            .as_array()
            .ok_or_else(|| format!("{at}.messaging is not an array"))?;
        for (m, event) in messaging.iter().enumerate() {
            let at = format!("{at}.messaging[{m}]");
            events.extend(parse_event(event, &at, page_id, time)?);
        }
    }
    Ok(events)
}

/// One `messaging[]` event, or `None` for a kind the gateway skips.
pub(super) fn parse_event(
    event: &Value,
    at: &str,
    page_id: &str,
    entry_time: Option<i64>,
) -> Result<Option<Event>, String> {
    let known = ["message", "postback", "delivery", "read"];
    if !known.iter().any(|kind| event.get(kind).is_some()) {
        return Ok(None);
    }
    let timestamp = match (event.get("timestamp"), entry_time) {
        (None, Some(time)) => time,
        _ => integer(event, at, "timestamp")?,
    };
    let CustomerEvent { psid, kind } = if let Some(message) = event.get("message") {
        message_event(event, message, at)?
    } else if let Some(postback) = event.get("postback") {
        postback_event(event, postback, at, timestamp)?
    } else if let Some(delivery) = event.get("delivery") {
        delivery_event(event, delivery, at)?
    } else {
        let read = &event["read"];
        let watermark = integer(read, &format!("{at}.read"), "watermark")?;
        CustomerEvent {
            psid: sender(event, at)?,
            kind: EventKind::Read { watermark },
        }
    };
    Ok(Some(Event {
        page_id: page_id.to_owned(),
        psid: psid.to_owned(),
        timestamp,
        kind,
    }))
}

/// What an event says and which customer it is about, before the entry's
/// page and the timestamp make it an [`Event`].
struct CustomerEvent<'a> {
    psid: &'a str,
    kind: EventKind,
}

/// A `message`: our own send echoed back, or the customer's message.
fn message_event<'a>(
    event: &'a Value,
    message: &Value,
    at: &str,
) -> Result<CustomerEvent<'a>, String> {
    let inside = format!("{at}.message");
    let mid = string(message, &inside, "mid")?.to_owned();
    if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
        return Ok(CustomerEvent {
            psid: string(event, at, "recipient.id")?,
            kind: EventKind::Echo { mid },
        });
    }
    let (attachments, locations) = attachments(message, &inside)?;
    let text = message.get("text").and_then(Value::as_str).unwrap_or("");
    let text = std::iter::once(text.to_owned())
        .chain(locations)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(CustomerEvent {
        psid: sender(event, at)?,
        kind: EventKind::Message {
            mid,
            text,
            attachments,
        },
    })
}

/// A `postback` (a button tap): a message whose text is the button's
/// title. Facebook may send it without a mid; the customer and the time
/// then make one, the same each time Facebook retries it.
fn postback_event<'a>(
    event: &'a Value,
    postback: &Value,
    at: &str,
    timestamp: i64,
) -> Result<CustomerEvent<'a>, String> {
    let psid = sender(event, at)?;
    let mid = postback
        .get("mid")
        .and_then(Value::as_str)
        .filter(|mid| !mid.is_empty())
        .map_or_else(|| format!("postback:{psid}:{timestamp}"), str::to_owned);
    let title = postback.get("title").and_then(Value::as_str).unwrap_or("");
    Ok(CustomerEvent {
        psid,
        kind: EventKind::Message {
            mid,
            text: title.to_owned(),
            attachments: Vec::new(),
        },
    })
}

/// A `delivery` receipt: its watermark, and the mids when Facebook names
/// them (`null` and absent both mean none).
fn delivery_event<'a>(
    event: &'a Value,
    delivery: &Value,
    at: &str,
) -> Result<CustomerEvent<'a>, String> {
    let inside = format!("{at}.delivery");
    let mids = match delivery.get("mids") {
        None | Some(Value::Null) => Vec::new(),
        Some(mids) => mids
            .as_array()
            .and_then(|mids| {
                mids.iter()
                    .map(|mid| mid.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("{inside}.mids must be an array of message ids"))?,
    };
    let watermark = integer(delivery, &inside, "watermark")?;
    Ok(CustomerEvent {
        psid: sender(event, at)?,
        kind: EventKind::Delivery { mids, watermark },
    })
}

/// The customer of a customer event.
pub(super) fn sender<'a>(event: &'a Value, at: &str) -> Result<&'a str, String> {
    string(event, at, "sender.id")
}

/// A message's attachments that have a URL, and a text line for each
/// shared location.
pub(super) fn attachments(
    message: &Value,
    at: &str,
) -> Result<(Vec<Attachment>, Vec<String>), String> {
    let Some(list) = message.get("attachments") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let list = list
        .as_array()
        .ok_or_else(|| format!("{at}.attachments is not an array"))?;
    let mut kept = Vec::new();
    let mut locations = Vec::new();
    for attachment in list {
        let kind = attachment.get("type").and_then(Value::as_str).unwrap_or("");
        let payload = attachment.get("payload");
        let url = payload
            .and_then(|payload| payload.get("url"))
            .and_then(Value::as_str)
            .filter(|url| !url.is_empty());
        let coordinates = payload.and_then(|payload| payload.get("coordinates"));
        let degrees = |name: &str| coordinates?.get(name)?.as_f64();
        if let Some(url) = url {
            kept.push(Attachment {
                url: url.to_owned(),
                content_type: content_type(kind).to_owned(),
            });
        } else if let (Some(lat), Some(long)) = (degrees("lat"), degrees("long")) {
            locations.push(format!("Location: {lat}, {long}"));
        }
    }
    Ok((kept, locations))
}

/// The content type of an inbound attachment by Facebook's `type`: Graph
/// gives only the kind, so the subtype is left open; files and the kinds
/// that are not media (fallback links, reels …) are opaque bytes.
pub(super) fn content_type(kind: &str) -> &'static str {
    match kind {
        "image" => "image/*",
        "video" => "video/*",
        "audio" => "audio/*",
        _ => "application/octet-stream",
    }
}

/// The value at the dotted `path` under `value` (e.g. `sender.id`).
pub(super) fn field<'a>(value: &'a Value, at: &str, path: &str) -> Result<&'a Value, String> {
    path.split('.')
        .try_fold(value, |value, key| value.get(key))
        .ok_or_else(|| format!("{} is missing", dotted(at, path)))
}

pub(super) fn string<'a>(value: &'a Value, at: &str, path: &str) -> Result<&'a str, String> {
    field(value, at, path)?
        .as_str()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| format!("{} must be a non-empty string", dotted(at, path)))
}

pub(super) fn integer(value: &Value, at: &str, path: &str) -> Result<i64, String> {
    field(value, at, path)?.as_i64().ok_or_else(|| {
        format!(
            "{} must be a whole number of milliseconds",
            dotted(at, path)
        )
    })
}

pub(super) fn dotted(at: &str, path: &str) -> String {
    if at.is_empty() {
        path.to_owned()
    } else {
        format!("{at}.{path}")
    }
}

/// The subscription handshake (`GET`): echo `hub.challenge` when
/// `hub.verify_token` is the token generated for this account.
pub(super) fn handshake(
    request: &Request,
    signer: &Signer,
    account: &dyn Fn() -> Result<providers::Settings, Error>,
) -> Option<Result<Response, Error>> {
    (request.method == Method::Get).then(|| verify(request, signer, account))
}

fn verify(
    request: &Request,
    signer: &Signer,
    account: &dyn Fn() -> Result<providers::Settings, Error>,
) -> Result<Response, Error> {
    let account_id = &signer.account_id;
    let settings = account()?;
    let Some(Settings { verify_token, .. }) = Settings::of(&settings) else {
        return Err(unknown_account(account_id, Provider::Facebook));
    };
    let subscribing = request.query_param("hub.mode").as_deref() == Some("subscribe");
    let token_matches = request
        .query_param("hub.verify_token")
        .is_some_and(|given| constant_time_eq(given.as_bytes(), verify_token.as_bytes()));
    match request.query_param("hub.challenge") {
        Some(challenge) if subscribing && token_matches => Ok(echo(&challenge)),
        _ => Err(Error::forbidden(
            "verification_failed",
            format!("hub.mode must be \"subscribe\" and hub.verify_token the verify_token of account {account_id} (GET /api/accounts/{account_id} shows it)"),
        )),
    }
}

pub(super) fn signed(request: &Request, app_secret: &str) -> bool {
    signature_valid(
        app_secret,
        &request.body,
        request.header("x-hub-signature-256"),
    )
}

pub(super) fn events(request: &Request) -> Result<Vec<providers::Event>, Error> {
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
        channel: Channel::Messenger,
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
    use crate::providers::facebook::tests::*;

    /// providers.md 3.2 (self-computed; Meta publishes no vector).
    const SIGNED_BODY: &str = r#"{"object":"page","entry":[{"id":"PAGE_ID","time":1458692752478,"messaging":[{"sender":{"id":"PSID"},"recipient":{"id":"PAGE_ID"},"timestamp":1458692752478,"message":{"mid":"mid.1457764197618:41d102a3e1ae206a38","text":"hello, world!"}}]}]}"#;
    const SIGNATURE: &str =
        "sha256=eec1906d2e5dc1a43a1014f196b421cf9d7b6696ead890eadf906dbbfe03f791";

    #[test]
    fn the_signature_vector_is_valid() {
        assert_eq!(SIGNED_BODY.len(), 239);
        assert!(signature_valid(
            SECRET,
            SIGNED_BODY.as_bytes(),
            Some(SIGNATURE)
        ));
    }

    #[test]
    fn a_wrong_secret_or_tampered_body_is_invalid() {
        let body = SIGNED_BODY.as_bytes();
        assert!(!signature_valid("other_secret", body, Some(SIGNATURE)));
        let tampered = SIGNED_BODY.replace("hello", "hullo");
        assert!(!signature_valid(
            SECRET,
            tampered.as_bytes(),
            Some(SIGNATURE)
        ));
        assert!(!signature_valid("", body, Some(SIGNATURE)));
    }

    #[test]
    fn a_missing_or_unprefixed_signature_is_invalid() {
        let body = SIGNED_BODY.as_bytes();
        assert!(!signature_valid(SECRET, body, None));
        assert!(!signature_valid(SECRET, body, Some("")));
        let bare = SIGNATURE.trim_start_matches("sha256=");
        assert!(!signature_valid(SECRET, body, Some(bare)));
        assert!(!signature_valid(
            SECRET,
            body,
            Some(&format!("sha1={bare}"))
        ));
        assert!(!signature_valid(
            SECRET,
            body,
            Some(&SIGNATURE[..SIGNATURE.len() - 2])
        ));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let upper = format!("sha256={}", SIGNATURE[7..].to_ascii_uppercase());
        assert!(signature_valid(
            SECRET,
            SIGNED_BODY.as_bytes(),
            Some(&upper)
        ));
    }

    #[test]
    fn parses_a_batched_delivery_in_order() {
        let body = r#"{
            "object": "page",
            "entry": [
                {"id": "PAGE_A", "time": 1700000000999, "messaging": [
                    {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE_A"},
                     "timestamp": 1700000000001,
                     "message": {"mid": "m_1", "text": "hello",
                                 "quick_reply": {"payload": "HI"}}},
                    {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE_A"},
                     "timestamp": 1700000000002,
                     "message": {"mid": "m_2", "attachments": [
                        {"type": "image", "payload": {"url": "https://cdn.fb/i.jpg", "sticker_id": 369239263222822}},
                        {"type": "video", "payload": {"url": "https://cdn.fb/v.mp4"}},
                        {"type": "audio", "payload": {"url": "https://cdn.fb/a.mp4"}},
                        {"type": "file", "payload": {"url": "https://cdn.fb/f.pdf"}},
                        {"type": "fallback", "payload": {"url": "https://example.com/page", "title": "A page"}},
                        {"type": "location", "payload": {"coordinates": {"lat": 48.8584, "long": 2.2945}}},
                        {"type": "template", "payload": {"template_type": "generic"}}
                     ]}},
                    {"sender": {"id": "PAGE_A"}, "recipient": {"id": "PSID1"},
                     "timestamp": 1700000000003,
                     "message": {"mid": "m_3", "is_echo": true, "app_id": 1517776481860111,
                                 "text": "our reply"}},
                    {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE_A"},
                     "delivery": {"mids": ["m_3"], "watermark": 1700000000003, "seq": 37}},
                    {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE_A"},
                     "timestamp": 1700000000005,
                     "optin": {"ref": "newsletter"}}
                ]},
                {"id": "PAGE_B", "time": 1700000000998, "messaging": [
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE_B"},
                     "timestamp": 1700000000006,
                     "delivery": {"watermark": 1700000000004}},
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE_B"},
                     "timestamp": 1700000000007,
                     "read": {"watermark": 1700000000006}},
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE_B"},
                     "timestamp": 1700000000008,
                     "postback": {"mid": "m_8", "title": "Talk to a human", "payload": "HUMAN"}},
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE_B"},
                     "timestamp": 1700000000009,
                     "postback": {"title": "Get Started", "payload": "START"}},
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE_B"},
                     "timestamp": 1700000000010,
                     "reaction": {"mid": "m_3", "action": "react", "emoji": "👍"}}
                ]},
                {"id": "PAGE_C", "time": 1700000000997, "standby": [
                    {"sender": {"id": "PSID3"}, "recipient": {"id": "PAGE_C"},
                     "timestamp": 1700000000011, "message": {"mid": "m_11", "text": "x"}}
                ]}
            ]
        }"#;
        let event = |page: &str, psid: &str, timestamp: i64, kind: EventKind| Event {
            page_id: page.into(),
            psid: psid.into(),
            timestamp,
            kind,
        };
        let attachment = |url: &str, content_type: &str| Attachment {
            url: url.into(),
            content_type: content_type.into(),
        };
        assert_eq!(
            parse_webhook(body.as_bytes()),
            Ok(vec![
                event(
                    "PAGE_A",
                    "PSID1",
                    1700000000001,
                    EventKind::Message {
                        mid: "m_1".into(),
                        text: "hello".into(),
                        attachments: Vec::new(),
                    }
                ),
                event(
                    "PAGE_A",
                    "PSID1",
                    1700000000002,
                    EventKind::Message {
                        mid: "m_2".into(),
                        text: "Location: 48.8584, 2.2945".into(),
                        attachments: vec![
                            image("https://cdn.fb/i.jpg"),
                            attachment("https://cdn.fb/v.mp4", "video/*"),
                            attachment("https://cdn.fb/a.mp4", "audio/*"),
                            attachment("https://cdn.fb/f.pdf", "application/octet-stream"),
                            attachment("https://example.com/page", "application/octet-stream"),
                        ],
                    }
                ),
                event(
                    "PAGE_A",
                    "PSID1",
                    1700000000003,
                    EventKind::Echo { mid: "m_3".into() }
                ),
                // No event timestamp: the entry's time.
                event(
                    "PAGE_A",
                    "PSID1",
                    1700000000999,
                    EventKind::Delivery {
                        mids: vec!["m_3".into()],
                        watermark: 1700000000003
                    }
                ),
                event(
                    "PAGE_B",
                    "PSID2",
                    1700000000006,
                    EventKind::Delivery {
                        mids: Vec::new(),
                        watermark: 1700000000004
                    }
                ),
                event(
                    "PAGE_B",
                    "PSID2",
                    1700000000007,
                    EventKind::Read {
                        watermark: 1700000000006
                    }
                ),
                event(
                    "PAGE_B",
                    "PSID2",
                    1700000000008,
                    EventKind::Message {
                        mid: "m_8".into(),
                        text: "Talk to a human".into(),
                        attachments: Vec::new(),
                    }
                ),
                event(
                    "PAGE_B",
                    "PSID2",
                    1700000000009,
                    EventKind::Message {
                        mid: "postback:PSID2:1700000000009".into(),
                        text: "Get Started".into(),
                        attachments: Vec::new(),
                    }
                ),
            ])
        );
    }

    #[test]
    fn a_location_follows_the_text() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":2,"message":{"mid":"m","text":"I am here","attachments":[{"type":"location","payload":{"coordinates":{"lat":-33.5,"long":151}}}]}}]}]}"#;
        let events = parse_webhook(body.as_bytes()).unwrap();
        assert_eq!(
            events[0].kind,
            EventKind::Message {
                mid: "m".into(),
                text: "I am here\nLocation: -33.5, 151".into(),
                attachments: Vec::new(),
            }
        );
    }

    #[test]
    fn the_signed_vector_parses() {
        assert_eq!(
            parse_webhook(SIGNED_BODY.as_bytes()),
            Ok(vec![Event {
                page_id: "PAGE_ID".into(),
                psid: "PSID".into(),
                timestamp: 1458692752478,
                kind: EventKind::Message {
                    mid: "mid.1457764197618:41d102a3e1ae206a38".into(),
                    text: "hello, world!".into(),
                    attachments: Vec::new(),
                },
            }])
        );
    }

    #[test]
    fn only_page_webhooks_are_accepted() {
        assert_eq!(
            parse_webhook(br#"{"object":"instagram","entry":[]}"#),
            Err("the webhook is about \"instagram\" objects, not \"page\": subscribe this endpoint to Page events only".into())
        );
        assert_eq!(
            parse_webhook(br#"{"entry":[]}"#),
            Err("the webhook has no \"object\" (Messenger sends \"page\")".into())
        );
        assert_eq!(
            parse_webhook(br#"{"object":"page","entry":[]}"#),
            Ok(Vec::new())
        );
    }

    #[test]
    fn malformed_deliveries_name_the_field() {
        let error = parse_webhook(b"{\"object\":\"page\",").unwrap_err();
        assert!(
            error.starts_with("the webhook body is not JSON: "),
            "{error}"
        );
        let cases = [
            (r#"{"object":"page"}"#, "the webhook has no \"entry\" array"),
            (
                r#"{"object":"page","entry":[{"messaging":[]}]}"#,
                "entry[0].id is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","messaging":{}}]}"#,
                "entry[0].messaging is not an array",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"read":{"watermark":1}},{"recipient":{"id":"P"},"message":{"mid":"m"}}]}]}"#,
                "entry[0].messaging[0].sender.id is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"message":{"text":"hi"}}]}]}"#,
                "entry[0].messaging[0].message.mid is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"message":{"mid":"m","is_echo":true}}]}]}"#,
                "entry[0].messaging[0].recipient.id is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":""},"read":{"watermark":1}}]}]}"#,
                "entry[0].messaging[0].sender.id must be a non-empty string",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"delivery":{"mids":["m"]}}]}]}"#,
                "entry[0].messaging[0].delivery.watermark is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"delivery":{"mids":"m","watermark":1}}]}]}"#,
                "entry[0].messaging[0].delivery.mids must be an array of message ids",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"read":{"watermark":"1"}}]}]}"#,
                "entry[0].messaging[0].read.watermark must be a whole number of milliseconds",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","messaging":[{"sender":{"id":"U"},"read":{"watermark":1}}]}]}"#,
                "entry[0].messaging[0].timestamp is missing",
            ),
            (
                r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"U"},"message":{"mid":"m","attachments":{}}}]}]}"#,
                "entry[0].messaging[0].message.attachments is not an array",
            ),
        ];
        for (body, error) in cases {
            assert_eq!(
                parse_webhook(body.as_bytes()),
                Err(error.to_owned()),
                "{body}"
            );
        }
    }

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
