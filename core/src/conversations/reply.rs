//! Replies (R-CONV-6): each channel's rules, enforced before the provider is
//! called, and the send itself through the conversation's account.
//!
//! The rules are checked here rather than left to the provider because the
//! provider's refusal comes late (Twilio reports 63016 asynchronously, in a
//! status callback) and says less: an agent should learn at once that the
//! WhatsApp window closed at a given time and that an approved template is
//! the way to reach the customer now.

use crate::api::Response;
use crate::channel::Channel;
use crate::config::accounts::Account;
use crate::error::{Error, ProviderFailure};
use crate::message::{Author, Content, Thread, Window};
use crate::ports::Ports;
use crate::providers::{Outgoing, ReplyWindow, SendOutcome};
use crate::time::Timestamp;
use serde_json::json;

const HOUR_MILLIS: i64 = 3_600_000;
/// Twilio's limit for a message body, and SMS's (R-IN-5).
pub const MAX_TEXT_CHARS: usize = 1600;

/// The end of the channel's standard free-form window after the customer's
/// last message, for channels that have one.
pub fn window_closes_at(channel: Channel, last_customer_millis: i64) -> Option<i64> {
    let hours = ReplyWindow::on(channel).free_form_hours?;
    Some(last_customer_millis + hours * HOUR_MILLIS)
}

/// Whether a free-form message (not a WhatsApp template) may go out at
/// `now_millis`, and how (R-CONV-6). `human_agent_tag` is the channel's
/// setting; `by_human` says an agent, not the bot, writes it.
pub fn free_form_window(
    channel: Channel,
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
    let Some(tagged_hours) = ReplyWindow::on(channel).human_agent_hours else {
        return Err(Undelivered::window_closed(channel, closes, false));
    };
    let tagged_until = last + tagged_hours * HOUR_MILLIS;
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
    pub window_closed_at: Option<Timestamp>,
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
    pub fn window_closed(channel: Channel, closed_millis: i64, by_provider: bool) -> Undelivered {
        let closed_at = Timestamp::from_millis(closed_millis);
        let rule = ReplyWindow::on(channel);
        let (who, what) = (rule.refused_by, rule.closed);
        Undelivered {
            error: Error::conflict(
                "reply_window_closed",
                format!(
                    "{}{}",
                    if by_provider { who } else { "" },
                    what.replace("{closed_at}", &closed_at.to_string())
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
    let outgoing = Outgoing {
        account_id: &account.id,
        thread,
        content,
        author,
        window,
    };
    let outcome = account.settings.send(ports, &outgoing).await?;
    outcome_to_result(account, thread.channel, outcome, ports.clock.now_millis())
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
    channel: Channel,
    outcome: SendOutcome,
    now_millis: i64,
) -> Result<Sent, Undelivered> {
    let provider = account.settings.provider().display_name();
    match outcome {
        SendOutcome::Sent { id, status } => Ok(Sent {
            provider_message_id: id,
            status,
        }),
        SendOutcome::OutsideWindow { .. } => Err(Undelivered::window_closed(
            channel,
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

    fn window(channel: &str, tag: bool, by_human: bool, hours: i64) -> Result<Window, Option<i64>> {
        free_form_window(
            Channel::parse(channel).expect("a channel"),
            tag,
            by_human,
            Some(LAST),
            LAST + hours * HOUR_MILLIS,
        )
        .map_err(|refused| refused.window_closed_at.map(Timestamp::millis))
    }

    #[test]
    fn whatsapp_closes_after_24_hours() {
        assert_eq!(window("whatsapp", false, true, 23), Ok(Window::Open));
        assert_eq!(
            window("whatsapp", false, true, 24),
            Err(Some(LAST + 24 * HOUR_MILLIS))
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
            Err(Some(LAST + 7 * 24 * HOUR_MILLIS)),
            "closed at the end of the 7 days"
        );
        let standard_end = Err(Some(LAST + 24 * HOUR_MILLIS));
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
                free_form_window(Channel::Whatsapp, false, true, None, LAST),
                Ok(Window::Open)
            ),
            "no customer message yet: nothing to measure from"
        );
    }

    #[test]
    fn a_closed_window_answers_with_when_it_closed() {
        let answer = Undelivered::window_closed(Channel::Whatsapp, LAST, false).into_response();
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            body["error"]["window_closed_at"],
            "2027-01-15T08:00:00.000Z"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed at 2027-01-15T08:00:00.000Z,"));
    }
}
