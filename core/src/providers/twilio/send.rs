//! Replies and notices through Twilio: the core's message as Twilio's
//! Messages API takes it, with the account's status callback.

use super::*;
use crate::api::ApiError;
use crate::conversations::reply;
use crate::ports::Ports;
use crate::providers::{api_base, callback_url, Provider, SendOutcome};

/// Free-form WhatsApp outside the 24-hour window.
pub(super) const OUTSIDE_WINDOW: i64 = 63016;
/// Too many concurrent requests.
pub(super) const TOO_MANY_REQUESTS: i64 = 20429;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Free-form text and/or media by URL; an empty body is left out, for a
    /// media-only message.
    Text {
        body: String,
        media_urls: Vec<String>,
    },
    /// An approved content template (`HX…`), the only content WhatsApp
    /// accepts outside the 24-hour window; empty `variables` send no
    /// `ContentVariables`.
    Template {
        content_sid: String,
        variables: serde_json::Map<String, serde_json::Value>,
    },
}

/// One message to send, with the account it is sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    pub account_sid: &'a str,
    pub auth_token: &'a str,
    /// `whatsapp:+14155238886` or `+14155238886`.
    pub from: &'a str,
    pub to: &'a str,
    pub content: &'a Content,
    /// Where Twilio posts this message's status callbacks.
    pub status_callback: Option<&'a str>,
}

/// Creates the message with `POST /2010-04-01/Accounts/{sid}/Messages.json`
/// (providers.md 1.4).
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let secrets = [message.auth_token];
    let path = format!(
        "/2010-04-01/Accounts/{}/Messages.json",
        percent_encode(message.account_sid)
    );
    let request = OutboundRequest {
        method: Method::Post,
        url: endpoint(api_base, &path),
        headers: vec![
            (
                "Authorization".to_owned(),
                basic_auth(message.account_sid, message.auth_token),
            ),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ],
        body: form_body(message).into_bytes(),
        timeout: None,
        max_response_bytes: None,
    };
    match http.send(request).await {
        Ok(response) => outcome(&response, &secrets),
        Err(error) => SendOutcome::Unreachable {
            message: scrub(error.to_string(), &secrets),
        },
    }
}

/// `To`, `From`, the content's fields, then `StatusCallback`.
pub(super) fn form_body(message: &Outgoing<'_>) -> String {
    let variables = match message.content {
        Content::Template { variables, .. } if !variables.is_empty() => {
            Some(serde_json::Value::from(variables.clone()).to_string())
        }
        _ => None,
    };
    let mut fields = vec![("To", message.to), ("From", message.from)];
    match message.content {
        Content::Text { body, media_urls } => {
            if !body.is_empty() {
                fields.push(("Body", body));
            }
            fields.extend(media_urls.iter().map(|url| ("MediaUrl", url.as_str())));
        }
        Content::Template { content_sid, .. } => {
            fields.push(("ContentSid", content_sid));
            fields.extend(variables.as_deref().map(|json| ("ContentVariables", json)));
        }
    }
    fields.extend(message.status_callback.map(|url| ("StatusCallback", url)));
    form_encode(fields)
}

pub(super) fn outcome(response: &OutboundResponse, secrets: &[&str]) -> SendOutcome {
    let status = response.status;
    let body = json(&response.body);
    let body = body.as_ref();
    let said =
        |fallback: String| scrub(body.and_then(provider_message).unwrap_or(fallback), secrets);
    if (200..=299).contains(&status) {
        // A created message that already failed the window check.
        if body.and_then(|body| number(body, "/error_code")) == Some(OUTSIDE_WINDOW) {
            let message = body
                .and_then(|body| text(body, "/error_message"))
                .unwrap_or("Outside the allowed window for free-form WhatsApp messages");
            return SendOutcome::OutsideWindow {
                message: scrub(
                    format!("{message} (Twilio error {OUTSIDE_WINDOW})"),
                    secrets,
                ),
            };
        }
        return match body.and_then(|body| text(body, "/sid")) {
            Some(sid) => SendOutcome::Sent {
                id: sid.to_owned(),
                // Twilio's first status for a message sent from a number.
                status: body
                    .and_then(|body| text(body, "/status"))
                    .unwrap_or("queued")
                    .to_owned(),
            },
            None => SendOutcome::Rejected {
                status,
                code: None,
                message: format!("Twilio answered HTTP {status} without a message sid"),
            },
        };
    }
    let code = body.and_then(|body| number(body, "/code"));
    if code == Some(OUTSIDE_WINDOW) {
        return SendOutcome::OutsideWindow {
            message: said(http_status(status)),
        };
    }
    if status == 429 || code == Some(TOO_MANY_REQUESTS) {
        return SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message: said(http_status(status)),
        };
    }
    SendOutcome::Rejected {
        status,
        code,
        message: said(http_status(status)),
    }
}

/// An integer at `pointer`, whether Twilio wrote it as a number or a string.
pub(super) fn number(value: &serde_json::Value, pointer: &str) -> Option<i64> {
    let value = value.pointer(pointer)?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "twilio_api_base")?;
    let content = match message.content {
        reply::Content::Text { text, attachments } => Content::Text {
            body: text.clone(),
            media_urls: attachments.iter().map(|a| a.url.clone()).collect(),
        },
        reply::Content::Template { rendered, .. } => Content::Template {
            content_sid: rendered.content_sid.clone().unwrap_or_default(),
            variables: rendered.content_variables.clone().unwrap_or_default(),
        },
    };
    let from = format!("whatsapp:{}", message.thread.ours);
    let to = format!("whatsapp:{}", message.thread.customer);
    let base_url = crate::config::public_base_url(ports.variables);
    let callback = callback_url(&base_url, Provider::Twilio, message.account_id);
    let outgoing = Outgoing {
        account_sid: &settings.account_sid,
        auth_token: &settings.auth_token,
        from: &from,
        to: &to,
        content: &content,
        status_callback: Some(&callback),
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}
