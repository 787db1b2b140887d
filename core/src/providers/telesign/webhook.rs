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

use super::MAX_MO_CHARS;
use super::{callback_signature_valid, parse_callback, status_name, Callback, Settings};
use crate::api::{ApiError, Request};
use crate::conversations::ingest::Inbound;
use crate::providers::Event;
use crate::webhooks::{customer_text, invalid_callback};

pub(super) fn signed(request: &Request, api_key: &str) -> bool {
    ["authorization", "x-ts-authorization"]
        .iter()
        .any(|name| callback_signature_valid(api_key, &request.body, request.header(name)))
}

/// The callback's event. TeleSign may leave `sender_id` empty: the number
/// the customer texted is then the account's only one ([`complete`]).
pub(super) fn events(request: &Request) -> Result<Vec<Event>, ApiError> {
    Ok(vec![
        match parse_callback(&request.body).map_err(invalid_callback)? {
            Callback::Message(sms) => Event::Message(Inbound {
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
) -> Result<(), ApiError> {
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
