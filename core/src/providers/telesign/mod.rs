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
pub use settings::{Settings, TelesignNumber};
pub use webhook::*;

use super::{endpoint, http_status, json, retry_after, scrub, text, verdict_for};
use super::{Checked, Event, Provider, ReplyWindow, Seam};
use super::{CredentialCheck, DeliveryStatus, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{ApiError, Request, Response};
use crate::channel::Channel;
use crate::config::Ctx;
use crate::conversations::ingest::Inbound;
use crate::encoding::form_encode;
use crate::input::Object;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use crate::time::http_date;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::fmt;

/// SMS has no window: a text may go out at any time.
pub fn reply_window(_channel: Channel) -> ReplyWindow {
    ReplyWindow::NONE
}

/// Where a [`status_name`] stands, so a late report cannot move a message
/// back: pending < delivered = failed. Both are final, so neither
/// overwrites the other; unknown names never win.
pub fn delivery_status(status: &str) -> DeliveryStatus {
    match status {
        "pending" => DeliveryStatus::Pending,
        "delivered" | "failed" => DeliveryStatus::Final,
        _ => DeliveryStatus::Unknown,
    }
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Telesign;
    const DISPLAY_NAME: &'static str = "TeleSign";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNEL: Channel = Channel::Sms;
    const API_BASES: &'static [(&'static str, &'static str)] = &[("telesign", "telesign_api_base")];
    const ADDRESS_KIND: &'static str = "one of the account's numbers";

    fn reply_window(channel: Channel) -> ReplyWindow {
        reply_window(channel)
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        delivery_status(word)
    }

    fn read(_ctx: &Ctx, input: &Object, _existing: Option<&Self>) -> Result<Self, ApiError> {
        Settings::read(input)
    }

    fn view(&self, callback_url: &str) -> Value {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.api_key
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, ApiError> {
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
    ) -> Result<SendOutcome, ApiError> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = ();
    const SIGNATURE_HEADER: &'static str = "Authorization";

    fn unverified(_request: &Request) {}

    fn signed(_: &(), request: &Request, _ports: &Ports<'_>, secret: &str) -> bool {
        webhook::signed(request, secret)
    }

    fn events(_: (), request: &Request) -> Result<Vec<Event>, ApiError> {
        webhook::events(request)
    }

    fn complete(inbound: &mut Inbound, account_id: &str, settings: &Self) -> Result<(), ApiError> {
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

    const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
    const SDK_KEY: &str =
        "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";
    const NONCE: &str = "A1592C6F-E384-4CDB-BC42-C3AB970369E9";
    const API_KEY: &str = "VGVzdCBLZXk=";

    fn sign(key: &str, method: &str, content_type: &str, body: &str) -> String {
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

    fn check(http: &ScriptedHttp, key: &str) -> CredentialCheck {
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

    // ------------------------------------------------------------ sending

    const SENT: &str = r#"{"reference_id":"B56259E45884010488343BAA15FB0002","external_id":"msg-1","status":{"code":290,"description":"Message in progress","updated_on":"2016-12-14T18:20:12.000000Z"},"errors":[]}"#;

    fn sms(callback_url: Option<&'static str>) -> Sms<'static> {
        Sms {
            customer_id: CUSTOMER_ID,
            api_key: API_KEY,
            phone_number: "15551234567",
            sender_id: "15557654321",
            message: "1+1=2 & ünïcode 👋",
            external_id: Some("msg-1"),
            callback_url,
        }
    }

    fn send(http: &ScriptedHttp, sms: &Sms<'_>) -> SendOutcome {
        block_on(send_sms(
            http,
            "https://rest-ww.telesign.com/",
            sms,
            1_481_739_612_000,
            NONCE,
        ))
    }

    fn answered(status: u16, body: &str) -> ScriptedHttp {
        let body = body.to_owned();
        ScriptedHttp::new(move |_| reply(status, &body))
    }

    #[test]
    fn sends_a_tsa_signed_form_and_reads_the_reference_id() {
        let http = answered(200, SENT);
        let outcome = send(&http, &sms(Some("https://gw.example/webhooks/telesign")));
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "B56259E45884010488343BAA15FB0002".into(),
                status: "pending".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(sent[0].url, "https://rest-ww.telesign.com/v1/messaging");
        let body = "phone_number=15551234567\
            &message=1%2B1%3D2%20%26%20%C3%BCn%C3%AFcode%20%F0%9F%91%8B\
            &message_type=ARN&sender_id=15557654321&external_id=msg-1\
            &callback_url=https%3A%2F%2Fgw.example%2Fwebhooks%2Ftelesign";
        assert_eq!(String::from_utf8(sent[0].body.clone()).unwrap(), body);
        let expected = authorization(
            CUSTOMER_ID,
            API_KEY,
            "POST",
            FORM,
            DATE,
            NONCE,
            body,
            "/v1/messaging",
        );
        assert_eq!(
            sent[0].headers,
            vec![
                ("Authorization".to_owned(), expected.unwrap()),
                ("Date".to_owned(), DATE.to_owned()),
                ("Content-Type".to_owned(), FORM.to_owned()),
                ("x-ts-auth-method".to_owned(), "HMAC-SHA256".to_owned()),
                ("x-ts-nonce".to_owned(), NONCE.to_owned()),
            ]
        );
    }

    #[test]
    fn leaves_out_absent_optional_fields_and_signs_a_prefixed_path() {
        let http = answered(200, SENT);
        let message = Sms {
            external_id: None,
            ..sms(None)
        };
        block_on(send_sms(&http, "http://127.0.0.1:9/ts", &message, 0, "n"));
        let sent = http.sent();
        let body = "phone_number=15551234567\
            &message=1%2B1%3D2%20%26%20%C3%BCn%C3%AFcode%20%F0%9F%91%8B\
            &message_type=ARN&sender_id=15557654321";
        assert_eq!(String::from_utf8(sent[0].body.clone()).unwrap(), body);
        assert_eq!(sent[0].url, "http://127.0.0.1:9/ts/v1/messaging");
        let date = "Thu, 01 Jan 1970 00:00:00 GMT";
        let expected = authorization(
            CUSTOMER_ID,
            API_KEY,
            "POST",
            FORM,
            date,
            "n",
            body,
            "/ts/v1/messaging",
        );
        assert_eq!(sent[0].headers[0].1, expected.unwrap());
    }

    #[test]
    fn the_first_status_comes_from_telesigns_status_code() {
        let http = answered(201, r#"{"reference_id":"R1","status":{"code":"203"}}"#);
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Sent {
                id: "R1".into(),
                status: "pending".into()
            }
        );
        let http = answered(200, r#"{"reference_id":"R2","status":{"code":10030}}"#);
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Sent {
                id: "R2".into(),
                status: "failed".into()
            }
        );
        let http = answered(202, r#"{"reference_id":"R3"}"#);
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Sent {
                id: "R3".into(),
                status: "pending".into()
            }
        );
        let http = answered(200, r#"{"status":{"code":290}}"#);
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 200,
                code: None,
                message: "TeleSign answered HTTP 200 without a reference_id".into()
            }
        );
    }

    #[test]
    fn a_429_is_rate_limited_with_retry_after() {
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "12".into())],
                body:
                    br#"{"status":{"code":10019,"description":"Rate limit exceeded."},"errors":[]}"#
                        .to_vec(),
            })
        });
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(12),
                message: "Rate limit exceeded.".into()
            }
        );
        let http = answered(429, "");
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "HTTP 429".into()
            }
        );
    }

    #[test]
    fn refusals_carry_telesigns_error_code_and_description() {
        let http = answered(
            400,
            r#"{"status":{"code":11000,"description":"Invalid value for parameter phone_number."},"errors":[{"code":11000,"description":"Invalid value for parameter phone_number."}]}"#,
        );
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 400,
                code: Some(11000),
                message: "Invalid value for parameter phone_number.".into()
            }
        );
        let http = answered(
            401,
            r#"{"status":{"code":501,"description":"Not authorized"},"errors":[{"code":-30006,"description":"Invalid Signature."},{"code":-30012,"description":"Nonce has been used recently."}]}"#,
        );
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 401,
                code: Some(-30006),
                message: "Invalid Signature.; Nonce has been used recently.".into()
            }
        );
        let http = answered(
            500,
            r#"{"status":{"code":500,"description":"Transaction not attempted"},"errors":[]}"#,
        );
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 500,
                code: Some(500),
                message: "Transaction not attempted".into()
            }
        );
        let http = answered(502, "<html>Bad Gateway</html>");
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
    }

    #[test]
    fn outcome_messages_never_carry_the_api_key() {
        let http = answered(
            401,
            &format!(
                r#"{{"errors":[{{"code":-30015,"description":"Invalid API key {API_KEY}"}}]}}"#
            ),
        );
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Rejected {
                status: 401,
                code: Some(-30015),
                message: "Invalid API key [redacted]".into()
            }
        );
        let http = ScriptedHttp::new(|_| Err(OutboundError(format!("{API_KEY} refused"))));
        assert_eq!(
            send(&http, &sms(None)),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: [redacted] refused".into()
            }
        );
    }

    #[test]
    fn a_key_that_is_not_base64_is_refused_without_sending() {
        let http = ScriptedHttp::default();
        let message = Sms {
            api_key: "%%%%",
            ..sms(None)
        };
        let outcome = send(&http, &message);
        assert!(
            matches!(
                &outcome,
                SendOutcome::Rejected { status: 0, code: None, message }
                    if message.contains("copy it again from the TeleSign portal")
            ),
            "{outcome:?}"
        );
        assert!(http.sent().is_empty());
    }

    // ---------------------------------------------------------- callbacks

    const MO_BODY: &str = r#"{"reference_id":"0123456789ABCDEF0123456789ABCDEF","status":{"code":1500,"description":"Delivered","updated_on":"2023-10-31T14:47:10.490130Z"},"user_response":{"sender_id":"4442","iso_country_code":"US","phone_number":"11234567890","mo_message":"Hello"},"sub_resource":"mo_sms","errors":[],"submit_timestamp":"2023-10-31T14:47:10.154000Z"}"#;
    const MO_SIGNATURE: &str = "XlqwDsG27wwBi8vZj/3AQKvCvfzLxCNcNm1pzLPW0FQ=";
    const SDK_SIGNATURE: &str = "B97g3N9lPdVaptvifxRau7bzVAC5hhRBZ6HKXABN744=";

    #[test]
    fn callback_signatures_match_the_sdk_and_mo_vectors_in_every_header_form() {
        let sdk_body = b"{'test': 123}";
        let mo_body = MO_BODY.as_bytes();
        for (key, body, signature) in [
            (SDK_KEY, &sdk_body[..], SDK_SIGNATURE),
            (API_KEY, mo_body, MO_SIGNATURE),
        ] {
            for header in [
                format!("TSA {CUSTOMER_ID}:{signature}"),
                format!("TSA {signature}"),
                format!(" {signature} "),
                signature.to_owned(),
            ] {
                assert!(
                    callback_signature_valid(key, body, Some(&header)),
                    "{header}"
                );
            }
        }
    }

    #[test]
    fn callback_signatures_refuse_other_keys_bodies_and_headers() {
        let body = MO_BODY.as_bytes();
        let header = format!("TSA cust:{MO_SIGNATURE}");
        assert!(!callback_signature_valid(SDK_KEY, body, Some(&header)));
        assert!(!callback_signature_valid(
            API_KEY,
            MO_BODY.replace("Hello", "Hellp").as_bytes(),
            Some(&header)
        ));
        assert!(!callback_signature_valid(API_KEY, body, None));
        for garbage in [
            "",
            "TSA ",
            "TSA cust:",
            "not base64!",
            "AAAA",
            "TSA cust:AAAA",
        ] {
            assert!(
                !callback_signature_valid(API_KEY, body, Some(garbage)),
                "{garbage}"
            );
        }
        assert!(!callback_signature_valid("%%%%", body, Some(&header)));
    }

    #[test]
    fn parses_an_inbound_sms() {
        assert_eq!(
            parse_callback(MO_BODY.as_bytes()),
            Ok(Callback::Message(MoSms {
                reference_id: "0123456789ABCDEF0123456789ABCDEF".into(),
                from: "+11234567890".into(),
                to: "4442".into(),
                text: "Hello".into(),
            }))
        );
        // No sub_resource, a leading +, no sender_id and an empty message.
        let body = r#"{"reference_id":"R","user_response":{"phone_number":"+4915112345678","mo_message":""}}"#;
        assert_eq!(
            parse_callback(body.as_bytes()),
            Ok(Callback::Message(MoSms {
                reference_id: "R".into(),
                from: "+4915112345678".into(),
                to: String::new(),
                text: String::new(),
            }))
        );
    }

    #[test]
    fn an_incomplete_inbound_sms_names_the_missing_field() {
        let error = |body: &str| parse_callback(body.as_bytes()).unwrap_err();
        assert_eq!(
            error(r#"{"reference_id":"R","sub_resource":"mo_sms"}"#),
            "the inbound SMS has no user_response.phone_number"
        );
        assert_eq!(
            error(r#"{"reference_id":"R","user_response":{"phone_number":"1555"}}"#),
            "the inbound SMS has no user_response.mo_message"
        );
        assert_eq!(
            error(
                r#"{"reference_id":"R","user_response":{"phone_number":"1-555","mo_message":"x"}}"#
            ),
            r#"user_response.phone_number must be digits with the country code, not "1-555""#
        );
        assert_eq!(
            error(r#"{"sub_resource":"mo_sms","user_response":{}}"#),
            "the TeleSign callback has no reference_id"
        );
    }

    #[test]
    fn parses_a_delivery_report() {
        let body = r#"{"reference_id":"B56259E45884010488343BAA15FB0002","status":{"code":200,"description":"Delivered to handset","updated_on":"2016-10-21T14:05:36.181346Z"},"external_id":"CustomExternalID7349"}"#;
        assert_eq!(
            parse_callback(body.as_bytes()),
            Ok(Callback::Status(DeliveryReport {
                reference_id: "B56259E45884010488343BAA15FB0002".into(),
                code: 200,
                description: "Delivered to handset".into(),
            }))
        );
        let body = r#"{"reference_id":"R","status":{"code":"207"}}"#;
        assert_eq!(
            parse_callback(body.as_bytes()),
            Ok(Callback::Status(DeliveryReport {
                reference_id: "R".into(),
                code: 207,
                description: String::new(),
            }))
        );
    }

    #[test]
    fn an_unreadable_delivery_report_says_why() {
        let error = |body: &str| parse_callback(body.as_bytes()).unwrap_err();
        assert_eq!(
            error(r#"{"reference_id":"R","status":{"description":"x"}}"#),
            "the delivery report has no numeric status.code"
        );
        assert_eq!(
            error(r#"{"reference_id":"R","status":{"code":"soon"}}"#),
            "the delivery report has no numeric status.code"
        );
        assert_eq!(
            error(r#"{"status":{"code":200}}"#),
            "the TeleSign callback has no reference_id"
        );
        assert_eq!(error("[]"), "the TeleSign callback is not a JSON object");
        assert!(error("reference_id=R").starts_with("the TeleSign callback is not JSON: "));
    }

    #[test]
    fn status_codes_fold_into_three_states() {
        for code in [200, 201] {
            assert_eq!(status_name(code), "delivered", "{code}");
        }
        for code in [203, 290, 292, 295, 250, 251, 599] {
            assert_eq!(status_name(code), "pending", "{code}");
        }
        for code in [
            207, 210, 211, 220, 221, 230, 286, 500, 502, 503, 1500, 10030, 11000, -1,
        ] {
            assert_eq!(status_name(code), "failed", "{code}");
        }
    }

    #[test]
    fn final_states_outrank_pending_and_not_each_other() {
        assert!(delivery_status("pending") < delivery_status("delivered"));
        assert_eq!(delivery_status("delivered"), delivery_status("failed"));
        assert_eq!(delivery_status("read"), DeliveryStatus::Unknown);
        assert!(delivery_status("") < delivery_status("pending"));
    }
}
