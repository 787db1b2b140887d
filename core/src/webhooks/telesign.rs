//! `/webhooks/telesign/{accountId}`: inbound SMS and delivery reports from
//! TeleSign's Transaction Callback Service (providers.md 2.3–2.5).
//!
//! TeleSign signs the raw body alone with the account's API key and sends
//! the signature in both `Authorization` and `X-TS-Authorization`; either
//! checking out is enough. Nothing in the signature binds the URL or a
//! time, so a replayed callback is caught by the dedupe on `reference_id`.
//! TeleSign retries anything but 200, so every accepted callback — stored,
//! duplicate or about a message we never sent — answers 200.

use super::{bad_signature, invalid_callback, organisation_of, read_account, unknown_account};
use crate::api::{method_not_allowed, ApiError, Method, Request, Response};
use crate::config::accounts::{Account, Settings};
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::provider_message_key;
use crate::conversations::reply::MAX_TEXT_CHARS;
use crate::ports::Ports;
use crate::providers::telesign::{self, Callback};
use serde_json::json;

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    if request.method != Method::Post {
        return method_not_allowed(&["POST"]);
    }
    match serve(request, ports).await {
        Ok(()) => Response::json(200, &json!({"received": true})),
        Err(error) => error.into_response(),
    }
}

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<(), ApiError> {
    let ["webhooks", "telesign", account_id] = request.segments()[..] else {
        return Err(ApiError::not_found(&request.path));
    };
    let kv = ports.kv;
    let org = organisation_of(kv, account_id, "telesign")?;
    let callback = telesign::parse_callback(&request.body);
    let keys = match &callback {
        // TeleSign may leave sender_id empty; the account's number is then
        // known only after the account is read.
        Ok(Callback::Message(sms)) if !sms.to.is_empty() => thread_keys(
            &org,
            account_id,
            "telesign",
            &inbound(sms, &sms.to),
            ports.clock.now_millis(),
        ),
        Ok(Callback::Status(report)) => {
            vec![provider_message_key(&org, "telesign", &report.reference_id)]
        }
        _ => Vec::new(),
    };
    let (account, mut found) = read_account(kv, &org, account_id, "telesign", keys)?;
    let Settings::Telesign { api_key, .. } = &account.settings else {
        return Err(unknown_account(account_id, "telesign"));
    };
    let signed = ["authorization", "x-ts-authorization"].iter().any(|name| {
        telesign::callback_signature_valid(api_key, &request.body, request.header(name))
    });
    if !signed {
        return Err(bad_signature("Authorization"));
    }
    match callback.map_err(invalid_callback)? {
        Callback::Message(sms) => {
            let characters = sms.text.chars().count();
            if characters > MAX_TEXT_CHARS {
                return Err(ApiError {
                    status: 422,
                    code: "text_too_long",
                    message: format!("the SMS has {characters} characters; SMS messages are at most {MAX_TEXT_CHARS}, so it was not stored"),
                    field: Some("user_response.mo_message".into()),
                });
            }
            let (inbound, found) = if sms.to.is_empty() {
                let inbound = inbound(&sms, &only_number(&account)?);
                let found = kv.get_many(&thread_keys(
                    &org,
                    account_id,
                    "telesign",
                    &inbound,
                    ports.clock.now_millis(),
                ))?;
                (inbound, found)
            } else {
                (inbound(&sms, &sms.to), found.collect())
            };
            ingest(ports, &org, &account, &inbound, found).await?;
        }
        Callback::Status(report) => {
            let status = telesign::status_name(report.code);
            let code = report.code.to_string();
            apply_status(
                kv,
                &org,
                found.next().flatten(),
                status,
                (status == "failed").then_some(code.as_str()),
                telesign::status_rank,
            )?;
        }
    }
    Ok(())
}

fn inbound(sms: &telesign::MoSms, to: &str) -> Inbound {
    Inbound {
        provider_message_id: sms.reference_id.clone(),
        customer_address: sms.from.clone(),
        channel_address: to.to_owned(),
        text: sms.text.clone(),
        attachments: Vec::new(),
        profile_name: None,
    }
}

/// The number an MO without `sender_id` was sent to: the account's only one.
fn only_number(account: &Account) -> Result<String, ApiError> {
    match account.addresses()[..] {
        [number] => Ok(number.to_owned()),
        _ => Err(invalid_callback(format!(
            "the callback names no sender_id and account {} has several numbers, so the number the customer texted is unknown; ask TeleSign to include sender_id",
            account.id
        ))),
    }
}
