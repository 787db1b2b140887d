//! `/webhooks/gbm/{accountId}`: Google's Business Messages webhook
//! (providers.md 4.1–4.3), as the core's events. Google retired the service
//! on 2024-07-31; this follows its documented protocol.
//!
//! The console's verification request carries the client token in its body
//! and is answered with its secret; every other request is signed with the
//! same client token (`X-Goog-Signature`, HMAC-SHA512 of the raw body). A
//! customer is a Business Messages conversation: its id is their address.
//! One request may carry many receipts: at most [`MAX_RECEIPT_IDS`].

use super::{Webhook, MAX_TEXT_CHARS};
use crate::api::{ApiError, Response};
use crate::auth::constant_time_eq;
use crate::conversations::ingest::Inbound;
use crate::providers::Event;
use crate::webhooks::{customer_text, echo, invalid_callback, too_many, Signer, MAX_RECEIPT_IDS};

/// The console's verification: answered with its secret when its client
/// token is the account's.
pub(super) fn handshake(
    webhook: &Result<Webhook, String>,
    signer: &Signer,
) -> Option<Result<Response, ApiError>> {
    let Ok(Webhook::Verification {
        client_token: given,
        secret,
    }) = webhook
    else {
        return None;
    };
    let account_id = &signer.account_id;
    Some(
        if constant_time_eq(given.as_bytes(), signer.secret.as_bytes()) {
            Ok(echo(secret))
        } else {
            Err(ApiError {
            status: 403,
            code: "verification_failed",
            message: format!("the clientToken does not match account {account_id}'s client_token; set the same token in the Business Communications console and in PATCH /api/accounts/{account_id}"),
            field: None,
        })
        },
    )
}

/// Typing and live-agent requests change nothing stored: every
/// conversation not with a bot is already routed to agents.
pub(super) fn events(webhook: Result<Webhook, String>) -> Result<Vec<Event>, ApiError> {
    Ok(match webhook.map_err(invalid_callback)? {
        Webhook::Message {
            agent_id,
            conversation_id,
            message_id,
            text,
            attachments,
            display_name,
        } => vec![Event::Message(Inbound {
            provider_message_id: message_id,
            customer_address: conversation_id,
            channel_address: agent_id,
            text: customer_text(&text, MAX_TEXT_CHARS),
            attachments,
            profile_name: display_name,
        })],
        Webhook::Receipts { receipts, .. } => {
            if receipts.len() > MAX_RECEIPT_IDS {
                let (count, limit) = (receipts.len(), MAX_RECEIPT_IDS);
                return Err(too_many("too_many_receipts", "receipts", count, limit));
            }
            receipts
                .into_iter()
                .map(|receipt| Event::Status {
                    message_id: receipt.message_id,
                    status: receipt.status,
                    error_code: None,
                    channel_address: None,
                })
                .collect()
        }
        Webhook::Verification { .. } | Webhook::UserStatus { .. } | Webhook::Other => Vec::new(),
    })
}
