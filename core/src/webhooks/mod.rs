//! The providers' webhooks (R-IN): one module per provider, each turning
//! its provider's callbacks into [`crate::conversations::ingest`] calls.
//!
//! A webhook URL carries only the account id, so the first read is the
//! account's global record, which names the organisation (or says the
//! account was deleted: 410, so the provider's console shows a clear
//! failure rather than a typo-shaped 404). Nothing is written before the
//! provider's signature has been checked with the account's secret (R-IN-2).

pub mod twilio;

use crate::api::ApiError;
use crate::config::accounts::global_key;
use crate::ports::KeyValue;
use serde::Deserialize;

#[derive(Deserialize)]
struct GlobalRecord {
    org: String,
    provider: String,
    #[serde(default)]
    deleted_at: Option<String>,
}

/// The organisation of a `provider` account named in a webhook URL.
pub fn organisation_of(
    kv: &dyn KeyValue,
    account_id: &str,
    provider: &str,
) -> Result<String, ApiError> {
    let unknown = || unknown_account(account_id, provider);
    if !crate::store::is_id(account_id) {
        return Err(unknown());
    }
    let record: GlobalRecord = match kv.get(&global_key(account_id))? {
        Some(bytes) => crate::store::decode(&global_key(account_id), &bytes)?,
        None => return Err(unknown()),
    };
    if record.provider != provider {
        return Err(unknown());
    }
    if let Some(deleted_at) = record.deleted_at {
        return Err(ApiError {
            status: 410,
            code: "account_deleted",
            message: format!("account {account_id} was deleted at {deleted_at}; remove this callback URL at the provider"),
            field: None,
        });
    }
    Ok(record.org)
}

pub fn unknown_account(account_id: &str, provider: &str) -> ApiError {
    ApiError {
        status: 404,
        code: "unknown_account",
        message: format!("no {provider} account {account_id}; check the callback URL configured at the provider (GET /api/accounts/{{id}} shows it)"),
        field: None,
    }
}

/// 403 for a request whose signature does not check out.
pub fn bad_signature(header: &str) -> ApiError {
    ApiError {
        status: 403,
        code: "invalid_signature",
        message: format!("the {header} header is missing or does not match this account's secret; nothing was stored"),
        field: None,
    }
}
