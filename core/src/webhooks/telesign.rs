//! `/webhooks/telesign/{accountId}`: inbound SMS and delivery reports from
//! TeleSign's Transaction Callback Service (providers.md 2.3–2.5).
//!
//! TeleSign signs the raw body alone with the account's API key and sends
//! the signature in both `Authorization` and `X-TS-Authorization`; either
//! checking out is enough. Nothing in the signature binds the URL or a
//! time, so a replayed callback is caught by the dedupe on `reference_id`.
//! TeleSign retries anything but 200, so every accepted callback — stored,
//! duplicate or about a message we never sent — answers 200.

use super::{bad_signature, customer_text, invalid_callback, read_account, signer};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::config::accounts::Account;
use crate::conversations::ingest::{apply_status, ingest, thread_keys, Inbound};
use crate::conversations::provider_message_key;
use crate::error::Error;
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

async fn serve(request: &Request, ports: &Ports<'_>) -> Result<(), Error> {
    let ["webhooks", "telesign", account_id] = request.segments()[..] else {
        return Err(Error::no_route(&request.path));
    };
    let kv = ports.kv;
    let signer = signer(kv, account_id, "telesign")?;
    let signed = ["authorization", "x-ts-authorization"].iter().any(|name| {
        telesign::callback_signature_valid(&signer.secret, &request.body, request.header(name))
    });
    if !signed {
        return Err(bad_signature("Authorization"));
    }
    let org = &signer.org;
    match telesign::parse_callback(&request.body).map_err(invalid_callback)? {
        // TeleSign may leave sender_id empty; the account's number is then
        // known only after the account is read.
        Callback::Message(sms) if sms.to.is_empty() => {
            let (account, _) = read_account(kv, org, account_id, "telesign", Vec::new())?;
            let inbound = inbound(&sms, &only_number(&account)?);
            let now = ports.clock.now_millis();
            let found = kv.get_many(&thread_keys(org, account_id, "telesign", &inbound, now))?;
            ingest(ports, org, &account, &inbound, found).await?;
        }
        Callback::Message(sms) => {
            let inbound = inbound(&sms, &sms.to);
            let now = ports.clock.now_millis();
            let keys = thread_keys(org, account_id, "telesign", &inbound, now);
            let (account, found) = read_account(kv, org, account_id, "telesign", keys)?;
            ingest(ports, org, &account, &inbound, found.collect()).await?;
        }
        Callback::Status(report) => {
            let status = telesign::status_name(report.code);
            let code = report.code.to_string();
            apply_status(
                kv,
                org,
                kv.get(&provider_message_key(org, "telesign", &report.reference_id))?,
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
        text: customer_text(&sms.text, telesign::MAX_MO_CHARS),
        attachments: Vec::new(),
        profile_name: None,
    }
}

/// The number an MO without `sender_id` was sent to: the account's only one.
fn only_number(account: &Account) -> Result<String, Error> {
    match account.addresses()[..] {
        [number] => Ok(number.to_owned()),
        _ => Err(invalid_callback(format!(
            "the callback names no sender_id and account {} has several numbers, so the number the customer texted is unknown; ask TeleSign to include sender_id",
            account.id
        ))),
    }
}
