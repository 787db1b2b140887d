//! The providers' webhooks (R-IN): one module per provider, each turning
//! its provider's callbacks into [`crate::conversations::ingest`] calls.
//!
//! A webhook URL carries only the account id, so the first read is the
//! account's global record, which names the organisation (or says the
//! account was deleted: 410, so the provider's console shows a clear
//! failure rather than a typo-shaped 404). Nothing is written before the
//! provider's signature has been checked with the account's secret (R-IN-2).

pub mod facebook;
pub mod gbm;
pub mod telesign;
pub mod twilio;

use crate::api::{ApiError, Response};
use crate::config::accounts::{global_key, Account};
use crate::ports::KeyValue;
use crate::store;
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

/// The values of keys read together, in the order asked for.
pub type Found = std::vec::IntoIter<Option<Vec<u8>>>;

/// The account named in a webhook URL and the values of `keys`, in one
/// read round trip.
pub fn read_account(
    kv: &dyn KeyValue,
    org: &str,
    account_id: &str,
    provider: &str,
    keys: Vec<String>,
) -> Result<(Account, Found), ApiError> {
    let account_key = store::document_key::<Account>(org, account_id);
    let mut all = Vec::with_capacity(keys.len() + 1);
    all.push(account_key.clone());
    all.extend(keys);
    let mut found = kv.get_many(&all)?.into_iter();
    let account: Account = match found.next().flatten() {
        Some(bytes) => store::decode(&account_key, &bytes)?,
        None => return Err(unknown_account(account_id, provider)),
    };
    if account.settings.provider() != provider {
        return Err(unknown_account(account_id, provider));
    }
    Ok((account, found))
}

/// 400 for a signed callback the gateway cannot read.
pub fn invalid_callback(message: String) -> ApiError {
    ApiError {
        status: 400,
        code: "invalid_callback",
        message,
        field: None,
    }
}

/// A handshake answer: the value the provider sent, echoed as plain text.
pub fn echo(value: &str) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: value.as_bytes().to_vec(),
    }
}
