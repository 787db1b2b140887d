//! `/webhooks/gbm/{accountId}`: Google's Business Messages webhook
//! (providers.md 4.1–4.3). Google retired the service on 2024-07-31; this
//! follows its documented protocol.
//!
//! The console's verification request carries the client token in its body
//! and is answered with its secret; every other request is signed with the
//! same client token (`X-Goog-Signature`, HMAC-SHA512 of the raw body). A
//! customer is a Business Messages conversation: its id is their address.

use super::{
    bad_signature, customer_text, echo, invalid_callback, read_account, signer, too_many,
    MAX_RECEIPT_IDS,
};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::constant_time_eq;
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::provider_message_key;
use crate::error::Error;
use crate::ports::Ports;
use crate::providers::google::{self, Webhook};
use crate::providers::receipt_rank;
use serde_json::json;

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    if request.method != Method::Post {
        return method_not_allowed(&["POST"]);
    }
    serve(request, ports)
        .await
        .unwrap_or_else(Error::into_response)
}

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<Response, Error> {
    let ["webhooks", "gbm", account_id] = request.segments()[..] else {
        return Err(Error::no_route(&request.path));
    };
    let kv = ports.kv;
    let signer = signer(kv, account_id, "gbm")?;
    let webhook = google::parse_webhook(&request.body);
    if let Ok(Webhook::Verification {
        client_token: given,
        secret,
    }) = &webhook
    {
        return if constant_time_eq(given.as_bytes(), signer.secret.as_bytes()) {
            Ok(echo(secret))
        } else {
            Err(Error::forbidden(
                "verification_failed",
                format!("the clientToken does not match account {account_id}'s client_token; set the same token in the Business Communications console and in PATCH /api/accounts/{account_id}")),
            )
        };
    }
    let signature = request.header("x-goog-signature");
    if !google::signature_valid(&signer.secret, &request.body, signature) {
        return Err(bad_signature("X-Goog-Signature"));
    }
    let org = &signer.org;
    let webhook = webhook.map_err(invalid_callback)?;
    if let Some(inbound) = inbound(&webhook) {
        let now = ports.clock.now_millis();
        let keys = thread_keys(org, account_id, "gbm", &inbound, now);
        let (account, found) = read_account(kv, org, account_id, "gbm", keys)?;
        ingest(ports, org, &account, &inbound, found.collect()).await?;
    } else if let Webhook::Receipts { receipts, .. } = webhook {
        if receipts.len() > MAX_RECEIPT_IDS {
            let (count, limit) = (receipts.len(), MAX_RECEIPT_IDS);
            return Err(too_many("too_many_receipts", "receipts", count, limit));
        }
        let keys: Vec<String> = receipts
            .iter()
            .map(|receipt| provider_message_key(org, "gbm", &receipt.message_id))
            .collect();
        for (receipt, value) in receipts.iter().zip(kv.get_many(&keys)?) {
            apply_status(kv, org, value, &receipt.status, None, receipt_rank)?;
        }
    }
    // Typing and live-agent requests change nothing stored: every
    // conversation not with a bot is already routed to agents.
    Ok(Response::json(200, &json!({"received": true})))
}

/// The customer's message a webhook carries, if it carries one.
fn inbound(webhook: &Webhook) -> Option<Inbound> {
    let Webhook::Message {
        agent_id,
        conversation_id,
        message_id,
        text,
        attachments,
        display_name,
    } = webhook
    else {
        return None;
    };
    Some(Inbound {
        provider_message_id: message_id.clone(),
        customer_address: conversation_id.clone(),
        channel_address: agent_id.clone(),
        text: customer_text(text, google::MAX_TEXT_CHARS),
        attachments: attachments.clone(),
        profile_name: display_name.clone(),
    })
}
