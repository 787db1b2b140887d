//! The call to a workstream's bot (R-CONV-7), bounded so that neither the
//! bot nor anyone posing as the gateway can abuse it.
//!
//! - Signed: a bot is a public URL, so it must be able to tell the gateway's
//!   calls from anyone else's. Each call carries the Unix time in
//!   [`TIMESTAMP_HEADER`] and, in [`SIGNATURE_HEADER`], `sha256=` and the
//!   hex HMAC-SHA256 of `{timestamp}.{body}` keyed with the workstream's bot
//!   secret; with the time inside the signed string, a bot can refuse old
//!   calls replayed to it.
//! - Time-boxed: the customer's message is stored already and the provider
//!   is waiting for our answer, so a bot slower than [`TIMEOUT`] counts as
//!   failed, and a failed bot hands the conversation over to routing.
//! - Capped: an answer over [`MAX_ANSWER_BYTES`] is refused unread past the
//!   cap; a reply is one chat message, never megabytes.

use super::Conversation;
use crate::api::Method;
use crate::entities::contact::Contact;
use crate::entities::workstream::Bot;
use crate::message::Inbound;
use crate::ports::{OutboundError, OutboundRequest, OutboundResponse, UnixMillis};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const TIMESTAMP_HEADER: &str = "X-Switchboard-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Switchboard-Signature";
/// Webhooks must answer their provider within about 15 s, and the bot's
/// reply still has to be sent after it.
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the bot said: a reply for the customer, and whether it hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reply: Option<String>,
    pub handoff: bool,
}

/// The signed question about the customer's `inbound` message.
pub fn question(
    bot: &Bot,
    conversation: &Conversation,
    contact: &Contact,
    inbound: &Inbound,
    now_millis: UnixMillis,
) -> OutboundRequest {
    let body = serde_json::json!({
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "language": conversation.language,
        "customer": {
            "address": conversation.customer_address,
            "name": contact.name,
            "contact_id": contact.id,
        },
        "message": {"text": inbound.text, "attachments": inbound.attachments},
    })
    .to_string()
    .into_bytes();
    let timestamp = now_millis.div_euclid(1000).to_string();
    OutboundRequest {
        method: Method::Post,
        url: bot.url.clone(),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                SIGNATURE_HEADER.to_owned(),
                signature(&bot.secret, &timestamp, &body),
            ),
            (TIMESTAMP_HEADER.to_owned(), timestamp),
        ],
        body,
        timeout: Some(TIMEOUT),
        max_response_bytes: Some(MAX_ANSWER_BYTES),
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}`, keyed with
/// the secret's UTF-8 bytes.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "sha256={}",
        crate::encoding::hex(&mac.finalize().into_bytes())
    )
}

/// The bot's answer: `{"reply": "…"}`, `{"handoff": true}` or both. `None`
/// when there is none to follow — no answer in time, an error status, an
/// answer over the cap, or anything but a JSON object — which hands over.
pub fn answer(exchange: Result<OutboundResponse, OutboundError>) -> Option<Answer> {
    let response = exchange.ok().filter(|r| (200..300).contains(&r.status))?;
    let answer: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    answer.is_object().then(|| Answer {
        reply: answer["reply"]
            .as_str()
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned),
        handoff: answer["handoff"].as_bool().unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locale::Locale;
    use crate::memory::{block_on, reply, ScriptedHttp, SeededRandomness};
    use crate::ports::OutboundHttp;

    /// The example in README.md ("Bots"): a bot checks its code against it.
    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        assert_eq!(
            signature(
                "sbbot_3f1c9a7e5b2d4f6081a3c5e7f9b1d3e5a7c9e1f3b5d7f9a1c3e5b7d9f1a3c5e7",
                "1767225600",
                br#"{"message":{"text":"Hello"}}"#,
            ),
            "sha256=61e6c19f34fab1f0edf64edd381202b3cd2bfc87e84a6d884bc20ef5c20a0668"
        );
    }

    fn asked(bot: &Bot) -> OutboundRequest {
        let conversation: Conversation = serde_json::from_value(serde_json::json!({
            "id": "c".repeat(32), "channel": "whatsapp", "account_id": "a".repeat(32),
            "channel_address": "+14155238886", "customer_address": "+4917612345678",
            "contact_id": "d".repeat(32), "workstream_id": "w".repeat(32),
            "language": Locale::parse("en-US").unwrap(), "state": "open", "version": 1,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        }))
        .expect("a conversation");
        let contact: Contact = serde_json::from_value(serde_json::json!({
            "id": "d".repeat(32), "name": "Jane Doe",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        }))
        .expect("a contact");
        let inbound = Inbound {
            provider_message_id: "SM1".into(),
            channel: crate::channel::Channel::Whatsapp,
            customer_address: "+4917612345678".into(),
            channel_address: "+14155238886".into(),
            text: "Hello".into(),
            attachments: Vec::new(),
            profile_name: None,
        };
        question(bot, &conversation, &contact, &inbound, 1_767_225_600_999)
    }

    fn header<'a>(request: &'a OutboundRequest, name: &str) -> &'a str {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn a_question_is_signed_over_its_exact_body_and_bounded() {
        let bot = Bot::new(
            "https://bot.example.com/sb".into(),
            &SeededRandomness::new(7),
        );
        let request = asked(&bot);
        assert_eq!(header(&request, TIMESTAMP_HEADER), "1767225600");
        assert_eq!(
            header(&request, SIGNATURE_HEADER),
            signature(&bot.secret, "1767225600", &request.body)
        );
        let other = Bot::new(bot.url.clone(), &SeededRandomness::new(8));
        assert_ne!(
            header(&request, SIGNATURE_HEADER),
            signature(&other.secret, "1767225600", &request.body),
            "another workstream's secret does not verify it"
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["message"]["text"], "Hello");
        assert_eq!(body["customer"]["name"], "Jane Doe");
        assert_eq!(
            (request.timeout, request.max_response_bytes),
            (Some(TIMEOUT), Some(MAX_ANSWER_BYTES))
        );
    }

    #[test]
    fn a_slow_failed_oversized_or_odd_answer_is_no_answer() {
        let bot = Bot::new(
            "https://bot.example.com/sb".into(),
            &SeededRandomness::new(7),
        );
        let ask = |http: ScriptedHttp| block_on(http.send(asked(&bot)));
        let script = |status: u16, body: String| ScriptedHttp::new(move |_| reply(status, &body));
        assert_eq!(
            answer(ask(script(
                200,
                r#"{"reply": "Hi!", "handoff": true}"#.into()
            ))),
            Some(Answer {
                reply: Some("Hi!".into()),
                handoff: true
            })
        );
        assert_eq!(
            answer(ask(script(200, r#"{"reply": "  "}"#.into()))),
            Some(Answer {
                reply: None,
                handoff: false
            })
        );
        let slow = script(200, r#"{"reply": "Hi!"}"#.into()).answering_after(TIMEOUT * 2);
        assert_eq!(answer(ask(slow)), None);
        let oversized = format!(r#"{{"reply": "{}"}}"#, "x".repeat(MAX_ANSWER_BYTES));
        assert_eq!(answer(ask(script(200, oversized))), None);
        assert_eq!(answer(ask(script(500, r#"{"reply": "Hi!"}"#.into()))), None);
        assert_eq!(answer(ask(script(200, "[1]".into()))), None);
        assert_eq!(answer(ask(ScriptedHttp::default())), None);
    }
}
