//! `/webhooks/twilio/{accountId}`: WhatsApp messages and status callbacks
//! from Twilio (providers.md 1.1–1.3).
//!
//! Twilio signs the URL it was configured with, which behind a proxy is not
//! the URL this component sees, so the signed URL is rebuilt from
//! `public_base_url`. Twilio waits for TwiML; an empty `<Response/>` accepts
//! the message without an automatic reply.

use super::{bad_signature, customer_text, invalid_callback, read_account, signer};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::{provider_message_key, Attachment};
use crate::encoding::form_pairs;
use crate::error::Error;
use crate::ports::Ports;
use crate::providers::twilio::{self, Callback};

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    if request.method != Method::Post {
        return method_not_allowed(&["POST"]);
    }
    match serve(request, ports).await {
        Ok(()) => twiml(),
        Err(error) => error.into_response(),
    }
}

/// Twilio's "accepted, nothing to say".
fn twiml() -> Response {
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

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<(), Error> {
    let ["webhooks", "twilio", account_id] = request.segments()[..] else {
        return Err(Error::no_route(&request.path));
    };
    let kv = ports.kv;
    let signer = signer(kv, account_id, "twilio")?;
    let params = form_pairs(&String::from_utf8_lossy(&request.body));
    let base = crate::config::public_base_url(ports.variables);
    let url = match request.query.as_str() {
        "" => format!("{base}{}", request.path),
        query => format!("{base}{}?{query}", request.path),
    };
    let signed = request
        .header("x-twilio-signature")
        .is_some_and(|given| twilio::signature_valid(&signer.secret, &url, &params, given));
    if !signed {
        return Err(bad_signature("X-Twilio-Signature"));
    }
    let org = &signer.org;
    match twilio::parse_callback(&params).map_err(invalid_callback)? {
        Callback::Message(message) => {
            let inbound = normalize(&message);
            let now = ports.clock.now_millis();
            let keys = thread_keys(org, account_id, "twilio", &inbound, now);
            let (account, found) = read_account(kv, org, account_id, "twilio", keys)?;
            ingest(ports, org, &account, &inbound, found.collect()).await?;
        }
        Callback::Status(update) => {
            let sent = kv.get(&provider_message_key(org, "twilio", &update.message_sid))?;
            apply_status(
                kv,
                org,
                sent,
                &update.status,
                update.error_code.as_deref(),
                twilio::status_rank,
            )?;
        }
    }
    Ok(())
}

fn normalize(message: &twilio::InboundMessage) -> Inbound {
    Inbound {
        provider_message_id: message.message_sid.clone(),
        customer_address: number(&message.from),
        channel_address: number(&message.to),
        text: customer_text(&message.body, twilio::MAX_BODY_CHARS),
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
