//! `/webhooks/twilio/{accountId}`: WhatsApp messages and status callbacks
//! (providers.md 1.1–1.3), as the core's [`Event`]s.
//!
//! Twilio signs the URL it was configured with, which behind a proxy is not
//! the URL this component sees, so the signed URL is rebuilt from
//! `public_base_url`. Twilio waits for TwiML; an empty `<Response/>` accepts
//! the message without an automatic reply.

use super::{parse_callback, signature_valid, Callback, InboundMessage, MAX_BODY_CHARS};
use crate::api::{ApiError, Request, Response};
use crate::conversations::ingest::Inbound;
use crate::conversations::Attachment;
use crate::ports::Ports;
use crate::providers::Event;
use crate::webhooks::{customer_text, invalid_callback};

/// Whether the request carries Twilio's signature with `auth_token`.
pub(super) fn signed(
    params: &[(String, String)],
    request: &Request,
    ports: &Ports<'_>,
    auth_token: &str,
) -> bool {
    let base = crate::config::public_base_url(ports.variables);
    let url = match request.query.as_str() {
        "" => format!("{base}{}", request.path),
        query => format!("{base}{}?{query}", request.path),
    };
    request
        .header("x-twilio-signature")
        .is_some_and(|given| signature_valid(auth_token, &url, params, given))
}

pub(super) fn events(params: &[(String, String)]) -> Result<Vec<Event>, ApiError> {
    Ok(vec![
        match parse_callback(params).map_err(invalid_callback)? {
            Callback::Message(message) => Event::Message(inbound(&message)),
            Callback::Status(update) => Event::Status {
                message_id: update.message_sid,
                status: update.status,
                error_code: update.error_code,
                channel_address: None,
            },
        },
    ])
}

/// Twilio's "accepted, nothing to say".
pub(super) fn twiml() -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "text/xml".into())],
        body: b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_vec(),
    }
}

/// A WhatsApp address (`whatsapp:+15551234567`) as the number it names.
fn number(address: &str) -> String {
    address
        .strip_prefix("whatsapp:")
        .unwrap_or(address)
        .to_owned()
}

fn inbound(message: &InboundMessage) -> Inbound {
    Inbound {
        provider_message_id: message.message_sid.clone(),
        customer_address: number(&message.from),
        channel_address: number(&message.to),
        text: customer_text(&message.body, MAX_BODY_CHARS),
        attachments: message
            .media
            .iter()
            .map(|media| Attachment {
                url: media.url.clone(),
                content_type: media.content_type.clone(),
            })
            .collect(),
        profile_name: message.profile_name.clone(),
    }
}
