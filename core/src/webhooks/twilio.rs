//! `/webhooks/twilio/{accountId}`: WhatsApp messages and status callbacks
//! from Twilio (providers.md 1.1–1.3).
//!
//! Twilio signs the URL it was configured with, which behind a proxy is not
//! the URL this component sees, so the signed URL is rebuilt from
//! `public_base_url`. Twilio waits for TwiML; an empty `<Response/>` accepts
//! the message without an automatic reply.

use super::{bad_signature, invalid_callback, organisation_of, read_account, unknown_account};
use crate::api::{method_not_allowed, ApiError, Method, Request, Response};
use crate::config::accounts::Settings;
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::{provider_message_key, Attachment};
use crate::encoding::form_pairs;
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

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<(), ApiError> {
    let ["webhooks", "twilio", account_id] = request.segments()[..] else {
        return Err(ApiError::not_found(&request.path));
    };
    let kv = ports.kv;
    let org = organisation_of(kv, account_id, "twilio")?;
    let params = form_pairs(&String::from_utf8_lossy(&request.body));
    let callback = twilio::parse_callback(&params);
    let (inbound, status) = match &callback {
        Ok(Callback::Message(message)) => (Some(normalize(message)), None),
        Ok(Callback::Status(update)) => (None, Some(update)),
        Err(_) => (None, None),
    };
    let mut keys = Vec::new();
    if let Some(inbound) = &inbound {
        keys.extend(thread_keys(
            &org,
            account_id,
            "twilio",
            inbound,
            ports.clock.now_millis(),
        ));
    }
    if let Some(update) = status {
        keys.push(provider_message_key(&org, "twilio", &update.message_sid));
    }
    let (account, mut found) = read_account(kv, &org, account_id, "twilio", keys)?;
    let Settings::Twilio { auth_token, .. } = &account.settings else {
        return Err(unknown_account(account_id, "twilio"));
    };
    let base = crate::config::public_base_url(ports.variables);
    let url = match request.query.as_str() {
        "" => format!("{base}{}", request.path),
        query => format!("{base}{}?{query}", request.path),
    };
    let signed = request
        .header("x-twilio-signature")
        .is_some_and(|given| twilio::signature_valid(auth_token, &url, &params, given));
    if !signed {
        return Err(bad_signature("X-Twilio-Signature"));
    }
    if let Err(message) = callback {
        return Err(invalid_callback(message));
    }
    if let Some(inbound) = inbound {
        ingest(ports, &org, &account, &inbound, found.collect()).await?;
    } else if let Some(update) = status {
        apply_status(
            kv,
            &org,
            found.next().flatten(),
            &update.status,
            update.error_code.as_deref(),
            twilio::status_rank,
        )?;
    }
    Ok(())
}

fn normalize(message: &twilio::InboundMessage) -> Inbound {
    Inbound {
        provider_message_id: message.message_sid.clone(),
        customer_address: number(&message.from),
        channel_address: number(&message.to),
        text: message.body.clone(),
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
