//! Replies and notices through TeleSign: the core's message as an SMS, with
//! the account's delivery-report callback.

use super::*;
use crate::error::Error;
use crate::ports::Ports;
use crate::providers::{api_base, callback_url, Outgoing, Provider, SendOutcome};

pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// An SMS to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms<'a> {
    pub customer_id: &'a str,
    pub api_key: &'a str,
    /// The customer, digits with country code, no `+` (TeleSign's phone_number).
    pub phone_number: &'a str,
    /// Our number (digits), sent as sender_id.
    pub sender_id: &'a str,
    pub message: &'a str,
    /// Echoed in delivery reports.
    pub external_id: Option<&'a str>,
    /// Where TeleSign posts this message's delivery reports.
    pub callback_url: Option<&'a str>,
}

/// Sends `sms` with a TSA-signed `POST /v1/messaging` (providers.md 2.1);
/// `nonce` must be a fresh UUID, as for [`check_credentials`], and
/// `now_millis` within TeleSign's clock tolerance.
/// A key that cannot sign anything is refused here, without a request.
pub async fn send_sms(
    http: &dyn OutboundHttp,
    api_base: &str,
    sms: &Sms<'_>,
    now_millis: i64,
    nonce: &str,
) -> SendOutcome {
    let secrets = [sms.api_key];
    let url = endpoint(api_base, "/v1/messaging");
    let body = sms_form(sms);
    let date = http_date(now_millis);
    let signed = authorization(
        sms.customer_id,
        sms.api_key,
        "POST",
        FORM,
        &date,
        nonce,
        &body,
        path_of(&url),
    );
    let authorization = match signed {
        Ok(authorization) => authorization,
        Err(invalid) => {
            return SendOutcome::Rejected {
                status: 0,
                code: None,
                message: scrub(invalid.to_string(), &secrets),
            }
        }
    };
    let request = OutboundRequest {
        method: Method::Post,
        url,
        headers: vec![
            ("Authorization".to_owned(), authorization),
            ("Date".to_owned(), date),
            ("Content-Type".to_owned(), FORM.to_owned()),
            ("x-ts-auth-method".to_owned(), AUTH_METHOD.to_owned()),
            ("x-ts-nonce".to_owned(), nonce.to_owned()),
        ],
        body: body.into_bytes(),
        timeout: None,
        max_response_bytes: None,
    };
    crate::providers::send_and_read(http, request, &secrets, send_outcome).await
}

/// The form in a fixed order, since it is signed as sent. `ARN` (alerts,
/// reminders, notifications) is the type for customer-service replies: they
/// are neither one-time passwords nor marketing.
pub(super) fn sms_form(sms: &Sms<'_>) -> String {
    let mut fields = vec![
        ("phone_number", sms.phone_number),
        ("message", sms.message),
        ("message_type", "ARN"),
        ("sender_id", sms.sender_id),
    ];
    fields.extend(sms.external_id.map(|id| ("external_id", id)));
    fields.extend(sms.callback_url.map(|url| ("callback_url", url)));
    form_encode(fields)
}

pub(super) fn send_outcome(response: &OutboundResponse, secrets: &[&str]) -> SendOutcome {
    let status = response.status;
    let body = json(&response.body);
    let body = body.as_ref();
    if matches!(status, 200..=202) {
        return match body.and_then(|body| text(body, "/reference_id")) {
            Some(reference_id) => SendOutcome::Sent {
                id: reference_id.to_owned(),
                // Accepted but of unknown state: it may still be delivered.
                status: body
                    .and_then(|body| integer(body, "/status/code"))
                    .map_or("pending", status_name)
                    .to_owned(),
            },
            None => SendOutcome::Rejected {
                status,
                code: None,
                message: format!("TeleSign answered HTTP {status} without a reference_id"),
            },
        };
    }
    let message = scrub(
        body.and_then(send_error)
            .unwrap_or_else(|| http_status(status)),
        secrets,
    );
    if status == 429 {
        return SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message,
        };
    }
    SendOutcome::Rejected {
        status,
        code: body.and_then(|body| {
            integer(body, "/errors/0/code").or_else(|| integer(body, "/status/code"))
        }),
        message,
    }
}

/// Each `errors[].description`, else `status.description`: TeleSign's
/// errors name the field at fault, its status only the category.
pub(super) fn send_error(body: &serde_json::Value) -> Option<String> {
    let errors: Vec<&str> = body
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| text(error, "/description"))
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        text(body, "/status/description").map(str::to_owned)
    } else {
        Some(errors.join("; "))
    }
}

/// An integer at `pointer`, written as a number or a numeric string.
pub(super) fn integer(value: &serde_json::Value, pointer: &str) -> Option<i64> {
    let value = value.pointer(pointer)?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &Outgoing<'_>,
) -> Result<SendOutcome, Error> {
    let api_base = api_base(ports.variables, "telesign_api_base")?;
    let base_url = crate::config::public_base_url(ports.variables);
    let callback = callback_url(&base_url, Provider::Telesign, message.account_id);
    let sms = Sms {
        customer_id: &settings.customer_id,
        api_key: &settings.api_key,
        phone_number: message.thread.customer.trim_start_matches('+'),
        sender_id: message.thread.ours,
        message: message.content.text(),
        external_id: None,
        callback_url: Some(&callback),
    };
    let nonce = ports.random.uuid();
    let now = ports.clock.now_millis();
    Ok(send_sms(ports.http, &api_base, &sms, now, &nonce).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use crate::providers::telesign::tests::*;

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
}
