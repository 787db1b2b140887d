//! Replies and notices through Business Messages, with an access token
//! from the service account, cached for the account's next sends.

use super::*;
use crate::api::ApiError;
use crate::conversations::Author;
use crate::ports::Ports;
use crate::providers::{api_base, SendOutcome};
use crate::store;

/// Who a message is from, as Google shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representative {
    Human,
    Bot,
}

impl Representative {
    fn name(self) -> &'static str {
        match self {
            Representative::Human => "HUMAN",
            Representative::Bot => "BOT",
        }
    }
}

/// One message to send in a conversation. Not `Debug`: it holds the
/// access token.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub access_token: &'a str,
    pub conversation_id: &'a str,
    /// Ours, unique: Google treats it as an idempotency key.
    pub message_id: &'a str,
    pub text: &'a str,
    /// Sent as images: Business Messages has no other kind of media.
    pub attachments: &'a [Attachment],
    pub representative: Representative,
    pub display_name: Option<&'a str>,
}

/// Creates the message with `POST /v1/conversations/{id}/messages`
/// (providers.md 4.4): the text, then each attachment as an image message
/// of its own. The first message has `message_id`; the `n`th after it
/// `{message_id}-{n}`. The first failure stops the rest and is returned;
/// retrying the whole send is safe, since Google answers `ALREADY_EXISTS`
/// for the messages that went out, and that counts as sent.
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let secrets = [message.access_token];
    let url = endpoint(
        api_base,
        &format!(
            "/v1/conversations/{}/messages",
            percent_encode(message.conversation_id)
        ),
    );
    let mut representative = json!({"representativeType": message.representative.name()});
    if let Some(name) = message.display_name {
        representative["displayName"] = name.into();
    }
    for (n, (field, content)) in contents(message).into_iter().enumerate() {
        let message_id = match n {
            0 => message.message_id.to_owned(),
            n => format!("{}-{n}", message.message_id),
        };
        let mut body = json!({
            "messageId": message_id,
            "representative": representative,
        });
        body[field] = content;
        let request = OutboundRequest {
            method: Method::Post,
            url: url.clone(),
            headers: vec![
                (
                    "Authorization".to_owned(),
                    format!("Bearer {}", message.access_token),
                ),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ],
            body: body.to_string().into_bytes(),
            timeout: None,
            max_response_bytes: None,
        };
        match http.send(request).await {
            Ok(response) => {
                if let Some(failure) = failure(&response, &secrets) {
                    return failure;
                }
            }
            Err(error) => {
                return SendOutcome::Unreachable {
                    message: scrub(error.to_string(), &secrets),
                }
            }
        }
    }
    SendOutcome::Sent {
        id: message.message_id.to_owned(),
        status: "sent".to_owned(),
    }
}

/// Each message's content field and value, in sending order: the text
/// (even empty when there is nothing else, for Google to refuse), then one
/// image per attachment.
pub(super) fn contents(message: &Outgoing<'_>) -> Vec<(&'static str, Value)> {
    let mut contents = Vec::new();
    if !message.text.is_empty() || message.attachments.is_empty() {
        contents.push(("text", Value::from(message.text)));
    }
    contents.extend(
        message
            .attachments
            .iter()
            .map(|attachment| ("image", json!({"contentInfo": {"fileUrl": attachment.url}}))),
    );
    contents
}

/// What a refused message means for the caller; `None` when it was
/// created, now or by an earlier try (`ALREADY_EXISTS`).
pub(super) fn failure(response: &OutboundResponse, secrets: &[&str]) -> Option<SendOutcome> {
    let status = response.status;
    if (200..=299).contains(&status) {
        return None;
    }
    let body = json(&response.body);
    let google_status = body.as_ref().and_then(|body| text(body, "/error/status"));
    if status == 409 || google_status == Some("ALREADY_EXISTS") {
        return None;
    }
    let said = body.as_ref().and_then(|body| text(body, "/error/message"));
    let message = scrub(
        match (said, google_status) {
            (Some(said), Some(google_status)) => format!("{said} ({google_status})"),
            (Some(said), None) => said.to_owned(),
            (None, Some(google_status)) => format!("HTTP {status} ({google_status})"),
            (None, None) => http_status(status),
        },
        secrets,
    );
    Some(
        if status == 429 || google_status == Some("RESOURCE_EXHAUSTED") {
            SendOutcome::RateLimited {
                retry_after_seconds: retry_after(&response.headers),
                message,
            }
        } else {
            SendOutcome::Rejected {
                status,
                code: None,
                message,
            }
        },
    )
}

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
