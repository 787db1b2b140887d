//! The providers' webhooks (R-IN): `/webhooks/{provider}/{account id}`,
//! the callback URL an account shows (`GET /api/accounts/{id}`).
//!
//! The bodies are the providers' own formats, described by the fields the
//! gateway reads; providers add fields without notice, so every object
//! allows others. Each provider proves a request with its own signature, a
//! security scheme of its own ([`signatures`]).

use crate::operation::{string, Access, Api, Op};
use switchboard_core::providers::twilio::SIGNATURE_SETTINGS_HEADER;
use switchboard_core::providers::{facebook, google, telesign, twilio, Seam};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};

const TAG: &str = "Webhooks";
const TWILIO: &str = "twilio_signature";
const TELESIGN: &str = "telesign_signature";
const FACEBOOK: &str = "facebook_signature";
const GBM: &str = "gbm_signature";

/// The providers' signatures, as security schemes.
pub fn signatures() -> Vec<(&'static str, SecurityScheme)> {
    vec![
        (TWILIO, header_key(twilio::Settings::SIGNATURE_HEADER, "Twilio's signature: Base64 of HMAC-SHA1, keyed with the account's auth token, over the callback URL as configured at Twilio (`public_base_url`, the path and any query) followed by every POST parameter's name and value, names in byte order (a repeated name contributes each distinct value, sorted). With a shared key, `X-Twilio-Webhooks-Signature-Settings: key={key id},algorithm=HMAC_SHA256` names it and the HMAC is SHA-256 keyed with the key's secret.")),
        (TELESIGN, header_key(telesign::Settings::SIGNATURE_HEADER, "TeleSign's signature: `TSA {customer id}:{signature}` (or the bare signature), where the signature is Base64 of HMAC-SHA256 of the raw body keyed with the Base64-decoded API key. `X-TS-Authorization` may carry it instead.")),
        (FACEBOOK, header_key(facebook::Settings::SIGNATURE_HEADER, "Meta's signature: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the app secret.")),
        (GBM, header_key(google::Settings::SIGNATURE_HEADER, "Google's signature: Base64 of HMAC-SHA512 of the raw body, keyed with the webhook's client token.")),
    ]
}

fn header_key(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        name,
        description,
    )))
}

const ACCOUNT: &str = "The account's id, from its callback URL.";
const UNKNOWN: &str = "`unknown_account`: no account of this provider with this id; `no_workstream`: the message's number, page or agent is no channel of any workstream; `wrong_channel`: the number does not carry that channel on the account (an SMS to a WhatsApp-only number). Nothing was stored.";
const GONE: &str =
    "`account_deleted`: the account was deleted; remove the callback URL at the provider.";
const UNREADABLE: &str = "`invalid_callback`: signed, but not what this provider sends (a field missing or malformed); nothing was stored.";
const BUSY: &str = "The store failed, or another delivery of the same message is being stored (`in_progress`); nothing was stored twice. The provider's retry stores it once.";

pub fn describe(api: &mut Api) {
    twilio(api);
    telesign(api);
    facebook(api);
    gbm(api);
}

/// What every signed callback may answer besides its success.
fn signed(op: Op) -> Op {
    op.tag(TAG)
        .path_param("account_id", ACCOUNT)
        .fails(400, UNREADABLE)
        .fails(404, UNKNOWN)
        .fails(409, "`conversation_changed`: the conversation changed while the message was stored; the provider's retry stores it once.")
        .fails(410, GONE)
        .fails(503, BUSY)
        .answer_header(503, "retry-after", "Seconds to wait before retrying.")
}

fn twilio(api: &mut Api) {
    let body = object(
        "A Twilio callback: an inbound WhatsApp or SMS message, or (with `MessageStatus`) the delivery status of one of ours. Twilio adds parameters; those not listed are ignored.",
        &[
            ("MessageSid", text(), "The message's id."),
            ("AccountSid", text(), "The Twilio account."),
            ("From", text(), "The customer: `whatsapp:+E.164` on WhatsApp, `+E.164` on SMS."),
            ("To", text(), "Our number, written the same way."),
            ("Body", text(), "The text; may be empty with media."),
            ("NumMedia", digits(), "How many media follow, 0 to 10: `MediaUrl{n}` and `MediaContentType{n}` for each."),
            ("MediaUrl0", text(), "The first medium's URL (and so on)."),
            ("MediaContentType0", text(), "The first medium's content type."),
            ("ProfileName", text(), "The sender's WhatsApp name."),
            ("WaId", text(), "The sender's WhatsApp id."),
            ("MessageStatus", text(), "A status callback: `queued`, `sent`, `delivered`, `read`, `failed`, `undelivered` …"),
            ("ErrorCode", text(), "Why a message failed, e.g. `63016` (outside WhatsApp's window)."),
        ],
        &["MessageSid"],
    );
    let twiml = described(text(), "An empty TwiML `<Response/>`: no automatic reply.");
    api.add(
        signed(
            Op::post("/webhooks/twilio/{account_id}", "twilio_webhook", "Twilio: a WhatsApp or SMS message, or a delivery status")
                .access(Access::Signed(TWILIO))
                .describe("Set as the number's (or Messaging Service's) incoming-message and status-callback URL. A message is threaded into its conversation and routed; a status moves our message's `status` forward (never back). A message Twilio delivers twice is stored once.")
                .header(SIGNATURE_SETTINGS_HEADER, "With a shared key: `key={key id},algorithm=HMAC_SHA256`.")
                .body_as(body, "application/x-www-form-urlencoded")
                .answers_as(200, "Taken (stored, a duplicate, or a status of a message not ours).", twiml, "text/xml"),
        ),
    );
}

fn telesign(api: &mut Api) {
    let user_response = object(
        "The inbound SMS.",
        &[
            (
                "phone_number",
                text(),
                "The customer's digits, with the country code.",
            ),
            ("mo_message", text(), "The text."),
            (
                "sender_id",
                text(),
                "Our number's digits; when left out, the account's only number.",
            ),
        ],
        &["phone_number", "mo_message"],
    );
    let status = object(
        "A delivery report's status.",
        &[
            ("code", RefOr::T(ObjectBuilder::new().schema_type(Type::Integer).into()), "TeleSign's status code: 200 and 201 delivered; 203, 250, 251, 290, 292, 295 and 599 pending; others failed."),
            ("description", text(), "What the code means."),
        ],
        &[],
    );
    let body = object(
        "A TeleSign Transaction Callback: an inbound SMS (`sub_resource` `mo_sms`, with `user_response`) or a delivery report (`status`).",
        &[
            ("reference_id", text(), "The message's id."),
            ("sub_resource", text(), "`mo_sms` for an inbound SMS."),
            ("user_response", user_response, "An inbound SMS."),
            ("status", status, "A delivery report."),
        ],
        &["reference_id"],
    );
    let received = received();
    api.add(
        signed(
            Op::post("/webhooks/telesign/{account_id}", "telesign_webhook", "TeleSign: an inbound SMS or a delivery report")
                .access(Access::Signed(TELESIGN))
                .describe("Set as the customer's callback URL for inbound SMS and delivery reports. TeleSign retries anything but 200, so every callback taken answers 200, a duplicate or a report of a message not ours included.")
                .body(body)
                .answers(200, "Taken.", received),
        ),
    );
}

fn facebook(api: &mut Api) {
    let challenge = described(text(), "`hub.challenge`, as sent.");
    api.add(
        Op::get("/webhooks/facebook/{account_id}", "facebook_verify", "Messenger: the subscription handshake")
            .tag(TAG)
            .access(Access::Public)
            .path_param("account_id", ACCOUNT)
            .describe("Meta's verification request when the webhook is subscribed: answered with the challenge when `hub.verify_token` is the account's `verify_token`.")
            .query("hub.mode", string(), "`subscribe`.")
            .query("hub.verify_token", string(), "The account's `verify_token`.")
            .query("hub.challenge", string(), "What to answer.")
            .answers_as(200, "The challenge.", challenge, "text/plain")
            .fails(403, "`verification_failed`: `hub.mode` is not `subscribe`, or `hub.verify_token` is not the account's, or there is no `hub.challenge`.")
            .fails(404, "`unknown_account`: no Messenger account with this id.")
            .fails(410, GONE),
    );
    let event = object(
        "One event: a message (`message`, our echoes `message.is_echo`), a button tap (`postback`), a `delivery` or a `read` receipt; other kinds are skipped.",
        &[
            ("sender", id_only(), "The customer (`recipient` for an echo): `id` is the PSID."),
            ("recipient", id_only(), "The page, or the customer for an echo."),
            ("timestamp", integer(), "Milliseconds since the epoch (else the entry's `time`)."),
            ("message", free(), "`mid`, `text`, `attachments` (`type`, `payload.url`), `is_echo`."),
            ("postback", free(), "`mid`, `title`."),
            ("delivery", free(), "`mids`, `watermark`."),
            ("read", free(), "`watermark`."),
        ],
        &[],
    );
    let entry = object(
        "A page's events.",
        &[
            (
                "id",
                text(),
                "The page id: events of pages the account does not hold are skipped.",
            ),
            ("time", integer(), "Milliseconds since the epoch."),
            ("messaging", array(event), "The events."),
        ],
        &["id"],
    );
    let body = object(
        "A Messenger delivery: several pages' entries, each with events.",
        &[
            ("object", text(), "`page`."),
            (
                "entry",
                array(entry),
                "At most 2,000 events in all (422 `too_many_events`).",
            ),
        ],
        &["object", "entry"],
    );
    let received = described(text(), "`EVENT_RECEIVED`.");
    api.add(
        signed(
            Op::post("/webhooks/facebook/{account_id}", "facebook_webhook", "Messenger: page events")
                .access(Access::Signed(FACEBOOK))
                .describe("Messages, postbacks, echoes and receipts of the account's pages. One delivery may carry events of pages of other accounts (skipped) and of several customers: an event refused for good is skipped so that the others are stored.")
                .body(body)
                .answers_as(200, "Taken.", received, "text/plain"),
        )
        .fails(422, "`too_many_events`: more events than one delivery carries; nothing was stored."),
    );
}

fn gbm(api: &mut Api) {
    let body = object(
        "A Business Messages webhook: the console's verification (`clientToken` and `secret`), a user's `message`, a tapped `suggestionResponse`, `receipts`, or a `userStatus`; other kinds are acknowledged and ignored.",
        &[
            ("clientToken", text(), "Verification: the webhook's client token."),
            ("secret", text(), "Verification: what to answer."),
            ("agent", text(), "`brands/{brand}/agents/{agent}`: our agent."),
            ("conversationId", text(), "The customer's conversation: their address."),
            ("context", free(), "`userInfo.displayName`: the customer's name."),
            ("message", free(), "`messageId`, `text` (an image is its signed URL)."),
            ("suggestionResponse", free(), "`message`, `text`."),
            ("requestId", text(), "The request's id."),
            ("receipts", free(), "`receipts[]` of `message` and `receiptType` (`DELIVERED`, `READ`); at most 1,000 (422)."),
            ("userStatus", free(), "Typing, or `requestedLiveAgent`."),
        ],
        &[],
    );
    let secret = described(text(), "The verification's `secret`, as sent.");
    let received = received();
    api.add(
        signed(
            Op::post("/webhooks/gbm/{account_id}", "gbm_webhook", "Google's Business Messages: messages, receipts, verification")
                .access(Access::Signed(GBM))
                .describe("The console's verification is answered with its `secret` (as text) when its `clientToken` is the account's (403 `verification_failed` otherwise); every other request is signed.")
                .body(body)
                .answers(200, "Taken: `{\"received\": true}`.", received)
                .answers_as(200, "Or, for the verification, its secret.", secret, "text/plain"),
        )
        .fails(403, "`invalid_signature`: the signature is missing or does not verify; `verification_failed`: the verification's `clientToken` is not the account's. Nothing was stored.")
        .fails(422, "More receipts than one request may carry; nothing was stored."),
    );
}

/// `{"received": true}`.
fn received() -> RefOr<Schema> {
    let yes = ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]));
    RefOr::T(
        ObjectBuilder::new()
            .property("received", yes)
            .required("received")
            .into(),
    )
}

/// An object of the provider's, with the fields the gateway reads.
fn object(
    description: &str,
    fields: &[(&str, RefOr<Schema>, &str)],
    required: &[&str],
) -> RefOr<Schema> {
    let mut builder = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description));
    for (name, schema, about) in fields {
        let schema = match about {
            &"" => schema.clone(),
            about => described(schema.clone(), about),
        };
        builder = builder.property(*name, schema);
    }
    for name in required {
        builder = builder.required(*name);
    }
    RefOr::T(builder.into())
}

fn described(schema: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object.description = Some(description.to_owned());
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// `{"id": …}`.
fn id_only() -> RefOr<Schema> {
    RefOr::T(
        ObjectBuilder::new()
            .property("id", string())
            .required("id")
            .into(),
    )
}

fn text() -> RefOr<Schema> {
    string()
}

fn digits() -> RefOr<Schema> {
    RefOr::T(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]+$"))
            .into(),
    )
}

fn integer() -> RefOr<Schema> {
    RefOr::T(ObjectBuilder::new().schema_type(Type::Integer).into())
}

/// An object whose fields the description names.
fn free() -> RefOr<Schema> {
    RefOr::T(ObjectBuilder::new().schema_type(Type::Object).into())
}

fn array(item: RefOr<Schema>) -> RefOr<Schema> {
    RefOr::T(ArrayBuilder::new().items(item).into())
}
