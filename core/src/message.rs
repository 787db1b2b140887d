//! The values a message is made of on its way between a customer and the
//! gateway: its thread, author, content and attachments, a customer's
//! message as a webhook normalizes it, a rendered template, and a message
//! as its conversation stores it.
//!
//! They sit below both the providers, which parse and send them, and the
//! conversations, templates and outbound API, which store and produce them,
//! so that neither side depends on the other.

use crate::channel::Channel;
use crate::locale::Locale;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The two ends a message travels between.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    pub channel: Channel,
    /// Our number, page or agent.
    pub ours: &'a str,
    /// The customer's number, PSID or conversation id.
    pub customer: &'a str,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Author {
    Customer,
    Agent,
    Bot,
    /// Notices the gateway sends on its own (e.g. attachments refused).
    System,
    /// Automation flows, through the outbound API (R-OUT).
    Automation,
}

/// A message as its conversation stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The position in the conversation, from 1.
    pub position: i64,
    pub author: Author,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Customer attachments the channel does not accept (R-IN-6): counted,
    /// never shown.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attachments_refused: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Outbound only: the provider's delivery status (R-IN-7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// An outbound API message: its activity (R-OUT-5), which keeps the
    /// delivery status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    pub at: Timestamp,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Message {
    pub fn new(author: Author, text: impl Into<String>, at: Timestamp) -> Message {
        Message {
            position: 0,
            author,
            agent_id: None,
            text: text.into(),
            attachments: Vec::new(),
            attachments_refused: 0,
            provider_message_id: None,
            status: None,
            error_code: None,
            template_id: None,
            activity_id: None,
            at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub url: String,
    pub content_type: String,
}

/// A customer's message as every webhook normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub provider_message_id: String,
    /// The channel the customer wrote on.
    pub channel: Channel,
    /// The customer: `+E.164` for phone channels, the PSID, the GBM
    /// conversation id.
    pub customer_address: String,
    /// Ours: the number, page id or GBM agent the customer wrote to.
    pub channel_address: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub profile_name: Option<String>,
}

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

    pub fn attachments(&self) -> &[Attachment] {
        match self {
            Content::Text { attachments, .. } => attachments,
            Content::Template { .. } => &[],
        }
    }
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

/// A rendered message and how it was chosen.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rendered {
    pub channel_type: Channel,
    /// The version used, after the fallback chain of R-TPL-2.
    pub locale: Locale,
    pub text: String,
    pub characters: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Twilio `ContentVariables`: the placeholders numbered in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_variables: Option<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_message_reads_and_writes_back_the_same() {
        let stored = r#"{"position":3,"author":"agent","agent_id":"g0000000000000000000000000000000","text":"Hei","provider_message_id":"SM1","status":"delivered","at":"2026-01-01T00:00:00.120Z"}"#;
        let message: Message = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&message).unwrap(), stored);
    }
}
