//! Replies (R-CONV-6): each channel's rules, enforced before the provider is
//! called, and the send itself through the conversation's account.
//!
//! The rules are checked here rather than left to the provider because the
//! provider's refusal comes late (Twilio reports 63016 asynchronously, in a
//! status callback) and says less: an agent should learn at once that the
//! WhatsApp window closed at a given time and that an approved template is
//! the way to reach the customer now.

use super::{Attachment, Conversation};
use crate::api::{ApiError, Response};
use crate::config::accounts::{Account, Settings};
use crate::ports::Ports;
use crate::providers::{self, twilio};
use crate::templates::Rendered;
use serde_json::json;

const HOUR_MILLIS: i64 = 3_600_000;
/// WhatsApp accepts free-form messages for 24 hours after the customer's
/// last message; after that, approved templates only.
pub const WHATSAPP_WINDOW_HOURS: i64 = 24;
/// Twilio's limit for a message body, and SMS's (R-IN-5).
pub const MAX_TEXT_CHARS: usize = 1600;

/// What goes to the customer.
#[derive(Debug, Clone)]
pub enum Content {
    Text {
        text: String,
        attachments: Vec<Attachment>,
    },
    Template {
        template_id: String,
        rendered: Rendered,
    },
}

impl Content {
    pub fn text(&self) -> &str {
        match self {
            Content::Text { text, .. } => text,
            Content::Template { rendered, .. } => &rendered.text,
        }
    }
}

/// The end of the channel's free-form window after the customer's last
/// message, for channels that have one.
pub fn window_closes_at(channel: &str, last_customer_millis: i64) -> Option<i64> {
    (channel == "whatsapp").then_some(last_customer_millis + WHATSAPP_WINDOW_HOURS * HOUR_MILLIS)
}

/// A send that did not happen, with what the caller should be told.
#[derive(Debug)]
pub struct Undelivered {
    pub error: ApiError,
    /// Seconds the provider asked us to wait (429).
    pub retry_after: Option<u64>,
    /// When the free-form window closed, for 409 `reply_window_closed`.
    pub window_closed_at: Option<String>,
}

impl From<ApiError> for Undelivered {
    fn from(error: ApiError) -> Undelivered {
        Undelivered {
            error,
            retry_after: None,
            window_closed_at: None,
        }
    }
}

impl Undelivered {
    pub fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.error.code, "message": self.error.message}});
        if let Some(field) = &self.error.field {
            body["error"]["field"] = json!(field);
        }
        if let Some(closed_at) = self.window_closed_at {
            body["error"]["window_closed_at"] = json!(closed_at);
        }
        let response = Response::json(self.error.status, &body);
        match self.retry_after {
            Some(seconds) => response.with_header("retry-after", &seconds.to_string()),
            None => response,
        }
    }

    /// 409: the window for free-form messages closed at `closed_at`.
    pub fn window_closed(closed_at: &str, by_provider: bool) -> Undelivered {
        let who = if by_provider {
            "WhatsApp refused the message: "
        } else {
            ""
        };
        Undelivered {
            error: ApiError::conflict(
                "reply_window_closed",
                format!(
                    "{who}the 24-hour window for free-form WhatsApp messages closed at {closed_at}, 24 hours after the customer's last message; send an approved template instead ({{\"template_id\": …}}) or wait for the customer to write"
                ),
            ),
            retry_after: None,
            window_closed_at: Some(closed_at.to_owned()),
        }
    }
}

/// The provider's id and first status of a message that went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: String,
    pub status: String,
}

/// Sends `content` to the conversation's customer through its account.
pub async fn deliver(
    ports: &Ports<'_>,
    account: &Account,
    conversation: &Conversation,
    content: &Content,
) -> Result<Sent, Undelivered> {
    match &account.settings {
        Settings::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            let api_base = providers::api_base(ports.variables, "twilio_api_base")?;
            let callback = format!(
                "{}/webhooks/twilio/{}",
                crate::config::public_base_url(ports.variables),
                account.id
            );
            let body = match content {
                Content::Text { text, attachments } => twilio::Content::Text {
                    body: text.clone(),
                    media_urls: attachments.iter().map(|a| a.url.clone()).collect(),
                },
                Content::Template { rendered, .. } => twilio::Content::Template {
                    content_sid: rendered.content_sid.clone().unwrap_or_default(),
                    variables: rendered.content_variables.clone().unwrap_or_default(),
                },
            };
            let from = format!("whatsapp:{}", conversation.channel_address);
            let to = format!("whatsapp:{}", conversation.customer_address);
            let outgoing = twilio::Outgoing {
                account_sid,
                auth_token,
                from: &from,
                to: &to,
                content: &body,
                status_callback: Some(&callback),
            };
            match twilio::send(ports.http, &api_base, &outgoing).await {
                providers::SendOutcome::Sent { id, status } => Ok(Sent {
                    provider_message_id: id,
                    status,
                }),
                providers::SendOutcome::OutsideWindow { .. } => Err(Undelivered::window_closed(
                    &crate::time::rfc3339(ports.clock.now_millis()),
                    true,
                )),
                providers::SendOutcome::RateLimited {
                    retry_after_seconds,
                    message,
                } => Err(Undelivered {
                    error: ApiError {
                        status: 429,
                        code: "provider_rate_limited",
                        message: format!("Twilio is rate limiting this account ({message}); retry after the Retry-After delay"),
                        field: None,
                    },
                    retry_after: Some(retry_after_seconds.unwrap_or(1)),
                    window_closed_at: None,
                }),
                providers::SendOutcome::Rejected {
                    status,
                    code,
                    message,
                } => {
                    let code_text = code.map(|c| format!(", Twilio error {c}")).unwrap_or_default();
                    Err(ApiError {
                        status: 502,
                        code: "provider_rejected",
                        message: format!(
                            "Twilio refused the message (HTTP {status}{code_text}): {message}"
                        ),
                        field: None,
                    }
                    .into())
                }
                providers::SendOutcome::Unreachable { message } => Err(ApiError {
                    status: 502,
                    code: "provider_unreachable",
                    message: format!("Twilio could not be reached ({message}); retry later"),
                    field: None,
                }
                .into()),
            }
        }
        settings => Err(ApiError::conflict(
            "channel_not_supported",
            format!(
                "replies through {} accounts are not supported yet",
                settings.provider()
            ),
        )
        .into()),
    }
}
