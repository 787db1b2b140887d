//! TeleSign SMS (providers.md 2): "TSA" request signing, the credential
//! probe, sending, and the callbacks TeleSign posts back.
//!
//! The digest scheme rather than Basic, so the API key itself never travels:
//! each request carries an HMAC-SHA256 over its method, content type, date,
//! nonce, body and path, keyed with the base64-decoded API key.
//!
//! TeleSign has no "who am I" endpoint, so the probe asks for the status of a
//! message that cannot exist: TeleSign's auth layer answers 401 for bad
//! credentials before it looks the message up, and anything past it (404
//! "Transaction not found.") proves them good without sending or billing.
//!
//! Delivery reports and inbound (MO) messages arrive on one callback URL,
//! signed with the same key over the raw body only. TeleSign's docs leave
//! the header's exact shape open, so the signature is read from either
//! `TSA {customer_id}:{signature}` or a bare signature. Its status codes are
//! numbers grouped by meaning rather than by range, so [`status_name`] folds
//! them into the three states the rest of the gateway tracks.

mod credentials;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use send::*;
pub use settings::{Input, Settings, TelesignNumber, View};
pub use webhook::*;

use super::{endpoint, http_status, json, retry_after, scrub, text, verdict_for};
use super::{Checked, Event, Provider, ReplyWindow, Seam};
use super::{CredentialCheck, DeliveryStatus, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{Request, Response};
use crate::channel::Channel;
use crate::config::Ctx;
use crate::encoding::form_encode;
use crate::error::Error;
use crate::input::Object;
use crate::message::Inbound;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use crate::time::http_date;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::fmt;

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Telesign;
    const DISPLAY_NAME: &'static str = "TeleSign";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNELS: &'static [Channel] = &[Channel::Sms];
    const API_BASES: &'static [(&'static str, &'static str)] = &[("telesign", "telesign_api_base")];
    const ADDRESS_KIND: &'static str = "one of the account's numbers";

    /// SMS has no window: a text may go out at any time.
    fn reply_window(_channel: Channel) -> ReplyWindow {
        ReplyWindow::NONE
    }

    /// Where a [`status_name`] stands, so a late report cannot move a message
    /// back: pending < delivered = failed. Both are final, so neither
    /// overwrites the other; unknown names never win.
    fn delivery_status(status: &str) -> DeliveryStatus {
        match status {
            "pending" => DeliveryStatus::Pending,
            "delivered" | "failed" => DeliveryStatus::Final,
            _ => DeliveryStatus::Unknown,
        }
    }

    fn read(_ctx: &Ctx, input: &Object, _existing: Option<&Self>) -> Result<Self, Error> {
        Settings::read(input)
    }

    type Input = Input;
    type View = View;

    fn input(&self) -> Input {
        Settings::input(self)
    }

    fn view(&self, callback_url: &str) -> View {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.api_key
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
        let api_base = super::api_base(ctx.ports.variables, "telesign_api_base")?;
        let check = check_credentials(
            ctx.ports.http,
            &api_base,
            &self.customer_id,
            &self.api_key,
            ctx.ports.clock.now_millis(),
            &ctx.ports.random.uuid(),
        )
        .await;
        Ok(check.into())
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, Error> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = ();
    const SIGNATURE_HEADER: &'static str = "Authorization";

    fn unverified(_request: &Request) {}

    fn signed(
        _: &(),
        request: &Request,
        _ports: &Ports<'_>,
        signer: &crate::providers::webhook::Signer,
    ) -> bool {
        webhook::signed(request, &signer.secret)
    }

    fn events(_: (), request: &Request) -> Result<Vec<Event>, Error> {
        webhook::events(request)
    }

    fn complete(inbound: &mut Inbound, account_id: &str, settings: &Self) -> Result<(), Error> {
        webhook::complete(inbound, account_id, settings)
    }

    fn accepted() -> Response {
        Response::json(200, &json!({"received": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    pub(super) const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
    pub(super) const SDK_KEY: &str =
        "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    pub(super) const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";
    pub(super) const NONCE: &str = "A1592C6F-E384-4CDB-BC42-C3AB970369E9";
    pub(super) const API_KEY: &str = "VGVzdCBLZXk=";

    pub(super) fn sign(key: &str, method: &str, content_type: &str, body: &str) -> String {
        authorization(
            CUSTOMER_ID,
            key,
            method,
            content_type,
            DATE,
            NONCE,
            body,
            "/v1/resource",
        )
        .unwrap()
    }

    #[test]
    fn signs_the_python_and_java_sdk_vectors() {
        assert_eq!(
            sign(SDK_KEY, "POST", FORM, "test=param"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q="
        );
        assert_eq!(
            sign(SDK_KEY, "POST", FORM, "test=%CF%BF"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:h8d4I0RTxErbxYXuzCOtNqb/f0w3Ck8e5SEkGNj01+8="
        );
        assert_eq!(
            sign(SDK_KEY, "GET", "", ""),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:aUm7I+9GKl3ww7PNeeJntCT0iS7b+EmRKEE4LnRzChQ="
        );
    }

    #[test]
    fn signs_the_node_sdk_vectors() {
        assert_eq!(
            sign(API_KEY, "POST", FORM, "test=param"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:vXw/XzywdhgfEG2/zWLaFp7oXmjLB8iJDMndvDbZMjk="
        );
        assert_eq!(
            authorization(
                "yourCustomerId",
                "yourApiKey",
                "POST",
                "application/json",
                DATE,
                NONCE,
                r#"{"key":"value"}"#,
                "/v1/resource"
            )
            .unwrap(),
            "TSA yourCustomerId:q5n15bclH8MY7OmbZnuVxwb9uivpmafJAlLcFnN/U8A="
        );
    }

    #[test]
    fn decodes_keys_as_leniently_as_the_sdks() {
        assert_eq!(
            decode_api_key("yourApiKey").unwrap(),
            [0xca, 0x8b, 0xab, 0x02, 0x98, 0x8a, 0x7b]
        );
        let sdk = decode_api_key(SDK_KEY).unwrap();
        assert_eq!(sdk.len(), 61);
        assert_eq!(sdk[..4], [0x11, 0x70, 0x0c, 0x3c]);
        assert_eq!(decode_api_key("VGVzdCBLZXk").unwrap(), b"Test Key");
        assert_eq!(decode_api_key(""), Err(InvalidApiKey));
        assert_eq!(decode_api_key("-----"), Err(InvalidApiKey));
        assert_eq!(decode_api_key("abcde"), Err(InvalidApiKey));
    }

    pub(super) fn check(http: &ScriptedHttp, key: &str) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://rest-api.telesign.com/",
            CUSTOMER_ID,
            key,
            1_481_739_612_000,
            NONCE,
        ))
    }

    #[test]
    fn the_probe_is_a_signed_status_request_for_an_unknown_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                404,
                r#"{"reference_id":"00000000000000000000000000000000","status":{"code":10009,"description":"Transaction not found."},"errors":[]}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(
            result,
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(404),
                message: "TeleSign accepted the customer ID and API key".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        let resource = "/v1/messaging/00000000000000000000000000000000";
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            format!("https://rest-api.telesign.com{resource}")
        );
        let expected = authorization(CUSTOMER_ID, API_KEY, "GET", "", DATE, NONCE, "", resource);
        assert_eq!(
            sent[0].headers,
            vec![
                ("Authorization".to_owned(), expected.unwrap()),
                ("Date".to_owned(), DATE.to_owned()),
                ("x-ts-auth-method".to_owned(), "HMAC-SHA256".to_owned()),
                ("x-ts-nonce".to_owned(), NONCE.to_owned()),
            ]
        );
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn signs_the_path_a_base_url_prefix_adds() {
        let http = ScriptedHttp::new(|_| reply(404, "{}"));
        block_on(check_credentials(
            &http,
            "http://127.0.0.1:9/ts",
            "c",
            API_KEY,
            0,
            "n",
        ));
        let sent = http.sent();
        let date = "Thu, 01 Jan 1970 00:00:00 GMT";
        let resource = "/ts/v1/messaging/00000000000000000000000000000000";
        let expected = authorization("c", API_KEY, "GET", "", date, "n", "", resource).unwrap();
        assert_eq!(sent[0].url, format!("http://127.0.0.1:9{resource}"));
        assert_eq!(sent[0].headers[0].1, expected);
    }

    #[test]
    fn a_401_is_invalid_with_telesigns_reason() {
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"status":{"code":501,"description":"Not authorized"},"errors":[{"code":-30006,"description":"Invalid Signature."}]}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.provider_status, Some(401));
        assert_eq!(result.message, "Not authorized: Invalid Signature.");
    }

    #[test]
    fn other_client_errors_passed_the_auth_layer() {
        let http = ScriptedHttp::new(|_| reply(400, r#"{"status":{"code":11000}}"#));
        assert_eq!(check(&http, API_KEY).verdict, Verdict::Valid);
    }

    #[test]
    fn server_errors_and_rate_limits_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(503, "<html>down</html>"));
        let result = check(&http, API_KEY);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                429,
                r#"{"status":{"code":10000,"description":"Rate limit exceeded"}}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(
            (result.verdict, result.message.as_str()),
            (Verdict::Unreachable, "Rate limit exceeded")
        );
    }

    #[test]
    fn a_network_error_is_unreachable() {
        let http = ScriptedHttp::new(|_| Err(OutboundError("connection refused".into())));
        let result = check(&http, API_KEY);
        assert_eq!(
            result,
            CredentialCheck {
                verdict: Verdict::Unreachable,
                provider_status: None,
                message: "outbound HTTP failed: connection refused".into(),
            }
        );
    }

    #[test]
    fn a_key_that_is_not_base64_is_invalid_without_asking() {
        let http = ScriptedHttp::default();
        let result = check(&http, "%%%%");
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.provider_status, None);
        assert!(result.message.contains("not base64"), "{}", result.message);
        assert!(http.sent().is_empty());
    }
}
