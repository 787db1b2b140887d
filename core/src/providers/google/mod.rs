//! Google Business Messages (providers.md 4): service-account tokens, the
//! credential check, webhooks and sending.
//!
//! - Google authenticates a service account by a JWT it signs with its
//!   private key (RS256), traded at the OAuth token endpoint for an access
//!   token. Asking for a token is therefore the whole credential check:
//!   Google verifies the key, the account and the scope, and nothing is sent
//!   to anyone. Signing is PKCS#1 v1.5, deterministic, so the guest needs no
//!   randomness and the tests can pin the output.
//! - Webhooks carry `X-Goog-Signature`, an HMAC-SHA512 of the raw body keyed
//!   with the webhook's client token, so they are checked before they are
//!   parsed; parsing turns Google's payload shapes into [`Webhook`]s so the
//!   rest of the core never sees Google's field names.
//! - Sending maps Google's answers onto the caller's decisions, like the
//!   other providers. Google takes one of text or an image per message, so
//!   attachments go as messages of their own, each with an id derived from
//!   ours: the message id is Google's idempotency key, so a retry of the
//!   whole send repeats nothing that already went out.

mod credentials;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use send::*;
pub use settings::Settings;
pub use webhook::*;

use super::{endpoint, http_status, json, retry_after, scrub, text, verdict_for};
use super::{receipt_status, Checked, DeliveryStatus, Event, Provider, Seam};
use super::{CredentialCheck, ReplyWindow, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{ApiError, Request, Response};
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::conversations::Attachment;
use crate::encoding::percent_encode;
use crate::input::Object;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;

/// Business Messages has no window: a reply may go out at any time.
pub fn reply_window(_channel: Channel) -> ReplyWindow {
    ReplyWindow::NONE
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Google;
    const DISPLAY_NAME: &'static str = "Google";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNEL: Channel = Channel::Gbm;
    const API_BASES: &'static [(&'static str, &'static str)] = &[
        ("gbm", "gbm_api_base"),
        ("google_oauth", "google_oauth_base"),
    ];
    const ADDRESS_KIND: &'static str = "the account's GBM agent id";

    fn reply_window(channel: Channel) -> ReplyWindow {
        reply_window(channel)
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        receipt_status(word)
    }

    fn read(_ctx: &Ctx, input: &Object, _existing: Option<&Self>) -> Result<Self, ApiError> {
        Settings::read(input)
    }

    fn view(&self, callback_url: &str) -> Value {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.client_token
    }

    fn addresses(&self) -> Vec<&str> {
        vec![self.agent_id.as_str()]
    }

    /// A saved account may hold a new service account: the cached token is
    /// dropped.
    fn on_save(
        &mut self,
        _ctx: &Ctx,
        account_id: &str,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), ApiError> {
        if previous.is_some() {
            effects.deletes.push(token_cache_key(account_id));
        }
        Ok(())
    }

    fn on_delete(&self, account_id: &str) -> Vec<String> {
        vec![token_cache_key(account_id)]
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, ApiError> {
        let parsed = ServiceAccount::parse(&self.service_account)
            .map_err(|message| ApiError::invalid("service_account", "invalid_format", message))?;
        let oauth_base = super::api_base(ctx.ports.variables, "google_oauth_base")?;
        let now = ctx.ports.clock.now_millis();
        Ok(check_credentials(ctx.ports.http, &oauth_base, &parsed, now)
            .await
            .into())
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, ApiError> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = Result<Webhook, String>;
    const SIGNATURE_HEADER: &'static str = "X-Goog-Signature";

    fn unverified(request: &Request) -> Self::Unverified {
        parse_webhook(&request.body)
    }

    fn handshake(
        webhook: &Self::Unverified,
        _request: &Request,
        _ports: &Ports<'_>,
        signer: &crate::webhooks::Signer,
    ) -> Option<Result<Response, ApiError>> {
        webhook::handshake(webhook, signer)
    }

    fn signed(_: &Self::Unverified, request: &Request, _ports: &Ports<'_>, secret: &str) -> bool {
        signature_valid(secret, &request.body, request.header("x-goog-signature"))
    }

    fn events(webhook: Self::Unverified, _request: &Request) -> Result<Vec<Event>, ApiError> {
        webhook::events(webhook)
    }

    fn accepted() -> Response {
        Response::json(200, &serde_json::json!({"received": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::RsaPublicKey;

    const KEY_FILE: &str = include_str!("../../../../tests/fixtures/google-service-account.json");
    const PUBLIC_KEY: &str =
        include_str!("../../../../tests/fixtures/google-service-account.pub.pem");
    const EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";
    const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    const NOW: i64 = 1_700_000_000;

    fn account() -> ServiceAccount {
        ServiceAccount::parse(KEY_FILE).unwrap()
    }

    fn key_id() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key_id"].as_str().unwrap().to_owned()
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks the assertion as Google would: signature, header and claims.
    fn verify(jwt: &str, audience: &str, iat: i64) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let public = RsaPublicKey::from_public_key_pem(PUBLIC_KEY).unwrap();
        let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
            .expect("the fixture's public key verifies the signature");
        assert_eq!(
            decode(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key_id()})
        );
        assert_eq!(
            decode(parts[1]),
            serde_json::json!({
                "iss": EMAIL,
                "scope": BUSINESS_MESSAGES_SCOPE,
                "aud": audience,
                "iat": iat,
                "exp": iat + 3600,
            })
        );
    }

    #[test]
    fn parses_the_key_file() {
        let account = account();
        assert_eq!(account.client_email, EMAIL);
        assert_eq!(account.private_key_id, Some(key_id()));
        let shown = format!("{account:?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("key:"),
            "{shown}"
        );
    }

    #[test]
    fn signs_a_verifiable_deterministic_assertion() {
        let jwt = account().jwt_assertion(TOKEN_URL, NOW);
        verify(&jwt, TOKEN_URL, NOW);
        assert_eq!(jwt, account().jwt_assertion(TOKEN_URL, NOW));
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
    }

    #[test]
    fn the_header_has_no_kid_without_a_key_id() {
        let mut file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file.as_object_mut().unwrap().remove("private_key_id");
        let account = ServiceAccount::parse(&file.to_string()).unwrap();
        let jwt = account.jwt_assertion(TOKEN_URL, NOW);
        let header = jwt.split('.').next().unwrap();
        assert_eq!(
            decode(header),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
    }

    fn with(field: &str, value: serde_json::Value) -> String {
        let mut file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file[field] = value;
        file.to_string()
    }

    #[test]
    fn parse_errors_name_the_field_and_never_quote_the_key() {
        let pem = account_pem();
        let cases = [
            ("{", "not JSON"),
            (
                &with("type", "authorized_user".into()),
                "\"type\" is \"authorized_user\"",
            ),
            (&with("type", serde_json::Value::Null), "no \"type\""),
            (&with("client_email", "nobody".into()), "\"client_email\""),
            (
                &with("private_key", serde_json::Value::Null),
                "\"private_key\" is missing",
            ),
            (
                &with(
                    "private_key",
                    pem.replace("PRIVATE KEY", "RSA PRIVATE KEY").into(),
                ),
                "not a PKCS#8 PEM key",
            ),
            (
                &with("private_key", pem.replace("MII", "XXX").into()),
                "not a readable RSA private key",
            ),
        ];
        for (json, expected) in cases {
            let error = ServiceAccount::parse(json).unwrap_err();
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("Google Cloud console"), "{error}");
            assert!(!error.contains("MII") && !error.contains("XXX"), "{error}");
        }
    }

    fn account_pem() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key"].as_str().unwrap().to_owned()
    }

    fn check(http: &ScriptedHttp) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://oauth2.googleapis.com/",
            &account(),
            NOW * 1000 + 999,
        ))
    }

    #[test]
    fn posts_a_jwt_bearer_grant_to_the_token_endpoint() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"access_token":"ya29.secret","expires_in":3599,"token_type":"Bearer"}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: format!("Google issued an access token to {EMAIL}"),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(sent[0].url, TOKEN_URL);
        assert_eq!(
            sent[0].headers,
            vec![(
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned()
            )]
        );
        let body = String::from_utf8(sent[0].body.clone()).unwrap();
        let assertion = account().jwt_assertion(TOKEN_URL, NOW);
        assert_eq!(
            body,
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            )
        );
        verify(&assertion, TOKEN_URL, NOW);
    }

    #[test]
    fn a_refused_grant_is_invalid_with_googles_description() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(400),
                message: "invalid_grant: Invalid JWT Signature.".into(),
            }
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"error":"invalid_client","error_description":"The OAuth client was not found."}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(401))
        );
        assert_eq!(
            result.message,
            "invalid_client: The OAuth client was not found."
        );
    }

    #[test]
    fn no_token_server_errors_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(200, "{}"));
        assert_eq!(check(&http).verdict, Verdict::Unreachable);
        let http = ScriptedHttp::new(|_| {
            reply(
                503,
                r#"{"error":{"code":503,"message":"The service is currently unavailable."}}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (
                Verdict::Unreachable,
                Some(503),
                "The service is currently unavailable."
            )
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!(
                "refused {}",
                String::from_utf8_lossy(&request.body)
            )))
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Unreachable, None)
        );
        assert!(
            result.message.ends_with("&assertion=[redacted]"),
            "{}",
            result.message
        );
    }

    // ----------------------------------------------------------- tokens

    #[test]
    fn fetch_token_sends_the_check_request_and_dates_the_expiry() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer"}"#,
            )
        });
        let token = block_on(fetch_token(
            &http,
            "https://oauth2.googleapis.com",
            &account(),
            NOW * 1000 + 999,
        ));
        assert_eq!(
            token,
            Ok(AccessToken {
                token: "ya29.token".into(),
                expires_at_millis: NOW * 1000 + 999 + 3_599_000,
            })
        );
        let checked = ScriptedHttp::new(|_| reply(200, r#"{"access_token":"x"}"#));
        check(&checked);
        assert_eq!(http.sent(), checked.sent());
        // No expires_in: Google's hour.
        let token = block_on(fetch_token(
            &checked,
            "https://oauth2.googleapis.com",
            &account(),
            0,
        ));
        assert_eq!(token.unwrap().expires_at_millis, 3_600_000);
    }

    fn fetch(http: &ScriptedHttp) -> Result<AccessToken, SendOutcome> {
        block_on(fetch_token(
            http,
            "https://oauth2.googleapis.com",
            &account(),
            NOW * 1000,
        ))
    }

    #[test]
    fn fetch_token_failures_say_what_google_said_without_the_assertion() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            )
        });
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::Rejected {
                status: 400,
                code: None,
                message: "invalid_grant: Invalid JWT Signature.".into()
            })
        );
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "30".into())],
                body: br#"{"error":{"code":429,"message":"Quota exceeded"}}"#.to_vec(),
            })
        });
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::RateLimited {
                retry_after_seconds: Some(30),
                message: "Quota exceeded".into()
            })
        );
        let http = ScriptedHttp::new(|_| reply(200, r#"{"token_type":"Bearer"}"#));
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::Rejected {
                status: 200,
                code: None,
                message: "Google's token endpoint answered HTTP 200 without an access token".into()
            })
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!(
                "refused {}",
                String::from_utf8_lossy(&request.body)
            )))
        });
        let Err(SendOutcome::Unreachable { message }) = fetch(&http) else {
            panic!("a transport error is unreachable");
        };
        assert!(message.ends_with("&assertion=[redacted]"), "{message}");
        let assertion = account().jwt_assertion(TOKEN_URL, NOW);
        let http = ScriptedHttp::new(move |_| {
            reply(
                400,
                &format!(r#"{{"error":"invalid_grant","error_description":"bad {assertion}"}}"#),
            )
        });
        assert!(matches!(
            fetch(&http),
            Err(SendOutcome::Rejected { message, .. }) if message == "invalid_grant: bad [redacted]"
        ));
    }

    // --------------------------------------------------------- webhooks

    const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";
    /// providers.md 4.2's self-computed vector (390 bytes).
    const SIGNED_BODY: &str = r#"{"agent":"brands/BRAND_ID/agents/AGENT_ID","conversationId":"CONVERSATION_ID","customAgentId":"CUSTOM_AGENT_ID","requestId":"REQUEST_ID","message":{"messageId":"MESSAGE_ID","name":"conversations/CONVERSATION_ID/messages/MESSAGE_ID","text":"MESSAGE_TEXT","createTime":"2024-01-01T00:00:00.000000Z"},"context":{"userInfo":{"displayName":"USER_NAME"}},"sendTime":"2024-01-01T00:00:00.100000Z"}"#;
    const SIGNATURE: &str =
        "lJcRH8EnfXlgPDh8iaDWvPRg9asKkoYMEPKdLvZTbTYBIfxA7uRGxQ0zc/XWryCjF4e/w+/jvVf9Wz2GF24mEQ==";

    #[test]
    fn goog_signatures_verify_only_the_signed_body_and_token() {
        let body = SIGNED_BODY.as_bytes();
        assert_eq!(body.len(), 390);
        assert!(signature_valid(CLIENT_TOKEN, body, Some(SIGNATURE)));
        assert!(!signature_valid("SJENCPGJESMGUFPZ", body, Some(SIGNATURE)));
        let tampered = SIGNED_BODY.replace("MESSAGE_TEXT", "MESSAGE_TEXt");
        assert!(!signature_valid(
            CLIENT_TOKEN,
            tampered.as_bytes(),
            Some(SIGNATURE)
        ));
        assert!(!signature_valid(CLIENT_TOKEN, body, None));
        assert!(!signature_valid(CLIENT_TOKEN, body, Some("")));
        assert!(!signature_valid("", body, Some(SIGNATURE)));
    }

    #[test]
    fn parses_the_console_verification() {
        assert_eq!(
            parse_webhook(br#"{"clientToken":"SJENCPGJESMGUFPY","secret":"0123456789"}"#),
            Ok(Webhook::Verification {
                client_token: "SJENCPGJESMGUFPY".into(),
                secret: "0123456789".into()
            })
        );
        assert_eq!(
            parse_webhook(br#"{"clientToken":"SJENCPGJESMGUFPY"}"#),
            Err("the webhook's \"secret\" is missing or empty".into())
        );
    }

    #[test]
    fn parses_a_text_message() {
        assert_eq!(
            parse_webhook(SIGNED_BODY.as_bytes()),
            Ok(Webhook::Message {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                message_id: "MESSAGE_ID".into(),
                text: "MESSAGE_TEXT".into(),
                attachments: Vec::new(),
                display_name: Some("USER_NAME".into()),
            })
        );
    }

    #[test]
    fn an_image_link_is_an_attachment() {
        let url = "https://storage.googleapis.com/business-messages-us/936640919331/jzsu6cdguNGsBhmGJGuLs1DS?x-goog-algorithm=GOOG4-RSA-SHA256&x-goog-signature=89dbf7";
        let body = json!({
            "agent": "brands/b1/agents/a1",
            "conversationId": "c1",
            "message": {"messageId": "m1", "text": url},
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Message {
                agent_id: "a1".into(),
                conversation_id: "c1".into(),
                message_id: "m1".into(),
                text: String::new(),
                attachments: vec![Attachment {
                    url: url.into(),
                    content_type: "image/*".into()
                }],
                display_name: None,
            })
        );
        // Words around a link are a text message.
        let body = json!({
            "agent": "brands/b1/agents/a1",
            "conversationId": "c1",
            "message": {"messageId": "m1", "text": format!("see {url}")},
        });
        let Ok(Webhook::Message { attachments, .. }) = parse_webhook(body.to_string().as_bytes())
        else {
            panic!("a message");
        };
        assert!(attachments.is_empty());
    }

    #[test]
    fn a_suggestion_tap_is_a_message_with_its_text() {
        let body = json!({
            "agent": "brands/BRAND_ID/agents/AGENT_ID",
            "conversationId": "CONVERSATION_ID",
            "requestId": "REQUEST_ID",
            "suggestionResponse": {
                "message": "conversations/CONVERSATION_ID/messages/MESSAGE_ID",
                "postbackData": "POSTBACK_DATA",
                "text": "Yes please",
                "suggestionType": "REPLY",
            },
            "context": {"userInfo": {"displayName": "USER_NAME"}},
        });
        let expected = |message_id: &str| {
            Ok(Webhook::Message {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                message_id: message_id.into(),
                text: "Yes please".into(),
                attachments: Vec::new(),
                display_name: Some("USER_NAME".into()),
            })
        };
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            expected("REQUEST_ID")
        );
        let mut without_request = body.clone();
        without_request.as_object_mut().unwrap().remove("requestId");
        assert_eq!(
            parse_webhook(without_request.to_string().as_bytes()),
            expected("MESSAGE_ID")
        );
    }

    #[test]
    fn parses_delivered_and_read_receipts() {
        let body = json!({
            "agent": "brands/BRAND_ID/agents/AGENT_ID",
            "conversationId": "CONVERSATION_ID",
            "receipts": {
                "receipts": [
                    {"message": "conversations/CONVERSATION_ID/messages/out-1", "receiptType": "DELIVERED"},
                    {"message": "conversations/CONVERSATION_ID/messages/out-1-1", "receiptType": "READ"},
                ],
                "createTime": "2024-01-01T00:00:00Z",
            },
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Receipts {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                receipts: vec![
                    Receipt {
                        message_id: "out-1".into(),
                        status: "delivered".into()
                    },
                    Receipt {
                        message_id: "out-1-1".into(),
                        status: "read".into()
                    },
                ],
            })
        );
    }

    #[test]
    fn parses_user_status() {
        let status = |user_status: serde_json::Value| {
            parse_webhook(
                json!({
                    "agent": "brands/b/agents/a",
                    "conversationId": "c",
                    "userStatus": user_status,
                })
                .to_string()
                .as_bytes(),
            )
        };
        assert_eq!(
            status(json!({"requestedLiveAgent": true, "createTime": "t"})),
            Ok(Webhook::UserStatus {
                agent_id: "a".into(),
                conversation_id: "c".into(),
                requested_live_agent: true
            })
        );
        assert_eq!(
            status(json!({"isTyping": true})),
            Ok(Webhook::UserStatus {
                agent_id: "a".into(),
                conversation_id: "c".into(),
                requested_live_agent: false
            })
        );
    }

    #[test]
    fn other_payloads_are_acknowledged() {
        let body = json!({
            "agent": "brands/b/agents/a",
            "conversationId": "c",
            "authenticationResponse": {"code": "x", "redirect_uri": "https://x"},
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Other)
        );
    }

    #[test]
    fn malformed_webhooks_name_the_field() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "the webhook body is not JSON"),
            (b"[1]", "the webhook body is not a JSON object"),
            (
                br#"{"conversationId":"c","message":{}}"#,
                "the webhook's \"agent\" is missing or empty",
            ),
            (
                br#"{"agent":"agents/a","conversationId":"c"}"#,
                "the webhook's \"agent\" is \"agents/a\", not brands/BRAND_ID/agents/AGENT_ID",
            ),
            (
                br#"{"agent":"brands/b/agents/a","message":{}}"#,
                "the webhook's \"conversationId\" is missing or empty",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","message":{"text":"hi"}}"#,
                "the webhook's \"message.messageId\" is missing or empty",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","receipts":{}}"#,
                "the webhook's \"receipts.receipts\" is missing or not a list",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","receipts":{"receipts":[{"message":"conversations/c/messages/m"}]}}"#,
                "the webhook's \"receipts.receipts[0].receiptType\" is missing or empty",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_webhook(body).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    // ---------------------------------------------------------- sending

    const API: &str = "https://businessmessages.googleapis.com/";
    const ACCESS_TOKEN: &str = "ya29.a0Af-secret+token";

    fn outgoing<'a>(
        text: &'a str,
        attachments: &'a [Attachment],
        representative: Representative,
        display_name: Option<&'a str>,
    ) -> Outgoing<'a> {
        Outgoing {
            access_token: ACCESS_TOKEN,
            conversation_id: "conv/1 ü",
            message_id: "out-1",
            text,
            attachments,
            representative,
            display_name,
        }
    }

    fn created(request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let mut message: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let name = format!(
            "conversations/c/messages/{}",
            message["messageId"].as_str().unwrap()
        );
        message["name"] = name.into();
        reply(200, &message.to_string())
    }

    const MESSAGES_URL: &str =
        "https://businessmessages.googleapis.com/v1/conversations/conv%2F1%20%C3%BC/messages";

    fn sent_text(request: &OutboundRequest) -> String {
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, MESSAGES_URL);
        assert_eq!(
            request.headers,
            vec![
                ("Authorization".to_owned(), format!("Bearer {ACCESS_TOKEN}")),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ]
        );
        String::from_utf8(request.body.clone()).unwrap()
    }

    #[test]
    fn sends_a_humans_text_with_a_bearer_token() {
        let http = ScriptedHttp::new(created);
        let message = outgoing("Hi \"there\" 👋", &[], Representative::Human, Some("Ana"));
        assert_eq!(
            block_on(send(&http, API, &message)),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent_text(&sent[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN","displayName":"Ana"},"text":"Hi \"there\" 👋"}"#
        );
    }

    #[test]
    fn sends_a_bots_text_without_a_display_name() {
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("Hello", &[], Representative::Bot, None),
        ));
        assert_eq!(
            sent_text(&http.sent()[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"BOT"},"text":"Hello"}"#
        );
    }

    fn attachments() -> Vec<Attachment> {
        ["https://cdn.example/a.jpg", "https://cdn.example/b.png?x=1"]
            .map(|url| Attachment {
                url: url.into(),
                content_type: "image/jpeg".into(),
            })
            .to_vec()
    }

    #[test]
    fn each_attachment_is_an_image_message_after_the_text() {
        let http = ScriptedHttp::new(created);
        let attachments = attachments();
        let outcome = block_on(send(
            &http,
            API,
            &outgoing("Look", &attachments, Representative::Human, None),
        ));
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let bodies: Vec<String> = http.sent().iter().map(sent_text).collect();
        assert_eq!(
            bodies,
            [
                r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN"},"text":"Look"}"#,
                r#"{"messageId":"out-1-1","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/a.jpg"}}}"#,
                r#"{"messageId":"out-1-2","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/b.png?x=1"}}}"#,
            ]
        );

        // Without text the first image takes the message id.
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("", &attachments, Representative::Bot, None),
        ));
        let ids: Vec<String> = http
            .sent()
            .iter()
            .map(|request| serde_json::from_slice::<serde_json::Value>(&request.body).unwrap())
            .map(|body| body["messageId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["out-1", "out-1-1"]);
    }

    fn google_error(status: u16, google_status: &str, message: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: Vec::new(),
            body: json!({"error": {"code": status, "message": message, "status": google_status}})
                .to_string()
                .into_bytes(),
        }
    }

    #[test]
    fn already_exists_is_a_retry_that_counts_as_sent() {
        let http = ScriptedHttp::new(|_| {
            Ok(google_error(
                409,
                "ALREADY_EXISTS",
                "Message with id out-1 already exists.",
            ))
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        assert_eq!(http.sent().len(), 3);
    }

    #[test]
    fn the_first_failure_stops_the_send() {
        let http = ScriptedHttp::new(|request| {
            if String::from_utf8_lossy(&request.body).contains("\"image\"") {
                Ok(google_error(
                    400,
                    "FAILED_PRECONDITION",
                    "The device cannot render this message.",
                ))
            } else {
                created(request)
            }
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Rejected {
                status: 400,
                code: None,
                message: "The device cannot render this message. (FAILED_PRECONDITION)".into()
            }
        );
        assert_eq!(http.sent().len(), 2);
    }

    fn send_answered(response: OutboundResponse) -> SendOutcome {
        let http = ScriptedHttp::new(move |_| Ok(response.clone()));
        block_on(send(
            &http,
            API,
            &outgoing("Hi", &[], Representative::Bot, None),
        ))
    }

    #[test]
    fn rate_limits_and_refusals_carry_googles_words() {
        let mut limited = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.");
        limited.headers = vec![("retry-after".into(), "12".into())];
        assert_eq!(
            send_answered(limited),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(12),
                message: "Quota exceeded. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(403, "RESOURCE_EXHAUSTED", "Per-user limit.")),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "Per-user limit. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials."
            )),
            SendOutcome::Rejected {
                status: 401,
                code: None,
                message: "Request had invalid authentication credentials. (UNAUTHENTICATED)".into()
            }
        );
        assert_eq!(
            send_answered(OutboundResponse {
                status: 502,
                headers: Vec::new(),
                body: b"<html>Bad Gateway</html>".to_vec(),
            }),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
    }

    #[test]
    fn send_messages_never_carry_the_access_token() {
        assert_eq!(
            send_answered(google_error(
                403,
                "PERMISSION_DENIED",
                &format!("token {ACCESS_TOKEN} may not")
            )),
            SendOutcome::Rejected {
                status: 403,
                code: None,
                message: "token [redacted] may not (PERMISSION_DENIED)".into()
            }
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("refused {:?}", request.headers[0].1)))
        });
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Hi", &[], Representative::Bot, None)
            )),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: refused \"Bearer [redacted]\"".into()
            }
        );
    }
}
