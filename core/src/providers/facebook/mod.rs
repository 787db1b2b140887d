//! Facebook Messenger (providers.md 3): the page-token check, webhook
//! signatures and events, and the Send API.
//!
//! Asking Graph who the token is (`/me`) proves three things the Send API
//! needs, and that the admin saving it holds the page: the token is alive
//! (else Graph error 190), it belongs to this page (`/me` of a page token is
//! that page), and the app secret matches the app the token was issued to
//! (every call carries `appsecret_proof`, which apps requiring it refuse
//! without and Graph checks when present). Reading the page by its id would
//! prove none of the middle: any token may read a public page.
//!
//! Webhooks are signed with the app secret over the raw body, so the
//! signature is checked on the bytes as received, before any parsing. One
//! POST may batch events of several pages; they are flattened here into
//! typed [`Event`]s so the rest of the core never sees Graph's field names,
//! and kinds the gateway does not handle are skipped rather than refused:
//! a refused delivery is redelivered and can get the webhook disabled.
//!
//! Sending maps Graph's answers onto the decisions the caller has to make:
//! done, outside the messaging window (only the customer writing again
//! reopens it), retry later, or refused for good. Every message is scrubbed
//! of the page token, the app secret and the proof, which hosts and Graph
//! may quote back.

mod credentials;
mod pages;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use pages::{every_page_token_warning, PageTokenWarning};
#[cfg(test)]
pub(crate) use pages::{page_claim, DAY_MILLIS};
pub use send::*;
pub use settings::{FacebookPage, Settings};
pub use webhook::*;

use super::{endpoint, http_status, json, scrub, text, verdict_for};
use super::{receipt_status, Checked, DeliveryStatus, Provider, Seam};
use super::{retry_after, CredentialCheck, ReplyWindow, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{ApiError, Request, Response};
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::conversations::Attachment;
use crate::encoding::{hex, percent_encode};
use crate::input::Object;
use crate::ports::{KeyValue, Ports};
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use crate::webhooks::{echo, Signer};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

/// Messenger takes free-form messages for 24 hours after the customer's
/// last message, and a human agent's reply with the HUMAN_AGENT tag for 7
/// days.
pub fn reply_window(_channel: Channel) -> ReplyWindow {
    ReplyWindow {
        free_form_hours: Some(24),
        human_agent_hours: Some(7 * 24),
        refused_by: "Facebook refused the message: ",
        closed: "Messenger's window for replies closed at {closed_at} (24 hours after the customer's last message, or 7 days for a human agent when the channel's human_agent_tag is on); wait for the customer to write",
    }
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Facebook;
    const DISPLAY_NAME: &'static str = "Facebook";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNEL: Channel = Channel::Messenger;
    const API_BASES: &'static [(&'static str, &'static str)] = &[("facebook", "graph_api_base")];
    const ADDRESS_KIND: &'static str = "the page id of one of the account's connected pages";

    fn reply_window(channel: Channel) -> ReplyWindow {
        reply_window(channel)
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        receipt_status(word)
    }

    fn read(ctx: &Ctx, input: &Object, existing: Option<&Self>) -> Result<Self, ApiError> {
        Settings::read(ctx, input, existing)
    }

    fn view(&self, callback_url: &str) -> Value {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.app_secret
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    async fn confirm(&self, ctx: &Ctx<'_>, previous: Option<&Self>) -> Result<(), ApiError> {
        pages::confirm_new_tokens(ctx, self, previous).await
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        account_id: &str,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), ApiError> {
        pages::claim_pages(ctx, account_id, self, previous, effects)
    }

    fn on_delete(&self, _account_id: &str) -> Vec<String> {
        pages::released(self)
    }

    fn warnings(&self, org: &str, account_id: &str, now_millis: i64) -> Vec<PageTokenWarning> {
        pages::token_warnings(self, org, account_id, now_millis)
    }

    fn every_warning(
        kv: &dyn KeyValue,
        now_millis: i64,
    ) -> Result<Vec<PageTokenWarning>, ApiError> {
        every_page_token_warning(kv, now_millis)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, ApiError> {
        pages::check_pages(ctx, self).await
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, ApiError> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = ();
    const METHODS: &'static [&'static str] = &["GET", "POST"];
    const SIGNATURE_HEADER: &'static str = "X-Hub-Signature-256";
    const BATCHES: bool = true;

    fn unverified(_request: &Request) {}

    fn handshake(
        _: &(),
        request: &Request,
        ports: &Ports<'_>,
        signer: &Signer,
    ) -> Option<Result<Response, ApiError>> {
        webhook::handshake(request, ports, signer)
    }

    fn signed(_: &(), request: &Request, _ports: &Ports<'_>, secret: &str) -> bool {
        webhook::signed(request, secret)
    }

    fn events(_: (), request: &Request) -> Result<Vec<super::Event>, ApiError> {
        webhook::events(request)
    }

    fn accepted() -> Response {
        echo("EVENT_RECEIVED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const SECRET: &str = "test_app_secret";
    const PAGE: &str = "1234567890";
    const TOKEN: &str = "EAAB-page-token";
    const PROOF: &str = "994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    fn check(http: &ScriptedHttp, token: &str) -> CredentialCheck {
        block_on(check_page(
            http,
            "https://graph.facebook.com/",
            SECRET,
            PAGE,
            token,
        ))
    }

    #[test]
    fn the_proof_is_hex_hmac_sha256_of_the_token() {
        assert_eq!(appsecret_proof(SECRET, TOKEN), PROOF);
    }

    #[test]
    fn asks_whose_token_it_is_with_the_proof() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890","name":"Acme Support"}"#));
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "page 1234567890 \"Acme Support\"".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            format!(
                "https://graph.facebook.com/v21.0/me?fields=id,name\
                 &access_token=EAAB-page-token&appsecret_proof={PROOF}"
            )
        );
        assert!(sent[0].headers.is_empty());
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn the_token_is_url_encoded() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890"}"#));
        check(&http, "a+b/c=");
        assert!(http.sent()[0].url.contains("&access_token=a%2Bb%2Fc%3D&"));
    }

    #[test]
    fn a_token_of_another_page_is_invalid() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"999","name":"Other"}"#));
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "the token belongs to page 999 \"Other\", not 1234567890: \
             paste the access token of page 1234567890"
        );
    }

    #[test]
    fn a_bad_token_is_invalid_with_graphs_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbC"}}"#,
            )
        });
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(400),
                message: "Invalid OAuth access token - Cannot parse access token (Graph error 190)"
                    .into(),
            }
        );
    }

    #[test]
    fn a_bad_proof_or_expired_token_is_invalid() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Invalid appsecret_proof provided in the API argument (Graph error 100)"
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(401))
        );
        assert!(result.message.ends_with("(Graph error 190/463)"));
    }

    #[test]
    fn rate_limits_server_errors_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| {
            reply(
                403,
                r#"{"error":{"message":"Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}"#,
            )
        });
        assert_eq!(check(&http, TOKEN).verdict, Verdict::Unreachable);
        let http = ScriptedHttp::new(|_| reply(503, "Service Unavailable"));
        let result = check(&http, TOKEN);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http =
            ScriptedHttp::new(|request| Err(OutboundError(format!("{} timed out", request.url))));
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Unreachable, None)
        );
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(!result.message.contains(PROOF), "{}", result.message);
        assert!(result
            .message
            .contains("access_token=[redacted]&appsecret_proof=[redacted]"));
    }

    // ------------------------------------------------------- signatures

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

    // ------------------------------------------------------------ events

    fn image(url: &str) -> Attachment {
        Attachment {
            url: url.into(),
            content_type: "image/*".into(),
        }
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

    // ----------------------------------------------------------- sending

    const MESSAGES_URL: &str = "https://graph.facebook.com/v21.0/me/messages\
         ?access_token=EAAB-page-token\
         &appsecret_proof=994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    fn outgoing<'a>(
        text: &'a str,
        attachments: &'a [Attachment],
        messaging_type: MessagingType,
    ) -> Outgoing<'a> {
        Outgoing {
            page_token: TOKEN,
            app_secret: SECRET,
            psid: "24680",
            text,
            attachments,
            messaging_type,
        }
    }

    fn sent_with(http: &ScriptedHttp, message: &Outgoing<'_>) -> SendOutcome {
        block_on(send(http, "https://graph.facebook.com/", message))
    }

    /// Graph's answers in turn, `m_1`, `m_2` …
    fn accepting() -> ScriptedHttp {
        let count = std::sync::atomic::AtomicUsize::new(0);
        ScriptedHttp::new(move |_| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            reply(
                200,
                &format!(r#"{{"recipient_id":"24680","message_id":"m_{n}"}}"#),
            )
        })
    }

    fn bodies(http: &ScriptedHttp) -> Vec<String> {
        http.sent()
            .into_iter()
            .map(|request| String::from_utf8(request.body).unwrap())
            .collect()
    }

    #[test]
    fn sends_a_response_as_json_with_the_proof() {
        let http = accepting();
        assert_eq!(
            sent_with(
                &http,
                &outgoing("Hi \"Jane\" 👋", &[], MessagingType::Response)
            ),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(sent[0].url, MESSAGES_URL);
        assert_eq!(
            sent[0].headers,
            vec![("Content-Type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"RESPONSE","message":{"text":"Hi \"Jane\" 👋"}}"#
            ]
        );
    }

    #[test]
    fn a_human_agent_reply_carries_the_tag() {
        let http = accepting();
        sent_with(
            &http,
            &outgoing("Sorry for the wait", &[], MessagingType::HumanAgent),
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":{"text":"Sorry for the wait"}}"#
            ]
        );
    }

    #[test]
    fn the_token_and_proof_are_url_encoded() {
        let http = accepting();
        let message = Outgoing {
            page_token: "a+b/c=",
            ..outgoing("hi", &[], MessagingType::Response)
        };
        sent_with(&http, &message);
        let proof = appsecret_proof(SECRET, "a+b/c=");
        assert_eq!(
            http.sent()[0].url,
            format!(
                "https://graph.facebook.com/v21.0/me/messages\
                 ?access_token=a%2Bb%2Fc%3D&appsecret_proof={proof}"
            )
        );
    }

    #[test]
    fn attachments_follow_the_text_one_request_each() {
        let http = accepting();
        let attachments = [
            image("https://cdn.example/a.jpg?x=1&y=2"),
            Attachment {
                url: "https://cdn.example/b.mp4".into(),
                content_type: "Video/MP4".into(),
            },
            Attachment {
                url: "https://cdn.example/c.ogg".into(),
                content_type: "audio/ogg".into(),
            },
            Attachment {
                url: "https://cdn.example/d.pdf".into(),
                content_type: "application/pdf".into(),
            },
        ];
        assert_eq!(
            sent_with(
                &http,
                &outgoing("Here you go", &attachments, MessagingType::HumanAgent)
            ),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        let head = r#"{"recipient":{"id":"24680"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":"#;
        let expected: Vec<String> = [
            r#"{"text":"Here you go"}"#,
            r#"{"attachment":{"type":"image","payload":{"url":"https://cdn.example/a.jpg?x=1&y=2","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"video","payload":{"url":"https://cdn.example/b.mp4","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"audio","payload":{"url":"https://cdn.example/c.ogg","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"file","payload":{"url":"https://cdn.example/d.pdf","is_reusable":false}}}"#,
        ]
        .iter()
        .map(|message| format!("{head}{message}}}"))
        .collect();
        assert_eq!(bodies(&http), expected);
        assert!(http
            .sent()
            .iter()
            .all(|request| request.url == MESSAGES_URL));
    }

    #[test]
    fn without_text_only_the_attachments_are_sent() {
        let http = accepting();
        let attachments = [image("https://cdn.example/a.jpg")];
        assert_eq!(
            sent_with(&http, &outgoing("", &attachments, MessagingType::Response)),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"RESPONSE","message":{"attachment":{"type":"image","payload":{"url":"https://cdn.example/a.jpg","is_reusable":false}}}}"#
            ]
        );
    }

    #[test]
    fn the_first_failure_stops_the_sending() {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let http = ScriptedHttp::new(move |_| {
            match count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => reply(200, r#"{"recipient_id":"24680","message_id":"m_1"}"#),
                _ => reply(
                    400,
                    r#"{"error":{"message":"(#100) Invalid attachment URL","type":"OAuthException","code":100,"fbtrace_id":"X"}}"#,
                ),
            }
        });
        let attachments = [image("https://a/1.jpg"), image("https://a/2.jpg")];
        assert_eq!(
            sent_with(
                &http,
                &outgoing("text", &attachments, MessagingType::Response)
            ),
            SendOutcome::Rejected {
                status: 400,
                code: Some(100),
                message: "(#100) Invalid attachment URL".into()
            }
        );
        assert_eq!(http.sent().len(), 2);
    }

    fn answered(status: u16, body: &str) -> SendOutcome {
        let body = body.to_owned();
        let http = ScriptedHttp::new(move |_| reply(status, &body));
        sent_with(&http, &outgoing("hi", &[], MessagingType::Response))
    }

    #[test]
    fn a_closed_window_is_outside_window() {
        let outside = SendOutcome::OutsideWindow {
            message: "(#10) This message is sent outside of allowed window.".into(),
        };
        assert_eq!(
            answered(
                400,
                r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A1"}}"#
            ),
            outside
        );
        assert_eq!(
            answered(
                403,
                r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","error_subcode":2018278}}"#
            ),
            outside
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        for code in [4, 17, 32, 613] {
            assert_eq!(
                answered(
                    400,
                    &format!(
                        r#"{{"error":{{"message":"Calls to this API have exceeded the rate limit.","type":"OAuthException","code":{code}}}}}"#
                    )
                ),
                SendOutcome::RateLimited {
                    retry_after_seconds: None,
                    message: "Calls to this API have exceeded the rate limit.".into()
                },
                "{code}"
            );
        }
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "30".into())],
                body: Vec::new(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing("hi", &[], MessagingType::Response)),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(30),
                message: "HTTP 429".into()
            }
        );
    }

    #[test]
    fn an_expired_token_says_how_to_refresh_it() {
        assert_eq!(
            answered(
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A2"}}"#
            ),
            SendOutcome::Rejected {
                status: 401,
                code: Some(190),
                message: "Error validating access token: Session has expired: the page's \
                          access token no longer works; get a new page token and save it \
                          with PATCH /api/accounts/{id}"
                    .into()
            }
        );
    }

    #[test]
    fn other_refusals_are_rejected_with_graphs_words() {
        assert_eq!(
            answered(
                400,
                r#"{"error":{"message":"(#551) This person isn't available right now.","type":"OAuthException","code":551,"error_subcode":1545041,"fbtrace_id":"A3"}}"#
            ),
            SendOutcome::Rejected {
                status: 400,
                code: Some(551),
                message: "(#551) This person isn't available right now.".into()
            }
        );
        assert_eq!(
            answered(502, "<html>Bad Gateway</html>"),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
        assert_eq!(
            answered(200, r#"{"recipient_id":"24680"}"#),
            SendOutcome::Rejected {
                status: 200,
                code: None,
                message: "Graph answered HTTP 200 without a message_id".into()
            }
        );
        assert_eq!(
            answered(
                200,
                r#"{"error":{"message":"(#2) Service temporarily unavailable","code":2}}"#
            ),
            SendOutcome::Rejected {
                status: 200,
                code: Some(2),
                message: "(#2) Service temporarily unavailable".into()
            }
        );
    }

    #[test]
    fn outcome_messages_never_carry_a_secret() {
        let echoed = format!(
            r#"{{"error":{{"message":"bad token {TOKEN} for {SECRET} with {PROOF}","type":"OAuthException","code":190}}}}"#
        );
        let SendOutcome::Rejected { message, .. } = answered(400, &echoed) else {
            panic!("not rejected")
        };
        assert!(
            message.starts_with("bad token [redacted] for [redacted] with [redacted]: "),
            "{message}"
        );
        let http =
            ScriptedHttp::new(|request| Err(OutboundError(format!("{} timed out", request.url))));
        assert_eq!(
            sent_with(&http, &outgoing("hi", &[], MessagingType::Response)),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: https://graph.facebook.com/v21.0/me/messages\
                          ?access_token=[redacted]&appsecret_proof=[redacted] timed out"
                    .into()
            }
        );
        let window = format!(
            r#"{{"error":{{"message":"outside window {TOKEN}","code":10,"error_subcode":2018278}}}}"#
        );
        assert_eq!(
            answered(400, &window),
            SendOutcome::OutsideWindow {
                message: "outside window [redacted]".into()
            }
        );
        let limited = format!(r#"{{"error":{{"message":"slow {PROOF}","code":613}}}}"#);
        assert_eq!(
            answered(400, &limited),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "slow [redacted]".into()
            }
        );
    }
}
