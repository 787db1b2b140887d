//! Replies and notices through Business Messages, with an access token
//! from the service account, cached for the account's next sends.

use super::{
    fetch_token, send, token_cache_key, Outgoing, Representative, ServiceAccount, Settings,
};
use crate::api::ApiError;
use crate::conversations::Author;
use crate::ports::Ports;
use crate::providers::{api_base, SendOutcome};
use crate::store;

/// How long before its expiry a cached Google access token is replaced, so
/// a token never expires between the check and Google's.
const TOKEN_MARGIN_MILLIS: i64 = 5 * 60_000;

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "gbm_api_base")?;
    let token = match google_token(ports, message.account_id, &settings.service_account).await? {
        Ok(token) => token,
        Err(outcome) => return Ok(outcome),
    };
    let message_id = ports.random.id128();
    let outgoing = Outgoing {
        access_token: &token,
        conversation_id: message.thread.customer,
        message_id: &message_id,
        text: message.content.text(),
        attachments: message.content.attachments(),
        representative: match message.author {
            Author::Agent => Representative::Human,
            Author::Customer | Author::Bot | Author::System | Author::Automation => {
                Representative::Bot
            }
        },
        display_name: None,
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}

/// A Business Messages access token for the account: the cached one while
/// it has more than a few minutes left, else a new one from Google, cached
/// for the next sends (by any instance) until shortly before it expires.
async fn google_token(
    ports: &Ports<'_>,
    account_id: &str,
    service_account: &str,
) -> Result<Result<String, SendOutcome>, ApiError> {
    let key = token_cache_key(account_id);
    let now = ports.clock.now_millis();
    if let Some(bytes) = ports.kv.get(&key)? {
        if let Ok(cached) = serde_json::from_slice::<CachedToken>(&bytes) {
            if cached.expires_at_millis - TOKEN_MARGIN_MILLIS > now {
                return Ok(Ok(cached.token));
            }
        }
    }
    let service_account = ServiceAccount::parse(service_account).map_err(|message| {
        ApiError::conflict(
            "invalid_service_account",
            format!(
                "account {} cannot reach Google: {message} (PATCH /api/accounts/{})",
                account_id, account_id
            ),
        )
    })?;
    let oauth_base = api_base(ports.variables, "google_oauth_base")?;
    match fetch_token(ports.http, &oauth_base, &service_account, now).await {
        Ok(token) => {
            let cached = CachedToken {
                token: token.token.clone(),
                expires_at_millis: token.expires_at_millis,
            };
            // A failed cache write costs the next send a token request only.
            let _ = ports.kv.set(&key, &store::encode(&cached));
            Ok(Ok(token.token))
        }
        Err(outcome) => Ok(Err(outcome)),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedToken {
    token: String,
    expires_at_millis: i64,
}
