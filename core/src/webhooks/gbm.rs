//! `/webhooks/gbm/{accountId}`: Google's Business Messages webhook
//! (providers.md 4.1–4.3). Google retired the service on 2024-07-31; this
//! follows its documented protocol.
//!
//! The console's verification request carries the client token in its body
//! and is answered with its secret; every other request is signed with the
//! same client token (`X-Goog-Signature`, HMAC-SHA512 of the raw body). A
//! customer is a Business Messages conversation: its id is their address.

use super::{
    bad_signature, echo, invalid_callback, organisation_of, read_account, unknown_account,
};
use crate::api::{method_not_allowed, ApiError, Method, Request, Response};
use crate::auth::constant_time_eq;
use crate::config::accounts::Settings;
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::provider_message_key;
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
        .unwrap_or_else(ApiError::into_response)
}

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<Response, ApiError> {
    let ["webhooks", "gbm", account_id] = request.segments()[..] else {
        return Err(ApiError::not_found(&request.path));
    };
    let kv = ports.kv;
    let org = organisation_of(kv, account_id, "gbm")?;
    let webhook = google::parse_webhook(&request.body);
    let message = webhook.as_ref().ok().and_then(inbound);
    let keys = match (&message, &webhook) {
        (Some(inbound), _) => {
            thread_keys(&org, account_id, "gbm", inbound, ports.clock.now_millis())
        }
        (None, Ok(Webhook::Receipts { receipts, .. })) => receipts
            .iter()
            .map(|receipt| provider_message_key(&org, "gbm", &receipt.message_id))
            .collect(),
        _ => Vec::new(),
    };
    let (account, found) = read_account(kv, &org, account_id, "gbm", keys)?;
    let Settings::Gbm { client_token, .. } = &account.settings else {
        return Err(unknown_account(account_id, "gbm"));
    };
    if let Ok(Webhook::Verification {
        client_token: given,
        secret,
    }) = &webhook
    {
        return if constant_time_eq(given.as_bytes(), client_token.as_bytes()) {
            Ok(echo(secret))
        } else {
            Err(ApiError {
                status: 403,
                code: "verification_failed",
                message: format!("the clientToken does not match account {account_id}'s client_token; set the same token in the Business Communications console and in PATCH /api/accounts/{account_id}"),
                field: None,
            })
        };
    }
    let signature = request.header("x-goog-signature");
    if !google::signature_valid(client_token, &request.body, signature) {
        return Err(bad_signature("X-Goog-Signature"));
    }
    match (message, webhook.map_err(invalid_callback)?) {
        (Some(inbound), _) => {
            ingest(ports, &org, &account, &inbound, found.collect()).await?;
        }
        (None, Webhook::Receipts { receipts, .. }) => {
            for (receipt, value) in receipts.iter().zip(found) {
                apply_status(kv, &org, value, &receipt.status, None, receipt_rank)?;
            }
        }
        // Typing and live-agent requests change nothing stored: every
        // conversation not with a bot is already routed to agents.
        _ => {}
    }
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
        text: text.clone(),
        attachments: attachments.clone(),
        profile_name: display_name.clone(),
    })
}
