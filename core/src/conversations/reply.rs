//! Replies (R-CONV-6): each channel's rules, enforced before the provider is
//! called, and the send itself through the conversation's account.
//!
//! The rules are checked here rather than left to the provider because the
//! provider's refusal comes late (Twilio reports 63016 asynchronously, in a
//! status callback) and says less: an agent should learn at once that the
//! WhatsApp window closed at a given time and that an approved template is
//! the way to reach the customer now.

use super::{Attachment, Author, Thread};
use crate::api::Response;
use crate::config::accounts::{Account, Settings};
use crate::error::{Error, ProviderFailure};
use crate::ports::Ports;
use crate::providers::{self, facebook, google, telesign, twilio, SendOutcome};
use crate::store;
use crate::templates::Rendered;
use serde_json::json;

const HOUR_MILLIS: i64 = 3_600_000;
/// WhatsApp and Messenger accept free-form messages for 24 hours after the
/// customer's last message.
pub const STANDARD_WINDOW_HOURS: i64 = 24;
/// Messenger's HUMAN_AGENT tag lets a person (never a bot) answer for 7 days.
pub const HUMAN_AGENT_WINDOW_HOURS: i64 = 7 * 24;
/// Twilio's limit for a message body, and SMS's (R-IN-5).
pub const MAX_TEXT_CHARS: usize = 1600;
/// How long before its expiry a cached Google access token is replaced, so
/// a token never expires between the check and Google's.
const TOKEN_MARGIN_MILLIS: i64 = 5 * 60_000;

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

    fn attachments(&self) -> &[Attachment] {
        match self {
            Content::Text { attachments, .. } => attachments,
            Content::Template { .. } => &[],
        }
    }
}

/// The end of the channel's standard free-form window after the customer's
/// last message, for channels that have one.
pub fn window_closes_at(channel: &str, last_customer_millis: i64) -> Option<i64> {
    matches!(channel, "whatsapp" | "facebook")
        .then_some(last_customer_millis + STANDARD_WINDOW_HOURS * HOUR_MILLIS)
}

/// How a free-form message may go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Inside the channel's standard window, or the channel has none.
    Open,
    /// Messenger, 24 hours to 7 days: a human agent's reply with the
    /// HUMAN_AGENT tag.
    HumanAgentTag,
}

/// Whether a free-form message (not a WhatsApp template) may go out at
/// `now_millis`, and how (R-CONV-6). `human_agent_tag` is the channel's
/// setting; `by_human` says an agent, not the bot, writes it.
pub fn free_form_window(
    channel: &str,
    human_agent_tag: bool,
    by_human: bool,
    last_customer_millis: Option<i64>,
    now_millis: i64,
) -> Result<Window, Undelivered> {
    let Some(last) = last_customer_millis else {
        return Ok(Window::Open);
    };
    let Some(closes) = window_closes_at(channel, last) else {
        return Ok(Window::Open);
    };
    if now_millis < closes {
        return Ok(Window::Open);
    }
    if channel != "facebook" {
        return Err(Undelivered::window_closed(channel, closes, false));
    }
    let tagged_until = last + HUMAN_AGENT_WINDOW_HOURS * HOUR_MILLIS;
    match (human_agent_tag && by_human, now_millis < tagged_until) {
        (true, true) => Ok(Window::HumanAgentTag),
        (true, false) => Err(Undelivered::window_closed(channel, tagged_until, false)),
        (false, _) => Err(Undelivered::window_closed(channel, closes, false)),
    }
}

/// A send that did not happen, with what the caller should be told.
#[derive(Debug)]
pub struct Undelivered {
    pub error: Error,
    /// Seconds the provider asked us to wait (429).
    pub retry_after: Option<u64>,
    /// When the free-form window closed, for 409 `reply_window_closed`.
    pub window_closed_at: Option<String>,
}

impl From<Error> for Undelivered {
    fn from(error: Error) -> Undelivered {
        Undelivered {
            error,
            retry_after: None,
            window_closed_at: None,
        }
    }
}

impl Undelivered {
    pub fn into_response(self) -> Response {
        let mut extra = serde_json::Map::new();
        if let Some(closed_at) = self.window_closed_at {
            extra.insert("window_closed_at".into(), json!(closed_at));
        }
        self.error.into_response_with(extra, self.retry_after)
    }

    /// 409: the channel's window for free-form messages closed at
    /// `closed_millis` (or, `by_provider`, the provider says so now).
    pub fn window_closed(channel: &str, closed_millis: i64, by_provider: bool) -> Undelivered {
        let closed_at = crate::time::rfc3339(closed_millis);
        let (who, what) = match channel {
            "facebook" => (
                "Facebook refused the message: ",
                "Messenger's window for replies closed at {closed_at} (24 hours after the customer's last message, or 7 days for a human agent when the channel's human_agent_tag is on); wait for the customer to write",
            ),
            _ => (
                "WhatsApp refused the message: ",
                "the 24-hour window for free-form WhatsApp messages closed at {closed_at}, 24 hours after the customer's last message; send an approved template instead ({\"template_id\": …}) or wait for the customer to write",
            ),
        };
        Undelivered {
            error: Error::conflict(
                "reply_window_closed",
                format!(
                    "{}{}",
                    if by_provider { who } else { "" },
                    what.replace("{closed_at}", &closed_at)
                ),
            ),
            retry_after: None,
            window_closed_at: Some(closed_at),
        }
    }
}

/// The provider's id and first status of a message that went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: String,
    pub status: String,
}

/// Sends `content` to the thread's customer through `account`, as
/// `author` and within `window` (from [`free_form_window`]).
pub async fn deliver(
    ports: &Ports<'_>,
    account: &Account,
    thread: Thread<'_>,
    content: &Content,
    author: Author,
    window: Window,
) -> Result<Sent, Undelivered> {
    let outcome = match &account.settings {
        Settings::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            let api_base = providers::api_base(ports.variables, "twilio_api_base")?;
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
            let from = format!("whatsapp:{}", thread.ours);
            let to = format!("whatsapp:{}", thread.customer);
            let callback = callback_url(ports, account);
            let outgoing = twilio::Outgoing {
                account_sid,
                auth_token,
                from: &from,
                to: &to,
                content: &body,
                status_callback: Some(&callback),
            };
            twilio::send(ports.http, &api_base, &outgoing).await
        }
        Settings::Telesign {
            customer_id,
            api_key,
            ..
        } => {
            let api_base = providers::api_base(ports.variables, "telesign_api_base")?;
            let callback = callback_url(ports, account);
            let sms = telesign::Sms {
                customer_id,
                api_key,
                phone_number: thread.customer.trim_start_matches('+'),
                sender_id: thread.ours,
                message: content.text(),
                external_id: None,
                callback_url: Some(&callback),
            };
            let nonce = ports.random.uuid();
            telesign::send_sms(
                ports.http,
                &api_base,
                &sms,
                ports.clock.now_millis(),
                &nonce,
            )
            .await
        }
        Settings::Facebook {
            app_secret, pages, ..
        } => {
            let api_base = providers::api_base(ports.variables, "graph_api_base")?;
            let page = pages
                .iter()
                .find(|page| page.page_id == thread.ours)
                .ok_or_else(|| page_removed(account, thread))?;
            let outgoing = facebook::Outgoing {
                page_token: &page.access_token,
                app_secret,
                psid: thread.customer,
                text: content.text(),
                attachments: content.attachments(),
                messaging_type: match window {
                    Window::Open => facebook::MessagingType::Response,
                    Window::HumanAgentTag => facebook::MessagingType::HumanAgent,
                },
            };
            facebook::send(ports.http, &api_base, &outgoing).await
        }
        Settings::Gbm {
            service_account, ..
        } => {
            let api_base = providers::api_base(ports.variables, "gbm_api_base")?;
            let token = match google_token(ports, account, service_account).await? {
                Ok(token) => token,
                Err(outcome) => {
                    return outcome_to_result(account, outcome, ports.clock.now_millis())
                }
            };
            let message_id = ports.random.id128();
            let outgoing = google::Outgoing {
                access_token: &token,
                conversation_id: thread.customer,
                message_id: &message_id,
                text: content.text(),
                attachments: content.attachments(),
                representative: match author {
                    Author::Agent => google::Representative::Human,
                    _ => google::Representative::Bot,
                },
                display_name: None,
            };
            google::send(ports.http, &api_base, &outgoing).await
        }
    };
    outcome_to_result(account, outcome, ports.clock.now_millis())
}

/// Where the provider posts this account's status callbacks.
fn callback_url(ports: &Ports<'_>, account: &Account) -> String {
    format!(
        "{}/webhooks/{}/{}",
        crate::config::public_base_url(ports.variables),
        account.settings.provider(),
        account.id
    )
}

fn page_removed(account: &Account, thread: Thread<'_>) -> Error {
    Error::conflict(
        "channel_removed",
        format!(
            "page {} is no longer connected to account {}; replies cannot be sent from it",
            thread.ours, account.id
        ),
    )
}

/// A Business Messages access token for the account: the cached one while
/// it has more than a few minutes left, else a new one from Google, cached
/// for the next sends (by any instance) until shortly before it expires.
async fn google_token(
    ports: &Ports<'_>,
    account: &Account,
    service_account: &str,
) -> Result<Result<String, SendOutcome>, Error> {
    let key = google::token_cache_key(&account.id);
    let now = ports.clock.now_millis();
    if let Some(bytes) = ports.kv.get(&key)? {
        if let Ok(cached) = serde_json::from_slice::<CachedToken>(&bytes) {
            if cached.expires_at_millis - TOKEN_MARGIN_MILLIS > now {
                return Ok(Ok(cached.token));
            }
        }
    }
    let service_account = google::ServiceAccount::parse(service_account).map_err(|message| {
        Error::conflict(
            "invalid_service_account",
            format!(
                "account {} cannot reach Google: {message} (PATCH /api/accounts/{})",
                account.id, account.id
            ),
        )
    })?;
    let oauth_base = providers::api_base(ports.variables, "google_oauth_base")?;
    match google::fetch_token(ports.http, &oauth_base, &service_account, now).await {
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

/// The error code of a message of ours handed to a provider whose answer
/// never came: it may have reached the customer (R-OPS-4).
pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// Whether a send that failed may still have reached the customer: the
/// provider was asked, but no answer came back. Such a message is shown as
/// unknown and never sent again on its own.
pub fn may_have_been_sent(error: &Error) -> bool {
    matches!(error, Error::Provider(ProviderFailure::Unreachable(_)))
}

/// The provider's answer as the API reports it.
fn outcome_to_result(
    account: &Account,
    outcome: SendOutcome,
    now_millis: i64,
) -> Result<Sent, Undelivered> {
    let provider = match account.settings.provider() {
        "twilio" => "Twilio",
        "telesign" => "TeleSign",
        "facebook" => "Facebook",
        _ => "Google",
    };
    match outcome {
        SendOutcome::Sent { id, status } => Ok(Sent {
            provider_message_id: id,
            status,
        }),
        SendOutcome::OutsideWindow { .. } => Err(Undelivered::window_closed(
            crate::conversations::ingest::channel_of(account.settings.provider()),
            now_millis,
            true,
        )),
        SendOutcome::RateLimited {
            retry_after_seconds,
            message,
        } => Err(Undelivered {
            error: Error::Provider(ProviderFailure::RateLimited(format!("{provider} is rate limiting this account ({message}); retry after the Retry-After delay"))),
            retry_after: Some(retry_after_seconds.unwrap_or(1)),
            window_closed_at: None,
        }),
        SendOutcome::Rejected {
            status,
            code,
            message,
        } => {
            let code_text = code
                .map(|c| format!(", {provider} error {c}"))
                .unwrap_or_default();
            Err(Error::Provider(ProviderFailure::Rejected(format!("{provider} refused the message (HTTP {status}{code_text}): {message}")))
            .into())
        }
        SendOutcome::Unreachable { message } => Err(Error::Provider(ProviderFailure::Unreachable(format!("{provider} could not be reached ({message}); retry later")))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAST: i64 = 1_800_000_000_000;

    fn window(channel: &str, tag: bool, by_human: bool, hours: i64) -> Result<Window, String> {
        free_form_window(
            channel,
            tag,
            by_human,
            Some(LAST),
            LAST + hours * HOUR_MILLIS,
        )
        .map_err(|refused| refused.window_closed_at.unwrap_or_default())
    }

    #[test]
    fn whatsapp_closes_after_24_hours() {
        assert_eq!(window("whatsapp", false, true, 23), Ok(Window::Open));
        assert_eq!(
            window("whatsapp", false, true, 24),
            Err(crate::time::rfc3339(LAST + 24 * HOUR_MILLIS))
        );
    }

    #[test]
    fn messenger_lets_human_agents_tag_replies_for_7_days_when_the_channel_allows() {
        assert_eq!(window("facebook", true, true, 23), Ok(Window::Open));
        assert_eq!(
            window("facebook", true, true, 72),
            Ok(Window::HumanAgentTag)
        );
        assert_eq!(
            window("facebook", true, true, 7 * 24),
            Err(crate::time::rfc3339(LAST + 7 * 24 * HOUR_MILLIS)),
            "closed at the end of the 7 days"
        );
        let standard_end = Err(crate::time::rfc3339(LAST + 24 * HOUR_MILLIS));
        assert_eq!(window("facebook", false, true, 72), standard_end, "tag off");
        assert_eq!(
            window("facebook", true, false, 72),
            standard_end,
            "bots may not tag"
        );
    }

    #[test]
    fn sms_and_business_messages_have_no_window() {
        for channel in ["sms", "gbm"] {
            assert_eq!(window(channel, false, true, 24 * 365), Ok(Window::Open));
        }
        assert!(
            matches!(
                free_form_window("whatsapp", false, true, None, LAST),
                Ok(Window::Open)
            ),
            "no customer message yet: nothing to measure from"
        );
    }
}
