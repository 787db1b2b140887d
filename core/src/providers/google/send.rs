//! Replies and notices through Business Messages, with an access token
//! from the service account, cached for the account's next sends.

use super::*;
use crate::error::Error;
use crate::message::Author;
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
) -> Result<SendOutcome, Error> {
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
) -> Result<Result<String, SendOutcome>, Error> {
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
        Error::conflict(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const API: &str = "https://businessmessages.googleapis.com/";
    const ACCESS_TOKEN: &str = "ya29.a0Af-secret+token";

    fn outgoing<'a>(
        text: &'a str,
        attachments: &'a [Attachment],
        representative: Representative,
        display_name: Option<&'a str>,
    ) -> Outgoing<'a> {
        Outgoing {
            access_token: ACCESS_TOKEN,
            conversation_id: "conv/1 ü",
            message_id: "out-1",
            text,
            attachments,
            representative,
            display_name,
        }
    }

    fn created(request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let mut message: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let name = format!(
            "conversations/c/messages/{}",
            message["messageId"].as_str().unwrap()
        );
        message["name"] = name.into();
        reply(200, &message.to_string())
    }

    const MESSAGES_URL: &str =
        "https://businessmessages.googleapis.com/v1/conversations/conv%2F1%20%C3%BC/messages";

    fn sent_text(request: &OutboundRequest) -> String {
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, MESSAGES_URL);
        assert_eq!(
            request.headers,
            vec![
                ("Authorization".to_owned(), format!("Bearer {ACCESS_TOKEN}")),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ]
        );
        String::from_utf8(request.body.clone()).unwrap()
    }

    #[test]
    fn sends_a_humans_text_with_a_bearer_token() {
        let http = ScriptedHttp::new(created);
        let message = outgoing("Hi \"there\" 👋", &[], Representative::Human, Some("Ana"));
        assert_eq!(
            block_on(send(&http, API, &message)),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent_text(&sent[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN","displayName":"Ana"},"text":"Hi \"there\" 👋"}"#
        );
    }

    #[test]
    fn sends_a_bots_text_without_a_display_name() {
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("Hello", &[], Representative::Bot, None),
        ));
        assert_eq!(
            sent_text(&http.sent()[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"BOT"},"text":"Hello"}"#
        );
    }

    fn attachments() -> Vec<Attachment> {
        ["https://cdn.example/a.jpg", "https://cdn.example/b.png?x=1"]
            .map(|url| Attachment {
                url: url.into(),
                content_type: "image/jpeg".into(),
            })
            .to_vec()
    }

    #[test]
    fn each_attachment_is_an_image_message_after_the_text() {
        let http = ScriptedHttp::new(created);
        let attachments = attachments();
        let outcome = block_on(send(
            &http,
            API,
            &outgoing("Look", &attachments, Representative::Human, None),
        ));
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let bodies: Vec<String> = http.sent().iter().map(sent_text).collect();
        assert_eq!(
            bodies,
            [
                r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN"},"text":"Look"}"#,
                r#"{"messageId":"out-1-1","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/a.jpg"}}}"#,
                r#"{"messageId":"out-1-2","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/b.png?x=1"}}}"#,
            ]
        );

        // Without text the first image takes the message id.
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("", &attachments, Representative::Bot, None),
        ));
        let ids: Vec<String> = http
            .sent()
            .iter()
            .map(|request| serde_json::from_slice::<serde_json::Value>(&request.body).unwrap())
            .map(|body| body["messageId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["out-1", "out-1-1"]);
    }

    fn google_error(status: u16, google_status: &str, message: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: Vec::new(),
            body: json!({"error": {"code": status, "message": message, "status": google_status}})
                .to_string()
                .into_bytes(),
        }
    }

    #[test]
    fn already_exists_is_a_retry_that_counts_as_sent() {
        let http = ScriptedHttp::new(|_| {
            Ok(google_error(
                409,
                "ALREADY_EXISTS",
                "Message with id out-1 already exists.",
            ))
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        assert_eq!(http.sent().len(), 3);
    }

    #[test]
    fn the_first_failure_stops_the_send() {
        let http = ScriptedHttp::new(|request| {
            if String::from_utf8_lossy(&request.body).contains("\"image\"") {
                Ok(google_error(
                    400,
                    "FAILED_PRECONDITION",
                    "The device cannot render this message.",
                ))
            } else {
                created(request)
            }
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Rejected {
                status: 400,
                code: None,
                message: "The device cannot render this message. (FAILED_PRECONDITION)".into()
            }
        );
        assert_eq!(http.sent().len(), 2);
    }

    fn send_answered(response: OutboundResponse) -> SendOutcome {
        let http = ScriptedHttp::new(move |_| Ok(response.clone()));
        block_on(send(
            &http,
            API,
            &outgoing("Hi", &[], Representative::Bot, None),
        ))
    }

    #[test]
    fn rate_limits_and_refusals_carry_googles_words() {
        let mut limited = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.");
        limited.headers = vec![("retry-after".into(), "12".into())];
        assert_eq!(
            send_answered(limited),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(12),
                message: "Quota exceeded. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(403, "RESOURCE_EXHAUSTED", "Per-user limit.")),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "Per-user limit. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials."
            )),
            SendOutcome::Rejected {
                status: 401,
                code: None,
                message: "Request had invalid authentication credentials. (UNAUTHENTICATED)".into()
            }
        );
        assert_eq!(
            send_answered(OutboundResponse {
                status: 502,
                headers: Vec::new(),
                body: b"<html>Bad Gateway</html>".to_vec(),
            }),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
    }

    #[test]
    fn send_messages_never_carry_the_access_token() {
        assert_eq!(
            send_answered(google_error(
                403,
                "PERMISSION_DENIED",
                &format!("token {ACCESS_TOKEN} may not")
            )),
            SendOutcome::Rejected {
                status: 403,
                code: None,
                message: "token [redacted] may not (PERMISSION_DENIED)".into()
            }
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("refused {:?}", request.headers[0].1)))
        });
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Hi", &[], Representative::Bot, None)
            )),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: refused \"Bearer [redacted]\"".into()
            }
        );
    }
}
