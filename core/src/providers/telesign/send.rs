//! Replies and notices through TeleSign: the core's message as an SMS, with
//! the account's delivery-report callback.

use super::*;
use crate::api::ApiError;
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
    match http.send(request).await {
        Ok(response) => send_outcome(&response, &secrets),
        Err(error) => SendOutcome::Unreachable {
            message: scrub(error.to_string(), &secrets),
        },
    }
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
) -> Result<SendOutcome, ApiError> {
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
