//! Twilio Programmable Messaging (WhatsApp and SMS): everything the gateway
//! exchanges with Twilio, in one place because it all hangs on one account's
//! SID and auth token (providers.md 1).
//!
//! - The credential check reads the account resource: it is free, needs the
//!   same Basic credentials as sending, answers 401 for a wrong token and 404
//!   for a SID the token does not belong to, and its `status` tells a
//!   suspended or closed account (whose credentials authenticate but cannot
//!   send) from an active one.
//! - Webhooks are signed with the auth token over the URL Twilio was
//!   configured with, which behind a proxy or port mapping is not always the
//!   URL the request arrived on; so validation tries the URL with and without
//!   its port as Twilio's SDKs do, and signs the string verbatim (no case or
//!   percent normalisation), since that is what Twilio signed.
//! - Callbacks are parsed into typed messages and status updates here, so the
//!   rest of the core never sees Twilio's parameter names. Status callbacks
//!   arrive out of order, so [`delivery_status`] gives the order a message's
//!   status may only move forward in.
//! - Sending maps Twilio's answers onto the decisions the caller has to make:
//!   done, needs a template (outside WhatsApp's 24-hour window), retry later
//!   (rate limited, or no answer at all), or refused for good. Every message
//!   is scrubbed of the auth token, which hosts and Twilio may echo.

mod credentials;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use send::*;
pub use settings::{Settings, WhatsAppNumber};
pub use webhook::*;

use super::{basic_auth, endpoint, http_status, json, scrub, text, verdict_for};
use super::{retry_after, CredentialCheck, SendOutcome, Verdict};
use super::{Checked, DeliveryStatus, Event, Provider, ReplyWindow, Seam};
use crate::api::Method;
use crate::api::{ApiError, Request, Response};
use crate::auth::constant_time_eq;
use crate::channel::Channel;
use crate::config::Ctx;
use crate::encoding::form_pairs;
use crate::encoding::{form_encode, percent_encode};
use crate::input::Object;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

/// WhatsApp takes free-form messages for 24 hours after the customer's
/// last message; after that only approved templates.
pub fn reply_window(_channel: Channel) -> ReplyWindow {
    ReplyWindow {
        free_form_hours: Some(24),
        human_agent_hours: None,
        refused_by: "WhatsApp refused the message: ",
        closed: "the 24-hour window for free-form WhatsApp messages closed at {closed_at}, 24 hours after the customer's last message; send an approved template instead ({\"template_id\": …}) or wait for the customer to write",
    }
}

/// Where `status` stands in a sent message's life (providers.md 1.2), so a
/// late callback cannot move it back: apply an update only if it is
/// further along than the stored one. `accepted` < `scheduled` < `queued` <
/// `sending` < `sent` < `partially_delivered` < `delivered` < `read` <
/// `failed` = `undelivered` = `canceled` (terminal). Unknown statuses and
/// the inbound-only `receiving`/`received` are unknown: they never win.
pub fn delivery_status(status: &str) -> DeliveryStatus {
    match status {
        "accepted" => DeliveryStatus::Accepted,
        "scheduled" => DeliveryStatus::Scheduled,
        "queued" => DeliveryStatus::Queued,
        "sending" => DeliveryStatus::Sending,
        "sent" => DeliveryStatus::Sent,
        "partially_delivered" => DeliveryStatus::PartiallyDelivered,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" | "undelivered" | "canceled" => DeliveryStatus::Final,
        _ => DeliveryStatus::Unknown,
    }
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Twilio;
    const DISPLAY_NAME: &'static str = "Twilio";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNEL: Channel = Channel::Whatsapp;
    const API_BASES: &'static [(&'static str, &'static str)] = &[("twilio", "twilio_api_base")];
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
        &self.auth_token
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, ApiError> {
        let api_base = super::api_base(ctx.ports.variables, "twilio_api_base")?;
        let check = check_credentials(
            ctx.ports.http,
            &api_base,
            &self.account_sid,
            &self.auth_token,
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

    type Unverified = Vec<(String, String)>;
    const SIGNATURE_HEADER: &'static str = "X-Twilio-Signature";

    fn unverified(request: &Request) -> Self::Unverified {
        form_pairs(&String::from_utf8_lossy(&request.body))
    }

    fn signed(
        params: &Self::Unverified,
        request: &Request,
        ports: &Ports<'_>,
        secret: &str,
    ) -> bool {
        webhook::signed(params, request, ports, secret)
    }

    fn events(params: Self::Unverified, _request: &Request) -> Result<Vec<Event>, ApiError> {
        webhook::events(&params)
    }

    fn accepted() -> Response {
        webhook::twiml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::form_pairs;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const SID: &str = "AC00000000000000000000000000000000";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn check(http: &ScriptedHttp) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://api.twilio.com/",
            SID,
            TOKEN,
        ))
    }

    #[test]
    fn reads_the_account_with_basic_auth() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"sid":"AC00000000000000000000000000000000","friendly_name":"Acme","status":"active"}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "Twilio account \"Acme\" is active".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000.json"
        );
        assert_eq!(
            sent[0].headers,
            vec![(
                "Authorization".to_owned(),
                "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==".to_owned()
            )]
        );
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn a_suspended_account_is_invalid() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"friendly_name":"Acme","status":"suspended"}"#));
        let result = check(&http);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Twilio account \"Acme\" is suspended: reactivate it in the Twilio console"
        );
    }

    #[test]
    fn a_wrong_token_or_sid_is_invalid_with_twilios_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(401),
                message: "Authenticate (Twilio error 20003)".into(),
            }
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                404,
                r#"{"code":20404,"message":"The requested resource /2010-04-01/Accounts/AC0.json was not found","status":404}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(404))
        );
        assert!(result
            .message
            .ends_with("was not found (Twilio error 20404)"));
    }

    #[test]
    fn server_errors_rate_limits_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(503, ""));
        let result = check(&http);
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
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.message.as_str()),
            (
                Verdict::Unreachable,
                "Too Many Requests (Twilio error 20429)"
            )
        );
        let http = ScriptedHttp::new(|_| Err(OutboundError("dns lookup failed".into())));
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Unreachable,
                provider_status: None,
                message: "outbound HTTP failed: dns lookup failed".into(),
            }
        );
    }

    #[test]
    fn an_echoed_token_is_scrubbed() {
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("{} {TOKEN} refused", request.url)))
        });
        let result = check(&http);
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(result.message.contains("[redacted] refused"));
    }

    // ------------------------------------------------------- signatures

    const VECTOR_TOKEN: &str = "12345";
    const BASE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The SDKs' common parameters (providers.md 1.3).
    fn sdk_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn signs_every_official_sdk_vector() {
        let vectors = [
            (BASE_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
            (
                "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "CYn1h0gLBdNxDGkKJg6hYohgeD8=",
            ),
            (
                "https://MyCompany.com/myapp.php?foo=1&bar=2",
                "g9IN/x4Cft2g517EjYvEvM/W7LU=",
            ),
            (
                "https://MyCompany.com:1234/myapp.php?foo=1&bar=2",
                "PCqOZm8cnu/L6+u5i5fuEd+Iac4=",
            ),
            (
                "http://MyCompany.com/myapp.php?foo=1&bar=2",
                "XY7AlKOKL6im4yWyX84gldUrtis=",
            ),
            (
                "http://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
                "PJ08CxXr7KLPjEQCTc8LkUSMwSM=",
            ),
            (
                "HTTP://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
                "hy/l8pca+LFms4cvRdv8uiP6NGc=",
            ),
            (
                "http://Username:Password@MyCompany.com/myapp.php?foo=1&bar=2",
                "SkTSKyDJH9kUlhItI0slbgZ1UsI=",
            ),
            (
                "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
                "CukzLTc1tT5dXEDIHm/tKBanW10=",
            ),
            (
                "https://user@mycompany.com/myapp.php?foo=1&bar=2",
                "2YRLlVAflCqxaNicjMpJcSTgzSs=",
            ),
            (
                "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
                "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
            ),
        ];
        let params = sdk_params();
        for (url, expected) in vectors {
            assert_eq!(signature(VECTOR_TOKEN, url, &params), expected, "{url}");
            assert!(
                signature_valid(VECTOR_TOKEN, url, &params, expected),
                "{url}"
            );
        }
    }

    #[test]
    fn signs_the_duplicate_keys_vector() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        let expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(signature(VECTOR_TOKEN, BASE_URL, &params), expected);
        // The order the parameters arrived in does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(signature_valid(VECTOR_TOKEN, BASE_URL, &reversed, expected));
    }

    #[test]
    fn signs_the_json_body_vectors_over_the_url_alone() {
        use sha2::{Digest, Sha256};
        let hash = crate::encoding::hex(&Sha256::digest(
            br#"{"property": "value", "boolean": true}"#,
        ));
        assert_eq!(
            hash,
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            signature(VECTOR_TOKEN, &format!("{BASE_URL}&bodySHA256={hash}"), &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        assert_eq!(
            signature(
                VECTOR_TOKEN,
                &format!("https://mycompany.com/myapp.php?bodySHA256={hash}"),
                &[]
            ),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        );
    }

    #[test]
    fn signs_the_documentation_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature(VECTOR_TOKEN, BASE_URL, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    const WHATSAPP_URL: &str = "https://gateway.example.com/webhooks/twilio/whatsapp";
    const WHATSAPP_BODY: &str = "SmsMessageSid=SM11111111111111111111111111111111&NumMedia=0&ProfileName=Jane+Doe&MessageType=text&SmsSid=SM11111111111111111111111111111111&WaId=15551234567&SmsStatus=received&Body=Hello+%F0%9F%91%8B&To=whatsapp%3A%2B14155238886&NumSegments=1&ReferralNumMedia=0&MessageSid=SM11111111111111111111111111111111&AccountSid=AC00000000000000000000000000000000&From=whatsapp%3A%2B15551234567&ApiVersion=2010-04-01";

    #[test]
    fn signs_the_whatsapp_vector_from_its_raw_body() {
        let params = form_pairs(WHATSAPP_BODY);
        assert_eq!(
            signature(VECTOR_TOKEN, WHATSAPP_URL, &params),
            "q3te/R1PDnimtjK/OpI0vuItbbY="
        );
        assert!(signature_valid(
            VECTOR_TOKEN,
            WHATSAPP_URL,
            &params,
            "q3te/R1PDnimtjK/OpI0vuItbbY="
        ));
    }

    #[test]
    fn accepts_the_url_with_or_without_its_port() {
        let params = sdk_params();
        // Arrived on :1234, signed without a port.
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Arrived without a port, signed with the default one.
        assert!(signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(signature_valid(
            VECTOR_TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        // The port is found after the credentials, not in them.
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        ));
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        ));
        // Another port than the default is not added.
        assert!(!signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            "CYn1h0gLBdNxDGkKJg6hYohgeD8="
        ));
    }

    /// The signed string as providers.md 1.3 words it, built the slow way:
    /// for each distinct name in byte order, each of its distinct values,
    /// sorted.
    fn signed_by_name(url: &str, params: &[(String, String)]) -> String {
        let names: std::collections::BTreeSet<&String> = params.iter().map(|(n, _)| n).collect();
        let mut data = url.to_owned();
        for name in names {
            let values: std::collections::BTreeSet<&String> = params
                .iter()
                .filter(|(other, _)| other == name)
                .map(|(_, value)| value)
                .collect();
            for value in values {
                data.push_str(name);
                data.push_str(value);
            }
        }
        data
    }

    fn hmac_sha1_base64(key: &str, data: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(data.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    proptest::proptest! {
        #[test]
        fn one_sort_signs_what_signing_name_by_name_signs(
            params in proptest::collection::vec(("[A-Ca-c]{0,3}", "[0-2 +]{0,2}"), 0..24)
        ) {
            let params: Vec<(String, String)> = params;
            let expected = hmac_sha1_base64(VECTOR_TOKEN, &signed_by_name(BASE_URL, &params));
            proptest::prop_assert_eq!(signature(VECTOR_TOKEN, BASE_URL, &params), expected);
        }
    }

    #[test]
    fn a_hundred_thousand_parameters_are_checked_in_one_pass() {
        // Before, every distinct name rescanned every parameter, for each
        // form of the URL: 100,000 parameters took over a minute to refuse.
        let params: Vec<(String, String)> = (0..100_000)
            .map(|n| (format!("k{}", n % 60_000), format!("v{}", n % 7)))
            .collect();
        let url = "https://gw.example.com:8443/webhooks/twilio/a1";
        let without_port = "https://gw.example.com/webhooks/twilio/a1";
        let distinct: std::collections::BTreeSet<&(String, String)> = params.iter().collect();
        let mut data = without_port.to_owned();
        for (name, value) in distinct {
            data.push_str(name);
            data.push_str(value);
        }
        let expected = hmac_sha1_base64(VECTOR_TOKEN, &data);
        assert!(signature_valid(VECTOR_TOKEN, url, &params, &expected));
        assert!(!signature_valid(VECTOR_TOKEN, url, &params, "bogus"));
    }

    #[test]
    fn url_variants_cut_the_port_from_the_host_only() {
        assert_eq!(
            url_variants("https://u:p@h.example:8443/a:b?c=d:1"),
            vec![
                "https://u:p@h.example/a:b?c=d:1",
                "https://u:p@h.example:8443/a:b?c=d:1"
            ]
        );
        assert_eq!(
            url_variants("HTTP://h?x=1"),
            vec!["HTTP://h?x=1", "HTTP://h:80?x=1"]
        );
        assert_eq!(
            url_variants("https://[::1]:3000/w"),
            vec!["https://[::1]/w", "https://[::1]:3000/w"]
        );
        assert_eq!(
            url_variants("https://[::1]/w"),
            vec!["https://[::1]/w", "https://[::1]:443/w"]
        );
        assert_eq!(url_variants("ftp://h/x"), vec!["ftp://h/x"]);
        assert_eq!(url_variants("/relative"), vec!["/relative"]);
        assert_eq!(url_variants("https://h:x/"), vec!["https://h:x/"]);
    }

    #[test]
    fn refuses_a_wrong_token_a_tampered_parameter_or_no_signature() {
        let params = sdk_params();
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(signature_valid(VECTOR_TOKEN, BASE_URL, &params, good));
        assert!(!signature_valid("12346", BASE_URL, &params, good));
        let mut tampered = params.clone();
        tampered[2].1 = "1235".into();
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &tampered, good));
        let mut added = params.clone();
        added.push(("Extra".into(), String::new()));
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &added, good));
        assert!(!signature_valid(
            VECTOR_TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            good
        ));
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &params, ""));
        assert!(!signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            &good.to_lowercase()
        ));
    }

    // -------------------------------------------------------- callbacks

    #[test]
    fn parses_the_whatsapp_message() {
        assert_eq!(
            parse_callback(&form_pairs(WHATSAPP_BODY)),
            Ok(Callback::Message(InboundMessage {
                message_sid: "SM11111111111111111111111111111111".into(),
                account_sid: "AC00000000000000000000000000000000".into(),
                from: "whatsapp:+15551234567".into(),
                to: "whatsapp:+14155238886".into(),
                body: "Hello 👋".into(),
                profile_name: Some("Jane Doe".into()),
                wa_id: Some("15551234567".into()),
                media: Vec::new(),
            }))
        );
    }

    #[test]
    fn parses_a_media_only_sms_in_media_order() {
        let params = pairs(&[
            ("MessageSid", "MM1"),
            ("AccountSid", "AC1"),
            ("From", "+15551234567"),
            ("To", "+14155238886"),
            ("Body", ""),
            ("ProfileName", ""),
            ("NumMedia", "2"),
            ("MediaContentType1", "application/pdf"),
            ("MediaUrl1", "https://api.twilio.com/m/1"),
            ("MediaUrl0", "https://api.twilio.com/m/0"),
            ("MediaContentType0", "image/jpeg"),
        ]);
        assert_eq!(
            parse_callback(&params),
            Ok(Callback::Message(InboundMessage {
                message_sid: "MM1".into(),
                account_sid: "AC1".into(),
                from: "+15551234567".into(),
                to: "+14155238886".into(),
                body: String::new(),
                profile_name: None,
                wa_id: None,
                media: vec![
                    Media {
                        url: "https://api.twilio.com/m/0".into(),
                        content_type: "image/jpeg".into()
                    },
                    Media {
                        url: "https://api.twilio.com/m/1".into(),
                        content_type: "application/pdf".into()
                    },
                ],
            }))
        );
    }

    #[test]
    fn refuses_messages_missing_what_they_need() {
        let base = [("MessageSid", "SM1"), ("From", "+1"), ("To", "+2")];
        let with = |extra: &[(&str, &str)]| {
            let mut list = base.to_vec();
            list.extend_from_slice(extra);
            parse_callback(&pairs(&list))
        };
        assert!(
            matches!(with(&[]), Ok(Callback::Message(message)) if message.media.is_empty() && message.body.is_empty())
        );
        assert_eq!(
            parse_callback(&pairs(&[("From", "+1"), ("To", "+2")])),
            Err("the MessageSid parameter is missing".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("From", ""), ("To", "+2")])),
            Err("the From parameter is empty".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("From", "+1")])),
            Err("the To parameter is missing".into())
        );
        assert_eq!(
            with(&[("NumMedia", "two")]),
            Err("NumMedia must be a number of media, not \"two\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "-1")]),
            Err("NumMedia must be a number of media, not \"-1\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "+1")]),
            Err("NumMedia must be a number of media, not \"+1\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "11")]),
            Err("NumMedia is 11, more than Twilio's maximum of 10".into())
        );
        assert_eq!(
            with(&[("NumMedia", "1"), ("MediaUrl0", "https://m/0")]),
            Err("the MediaContentType0 parameter is missing (NumMedia is 1)".into())
        );
        assert_eq!(
            with(&[
                ("NumMedia", "2"),
                ("MediaUrl0", "https://m/0"),
                ("MediaContentType0", "image/png"),
                ("MediaUrl1", ""),
            ]),
            Err("the MediaUrl1 parameter is empty (NumMedia is 2)".into())
        );
        let ten: Vec<(String, String)> = (0..10)
            .flat_map(|n| {
                [
                    (format!("MediaUrl{n}"), format!("https://m/{n}")),
                    (format!("MediaContentType{n}"), "image/png".to_owned()),
                ]
            })
            .chain(pairs(&base))
            .chain(pairs(&[("NumMedia", "10")]))
            .collect();
        assert!(
            matches!(parse_callback(&ten), Ok(Callback::Message(message)) if message.media.len() == 10)
        );
    }

    #[test]
    fn parses_status_callbacks() {
        let params = pairs(&[
            ("MessageSid", "SM1"),
            ("SmsSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("SmsStatus", "undelivered"),
            ("ErrorCode", "63016"),
            ("ChannelPrefix", "whatsapp"),
            ("From", "whatsapp:+14155238886"),
        ]);
        assert_eq!(
            parse_callback(&params),
            Ok(Callback::Status(StatusUpdate {
                message_sid: "SM1".into(),
                status: "undelivered".into(),
                error_code: Some("63016".into()),
            }))
        );
        assert_eq!(
            parse_callback(&pairs(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "delivered"),
                ("ErrorCode", "")
            ])),
            Ok(Callback::Status(StatusUpdate {
                message_sid: "SM1".into(),
                status: "delivered".into(),
                error_code: None,
            }))
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageStatus", "sent")])),
            Err("the MessageSid parameter is missing".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "")])),
            Err("the MessageStatus parameter is empty".into())
        );
    }

    #[test]
    fn status_ranks_only_move_forward() {
        let order = [
            "accepted",
            "scheduled",
            "queued",
            "sending",
            "sent",
            "partially_delivered",
            "delivered",
            "read",
        ];
        for pair in order.windows(2) {
            assert!(
                delivery_status(pair[0]) < delivery_status(pair[1]),
                "{pair:?}"
            );
        }
        for terminal in ["failed", "undelivered", "canceled"] {
            assert!(delivery_status("read") < delivery_status(terminal));
            assert_eq!(delivery_status(terminal), delivery_status("failed"));
        }
        // A late `sent` cannot overwrite `delivered`.
        assert!(delivery_status("sent") < delivery_status("delivered"));
        for unknown in ["", "received", "receiving", "Delivered", "exploded"] {
            assert_eq!(
                delivery_status(unknown),
                DeliveryStatus::Unknown,
                "{unknown}"
            );
        }
        assert!(delivery_status("accepted") > DeliveryStatus::Unknown);
    }

    // ---------------------------------------------------------- sending

    const API: &str = "https://api.twilio.com/";
    const MESSAGES_URL: &str =
        "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json";
    const BASIC: &str = "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==";

    fn outgoing<'a>(content: &'a Content, status_callback: Option<&'a str>) -> Outgoing<'a> {
        Outgoing {
            account_sid: SID,
            auth_token: TOKEN,
            from: "whatsapp:+14155238886",
            to: "whatsapp:+15551234567",
            content,
            status_callback,
        }
    }

    fn text_content() -> Content {
        Content::Text {
            body: "Hi Jane".into(),
            media_urls: Vec::new(),
        }
    }

    fn sent_with(http: &ScriptedHttp, message: &Outgoing<'_>) -> SendOutcome {
        block_on(send(http, API, message))
    }

    fn created() -> Result<OutboundResponse, crate::ports::OutboundError> {
        reply(
            201,
            r#"{"sid":"SM0123456789abcdef0123456789abcdef","account_sid":"AC00000000000000000000000000000000","status":"queued","direction":"outbound-api","error_code":null}"#,
        )
    }

    fn only_request(http: &ScriptedHttp) -> OutboundRequest {
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        sent.into_iter().next().unwrap()
    }

    #[test]
    fn sends_text_and_media_as_a_form_with_basic_auth() {
        let http = ScriptedHttp::new(|_| created());
        let content = Content::Text {
            body: "1+1=2 & ünïcode 👋".into(),
            media_urls: vec![
                "https://cdn.example/a.jpg?x=1&y=2".into(),
                "https://cdn.example/b.pdf".into(),
            ],
        };
        let outcome = sent_with(
            &http,
            &outgoing(&content, Some("https://gw.example/webhooks/twilio/status")),
        );
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "SM0123456789abcdef0123456789abcdef".into(),
                status: "queued".into()
            }
        );
        let request = only_request(&http);
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, MESSAGES_URL);
        assert_eq!(
            request.headers,
            vec![
                ("Authorization".to_owned(), BASIC.to_owned()),
                (
                    "Content-Type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned()
                ),
            ]
        );
        let body = String::from_utf8(request.body).unwrap();
        assert_eq!(
            body,
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &Body=1%2B1%3D2%20%26%20%C3%BCn%C3%AFcode%20%F0%9F%91%8B\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fa.jpg%3Fx%3D1%26y%3D2\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fb.pdf\
             &StatusCallback=https%3A%2F%2Fgw.example%2Fwebhooks%2Ftwilio%2Fstatus"
        );
        assert_eq!(
            form_pairs(&body),
            pairs(&[
                ("To", "whatsapp:+15551234567"),
                ("From", "whatsapp:+14155238886"),
                ("Body", "1+1=2 & ünïcode 👋"),
                ("MediaUrl", "https://cdn.example/a.jpg?x=1&y=2"),
                ("MediaUrl", "https://cdn.example/b.pdf"),
                (
                    "StatusCallback",
                    "https://gw.example/webhooks/twilio/status"
                ),
            ])
        );
    }

    #[test]
    fn leaves_out_an_empty_body_and_an_absent_callback() {
        let http = ScriptedHttp::new(|_| created());
        let content = Content::Text {
            body: String::new(),
            media_urls: vec!["https://cdn.example/a.jpg".into()],
        };
        sent_with(&http, &outgoing(&content, None));
        assert_eq!(
            String::from_utf8(only_request(&http).body).unwrap(),
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fa.jpg"
        );
    }

    #[test]
    fn sends_a_template_with_compact_json_variables() {
        let http = ScriptedHttp::new(|_| created());
        let serde_json::Value::Object(variables) =
            serde_json::json!({"1": "Jane", "2": "a \"quoted\" & +plus"})
        else {
            unreachable!()
        };
        let content = Content::Template {
            content_sid: "HX0123456789abcdef0123456789abcdef".into(),
            variables,
        };
        sent_with(&http, &outgoing(&content, None));
        let body = String::from_utf8(only_request(&http).body).unwrap();
        assert_eq!(
            form_pairs(&body),
            pairs(&[
                ("To", "whatsapp:+15551234567"),
                ("From", "whatsapp:+14155238886"),
                ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
                (
                    "ContentVariables",
                    r#"{"1":"Jane","2":"a \"quoted\" & +plus"}"#
                ),
            ])
        );
        assert!(body.ends_with(
            "&ContentVariables=%7B%221%22%3A%22Jane%22%2C%222%22%3A%22a%20%5C%22quoted%5C%22%20%26%20%2Bplus%22%7D"
        ));

        let http = ScriptedHttp::new(|_| created());
        let content = Content::Template {
            content_sid: "HX0123456789abcdef0123456789abcdef".into(),
            variables: serde_json::Map::new(),
        };
        sent_with(&http, &outgoing(&content, Some("https://gw/s")));
        assert_eq!(
            String::from_utf8(only_request(&http).body).unwrap(),
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &ContentSid=HX0123456789abcdef0123456789abcdef&StatusCallback=https%3A%2F%2Fgw%2Fs"
        );
    }

    #[test]
    fn a_message_outside_the_window_needs_a_template() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"code":63016,"message":"Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.","more_info":"https://www.twilio.com/docs/errors/63016","status":400}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::OutsideWindow {
                message: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template. (Twilio error 63016)".into()
            }
        );
        // A created message that carries the error already.
        let http = ScriptedHttp::new(|_| {
            reply(
                201,
                r#"{"sid":"SM1","status":"failed","error_code":63016,"error_message":null}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::OutsideWindow {
                message:
                    "Outside the allowed window for free-form WhatsApp messages (Twilio error 63016)"
                        .into()
            }
        );
        // Another error on a created message is the caller's to read.
        let http = ScriptedHttp::new(|_| {
            reply(
                201,
                r#"{"sid":"SM1","status":"failed","error_code":"30007"}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Sent {
                id: "SM1".into(),
                status: "failed".into()
            }
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("retry-after".into(), " 7 ".into())],
                body: br#"{"code":20429,"message":"Too Many Requests","status":429}"#.to_vec(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(7),
                message: "Too Many Requests (Twilio error 20429)".into()
            }
        );
        // 429 with no body and an HTTP-date Retry-After.
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "Wed, 21 Oct 2015 07:28:00 GMT".into())],
                body: Vec::new(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "HTTP 429".into()
            }
        );
        // Code 20429 under another status.
        let http =
            ScriptedHttp::new(|_| reply(503, r#"{"code":20429,"message":"Too Many Requests"}"#));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "Too Many Requests (Twilio error 20429)".into()
            }
        );
    }

    #[test]
    fn other_refusals_are_rejected_with_status_and_code() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number: +1555","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 400,
                code: Some(21211),
                message: "Invalid 'To' Phone Number: +1555 (Twilio error 21211)".into()
            }
        );
        let http = ScriptedHttp::new(|_| reply(502, "<html>Bad Gateway</html>"));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
        let http = ScriptedHttp::new(|_| reply(201, "{}"));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 201,
                code: None,
                message: "Twilio answered HTTP 201 without a message sid".into()
            }
        );
    }

    #[test]
    fn outcome_messages_never_carry_the_token() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                &format!(r#"{{"code":20003,"message":"Authenticate {TOKEN}","status":401}}"#),
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 401,
                code: Some(20003),
                message: "Authenticate [redacted] (Twilio error 20003)".into()
            }
        );
        let http =
            ScriptedHttp::new(|_| Err(OutboundError(format!("{TOKEN} refused by host policy"))));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: [redacted] refused by host policy".into()
            }
        );
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: Vec::new(),
                body: format!(r#"{{"code":20429,"message":"slow down {TOKEN}"}}"#).into_bytes(),
            })
        });
        assert!(matches!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited { message, .. } if message == "slow down [redacted] (Twilio error 20429)"
        ));
    }
}
