//! Replies and notices through the Send API, from the conversation's page,
//! tagged HUMAN_AGENT when the reply window calls for it.

use super::*;
use crate::api::ApiError;
use crate::conversations::reply::Window;
use crate::ports::Ports;
use crate::providers::{api_base, SendOutcome};

/// Graph's subcode for a message outside the allowed window (code 10).
pub(super) const OUTSIDE_WINDOW: i64 = 2018278;
/// Graph's rate limits: application, user, page and API call limits.
pub(super) const RATE_LIMIT_CODES: [i64; 4] = [4, 17, 32, 613];
/// Graph's invalid or expired access token.
pub(super) const INVALID_TOKEN: i64 = 190;

/// Why the page may message the customer now (providers.md 3.4 "Windows").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    /// Within 24 h of the customer's last message.
    Response,
    /// 24 h – 7 days, a human agent's reply: `MESSAGE_TAG` + `HUMAN_AGENT`.
    HumanAgent,
}

/// One message to a customer, with the page credentials it is sent with.
/// No `Debug`: it holds the page token and the app secret.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub page_token: &'a str,
    pub app_secret: &'a str,
    pub psid: &'a str,
    pub text: &'a str,
    pub attachments: &'a [Attachment],
    pub messaging_type: MessagingType,
}

/// The Send API's JSON body.
#[derive(Serialize)]
pub(super) struct SendRequest<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    message: Part<'a>,
}

#[derive(Serialize)]
pub(super) struct Recipient<'a> {
    id: &'a str,
}

/// A Messenger message holds text or one attachment, never both.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Part<'a> {
    Text(&'a str),
    Attachment {
        #[serde(rename = "type")]
        kind: &'static str,
        payload: Payload<'a>,
    },
}

#[derive(Serialize)]
pub(super) struct Payload<'a> {
    url: &'a str,
    /// Each attachment is sent once; a reusable one would be kept by
    /// Facebook for an `attachment_id` nobody asks for.
    is_reusable: bool,
}

impl<'a> Part<'a> {
    /// Messenger's attachment type by the content type's top level.
    fn attachment(attachment: &'a Attachment) -> Part<'a> {
        let top = attachment
            .content_type
            .split('/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let kind = match top.as_str() {
            "image" => "image",
            "video" => "video",
            "audio" => "audio",
            _ => "file",
        };
        Part::Attachment {
            kind,
            payload: Payload {
                url: &attachment.url,
                is_reusable: false,
            },
        }
    }
}

/// Sends the message with `POST /{version}/me/messages` (providers.md 3.4):
/// the text first, then one request per attachment, since a Messenger
/// message carries either. An empty text is only sent when there is no
/// attachment, for Graph to refuse.
///
/// `Sent` carries the first request's `message_id`. The first failure stops
/// the sending and is returned as it is, though the parts before it were
/// delivered: the customer has them, so sending everything again would
/// repeat them.
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let proof = appsecret_proof(message.app_secret, message.page_token);
    let secrets = [message.page_token, message.app_secret, proof.as_str()];
    let url = endpoint(
        api_base,
        &format!(
            "/{GRAPH_API_VERSION}/me/messages?access_token={}&appsecret_proof={}",
            percent_encode(message.page_token),
            percent_encode(&proof)
        ),
    );
    let (first, rest) = match message.attachments.split_first() {
        Some((attachment, rest)) if message.text.is_empty() => (Part::attachment(attachment), rest),
        _ => (Part::Text(message.text), message.attachments),
    };
    let id = match post(http, &url, message, first, &secrets).await {
        SendOutcome::Sent { id, .. } => id,
        refused => return refused,
    };
    for attachment in rest {
        let part = Part::attachment(attachment);
        match post(http, &url, message, part, &secrets).await {
            SendOutcome::Sent { .. } => {}
            refused => return refused,
        }
    }
    SendOutcome::Sent {
        id,
        status: "sent".to_owned(),
    }
}

/// One Send API request for one part of the message.
pub(super) async fn post(
    http: &dyn OutboundHttp,
    url: &str,
    message: &Outgoing<'_>,
    part: Part<'_>,
    secrets: &[&str],
) -> SendOutcome {
    let (messaging_type, tag) = match message.messaging_type {
        MessagingType::Response => ("RESPONSE", None),
        MessagingType::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
    };
    let body = SendRequest {
        recipient: Recipient { id: message.psid },
        messaging_type,
        tag,
        message: part,
    };
    let request = OutboundRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_vec(&body).expect("a send request always serialises"),
        timeout: None,
        max_response_bytes: None,
    };
    match http.send(request).await {
        Ok(response) => outcome(&response, secrets),
        Err(error) => SendOutcome::Unreachable {
            message: scrub(error.to_string(), secrets),
        },
    }
}

pub(super) fn outcome(response: &OutboundResponse, secrets: &[&str]) -> SendOutcome {
    let status = response.status;
    let body = json(&response.body);
    let error = body.as_ref().and_then(|body| body.get("error"));
    if (200..=299).contains(&status) && error.is_none() {
        return match body.as_ref().and_then(|body| text(body, "/message_id")) {
            Some(id) => SendOutcome::Sent {
                id: id.to_owned(),
                status: "sent".to_owned(),
            },
            None => SendOutcome::Rejected {
                status,
                code: None,
                message: format!("Graph answered HTTP {status} without a message_id"),
            },
        };
    }
    let number = |name: &str| error.and_then(|error| error.get(name)?.as_i64());
    let (code, subcode) = (number("code"), number("error_subcode"));
    let message = scrub(
        error
            .and_then(|error| text(error, "/message"))
            .map_or_else(|| http_status(status), str::to_owned),
        secrets,
    );
    if subcode == Some(OUTSIDE_WINDOW) {
        return SendOutcome::OutsideWindow { message };
    }
    if status == 429 || code.is_some_and(|code| RATE_LIMIT_CODES.contains(&code)) {
        return SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message,
        };
    }
    let message = if code == Some(INVALID_TOKEN) {
        format!(
            "{message}: the page's access token no longer works; get a new page token \
             and save it with PATCH /api/accounts/{{id}}"
        )
    } else {
        message
    };
    SendOutcome::Rejected {
        status,
        code,
        message,
    }
}

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "graph_api_base")?;
    let thread = message.thread;
    let page = settings
        .pages
        .iter()
        .find(|page| page.page_id == thread.ours)
        .ok_or_else(|| page_removed(thread.ours, message.account_id))?;
    let outgoing = Outgoing {
        page_token: &page.access_token,
        app_secret: &settings.app_secret,
        psid: thread.customer,
        text: message.content.text(),
        attachments: message.content.attachments(),
        messaging_type: match message.window {
            Window::Open => MessagingType::Response,
            Window::HumanAgentTag => MessagingType::HumanAgent,
        },
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}

fn page_removed(page_id: &str, account_id: &str) -> ApiError {
    ApiError::conflict(
        "channel_removed",
        format!(
            "page {page_id} is no longer connected to account {account_id}; replies cannot be sent from it"
        ),
    )
}
