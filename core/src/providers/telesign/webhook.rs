//! `/webhooks/telesign/{accountId}`: inbound SMS and delivery reports from
//! TeleSign's Transaction Callback Service (providers.md 2.3–2.5), as the
//! core's [`Event`]s.
//!
//! TeleSign signs the raw body alone with the account's API key and sends
//! the signature in both `Authorization` and `X-TS-Authorization`; either
//! checking out is enough. Nothing in the signature binds the URL or a
//! time, so a replayed callback is caught by the dedupe on `reference_id`.
//! TeleSign retries anything but 200, so every accepted callback — stored,
//! duplicate or about a message we never sent — answers 200.

use super::*;
use crate::api::Request;
use crate::error::Error;
use crate::message::Inbound;
use crate::providers::webhook::{customer_text, invalid_callback};
use crate::providers::Event;

/// Whether `header` (`Authorization` or `X-TS-Authorization`) carries
/// base64(HMAC-SHA256(key, body)) for this API key (providers.md 2.5). The
/// comparison is constant-time; a missing or unreadable header is invalid.
pub fn callback_signature_valid(api_key: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|header| STANDARD.decode(signature_in(header)).ok()) else {
        return false;
    };
    let Ok(key) = decode_api_key(api_key) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The signature in `TSA {customer_id}:{signature}`, `TSA {signature}` or
/// a bare `{signature}`: base64 has no `:`, so it is whatever follows the
/// last one.
pub(super) fn signature_in(header: &str) -> &str {
    let value = header.trim();
    if let Some((_, signature)) = value.rsplit_once(':') {
        return signature.trim();
    }
    match value.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("TSA ") => value[4..].trim(),
        _ => value,
    }
}

/// What TeleSign posted to the callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Message(MoSms),
    Status(DeliveryReport),
}

/// The longest text an inbound SMS carries: TeleSign's 1,600 characters,
/// the SMS limit everywhere in the product (R-IN-5).
pub const MAX_MO_CHARS: usize = crate::template_text::SMS_MAX_CHARS;

/// An SMS a customer sent to one of our numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoSms {
    pub reference_id: String,
    /// "+" and the digits of user_response.phone_number
    pub from: String,
    /// user_response.sender_id as sent (digits; may be empty)
    pub to: String,
    pub text: String,
}

/// A delivery report for a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub reference_id: String,
    /// TeleSign's status code, e.g. 200; see [`status_name`].
    pub code: i64,
    pub description: String,
}

/// Reads a (signature-checked) callback body. MOs are told from delivery
/// reports by `sub_resource` or their `user_response`, not by status code,
/// which has changed across TeleSign's docs. Unknown fields are ignored.
///
/// Err = a sentence naming the missing or invalid field (used as a 400 body).
pub fn parse_callback(body: &[u8]) -> Result<Callback, String> {
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the TeleSign callback is not JSON: {error}"))?;
    if !body.is_object() {
        return Err("the TeleSign callback is not a JSON object".to_owned());
    }
    let reference_id = text(&body, "/reference_id")
        .ok_or("the TeleSign callback has no reference_id")?
        .to_owned();
    let is_mo = body.get("sub_resource").and_then(serde_json::Value::as_str) == Some("mo_sms")
        || body
            .get("user_response")
            .is_some_and(serde_json::Value::is_object);
    if is_mo {
        mo_sms(&body, reference_id).map(Callback::Message)
    } else {
        delivery_report(&body, reference_id).map(Callback::Status)
    }
}

pub(super) fn mo_sms(body: &serde_json::Value, reference_id: String) -> Result<MoSms, String> {
    let phone_number = body
        .pointer("/user_response/phone_number")
        .and_then(serde_json::Value::as_str)
        .ok_or("the inbound SMS has no user_response.phone_number")?;
    let digits = phone_number.trim().trim_start_matches('+');
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "user_response.phone_number must be digits with the country code, not {phone_number:?}"
        ));
    }
    let text = body
        .pointer("/user_response/mo_message")
        .and_then(serde_json::Value::as_str)
        .ok_or("the inbound SMS has no user_response.mo_message")?;
    let to = body
        .pointer("/user_response/sender_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    Ok(MoSms {
        reference_id,
        from: format!("+{digits}"),
        to: to.to_owned(),
        text: text.to_owned(),
    })
}

pub(super) fn delivery_report(
    body: &serde_json::Value,
    reference_id: String,
) -> Result<DeliveryReport, String> {
    let code =
        integer(body, "/status/code").ok_or("the delivery report has no numeric status.code")?;
    Ok(DeliveryReport {
        reference_id,
        code,
        description: text(body, "/status/description")
            .unwrap_or_default()
            .to_owned(),
    })
}

/// TeleSign's status code as "delivered", "failed" or "pending".
///
/// 200 (delivered to handset) and 201 (completed) are delivered. 203, 290,
/// 292 and 295 are TeleSign's intermediate states, and 250, 251 and 599 say
/// the outcome is unknown, not that delivery failed, so all are pending: a
/// later report may still settle them. Every other code is a refusal or a
/// final failure.
pub fn status_name(code: i64) -> &'static str {
    match code {
        200 | 201 => "delivered",
        203 | 290 | 292 | 295 | 250 | 251 | 599 => "pending",
        _ => "failed",
    }
}

pub(super) fn signed(request: &Request, api_key: &str) -> bool {
    ["authorization", "x-ts-authorization"]
        .iter()
        .any(|name| callback_signature_valid(api_key, &request.body, request.header(name)))
}

/// The callback's event. TeleSign may leave `sender_id` empty: the number
/// the customer texted is then the account's only one ([`complete`]).
pub(super) fn events(request: &Request) -> Result<Vec<Event>, Error> {
    Ok(vec![
        match parse_callback(&request.body).map_err(invalid_callback)? {
            Callback::Message(sms) => Event::Message(Inbound {
                channel: Channel::Sms,
                provider_message_id: sms.reference_id,
                customer_address: sms.from,
                channel_address: sms.to,
                text: customer_text(&sms.text, MAX_MO_CHARS),
                attachments: Vec::new(),
                profile_name: None,
            }),
            Callback::Status(report) => {
                let status = status_name(report.code);
                Event::Status {
                    message_id: report.reference_id,
                    status: status.to_owned(),
                    error_code: (status == "failed").then(|| report.code.to_string()),
                    channel_address: None,
                }
            }
        },
    ])
}

/// The number an MO without `sender_id` was sent to: the account's only one.
pub(super) fn complete(
    inbound: &mut Inbound,
    account_id: &str,
    settings: &Settings,
) -> Result<(), Error> {
    match settings.addresses()[..] {
        [number] => {
            inbound.channel_address = number.to_owned();
            Ok(())
        }
        _ => Err(invalid_callback(format!(
            "the callback names no sender_id and account {account_id} has several numbers, so the number the customer texted is unknown; ask TeleSign to include sender_id"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::telesign::tests::*;

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
        let delivery_status = |word| Provider::Telesign.delivery_status(word);
        assert!(delivery_status("pending") < delivery_status("delivered"));
        assert_eq!(delivery_status("delivered"), delivery_status("failed"));
        assert_eq!(delivery_status("read"), DeliveryStatus::Unknown);
        assert!(delivery_status("") < delivery_status("pending"));
    }
}
