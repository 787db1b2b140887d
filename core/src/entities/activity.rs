//! Outbound message activities (R-OUT-5): the record of each message the
//! outbound API sent, or tried to send, to one contact.
//!
//! An activity is one document, written with the rest of its batch in one
//! transaction. The provider's message id points at it
//! (`provider-message/{provider}/{id}` → `activity:{id}`), so the status
//! callbacks that update agents' replies update activities the same way.
//! With show-on-timeline, the activity is also an entry of its contact's
//! timeline, a numbered log per contact (`contact/{id}/timeline`); the seed
//! advises leaving show-on-timeline off for mass messages, which is also
//! what keeps those free of per-contact writes.
//!
//! The outbound API writes activities and the conversations read them (a
//! customer's reply threads them in, status callbacks move them, the
//! contact's timeline lists them), so the record sits below both.

use crate::channel::Channel;
use crate::locale::Locale;
use crate::message::{Author, Message};
use crate::store::Log;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    pub id: String,
    /// Always `outbound_message`: the timeline's entry type.
    #[serde(rename = "type")]
    pub kind: String,
    pub configuration_id: String,
    /// `sms` or `whatsapp`: a template's channel.
    pub channel: Channel,
    pub account_id: String,
    /// Our number.
    pub from: String,
    /// The contact's number (`tocontactid`).
    pub to: String,
    pub contact_id: String,
    /// The conversation a reply threads into (R-OUT-8).
    pub conversation_id: String,
    pub template_id: String,
    pub locale: Locale,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entityrelationshipname: Option<String>,
    pub show_on_timeline: bool,
    /// The provider's status (`queued`, `sent`, `delivered`, …), moved
    /// forward by its callbacks, or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Its position in the conversation, once the customer's reply
    /// threaded it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_position: Option<i64>,
    pub created_at: Timestamp,
}

crate::document!(Activity, "activity");

pub const KIND: &str = "outbound_message";

/// What a provider message id of an activity points at.
pub fn pointer(activity_id: &str) -> Vec<u8> {
    format!("activity:{activity_id}").into_bytes()
}

/// The activity id in a provider-message pointer, if it names one.
pub fn parse_pointer(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()?.strip_prefix("activity:")
}

pub fn timeline(org: &str, contact_id: &str) -> Log {
    Log::new(format!("org/{org}/contact/{contact_id}/timeline"))
}

impl Activity {
    /// The activity as a message of its conversation.
    pub fn as_message(&self) -> Message {
        let mut message = Message::new(Author::Automation, self.text.clone(), self.created_at);
        message.provider_message_id = self.provider_message_id.clone();
        message.status = Some(self.status.clone());
        message.error_code = self.error_code.clone();
        message.template_id = Some(self.template_id.clone());
        message.activity_id = Some(self.id.clone());
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An activity as stored before its channel was typed: it reads, and
    /// writes back byte for byte.
    #[test]
    fn stored_documents_read_and_write_back_unchanged() {
        let stored = r#"{"id":"b0000000000000000000000000000000","type":"outbound_message","configuration_id":"f0000000000000000000000000000000","channel":"whatsapp","account_id":"a0000000000000000000000000000000","from":"+14155238886","to":"+4790000001","contact_id":"c0000000000000000000000000000000","conversation_id":"d0000000000000000000000000000000","template_id":"e0000000000000000000000000000000","locale":"nb-NO","text":"Hei Kari","content_sid":"HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","entityrelationshipname":"incident","show_on_timeline":true,"status":"delivered","provider_message_id":"SM1","job_id":"j1","conversation_position":3,"created_at":"2026-01-01T00:00:00.000Z"}"#;
        let activity: Activity = serde_json::from_str(stored).unwrap();
        assert_eq!(activity.channel, Channel::Whatsapp);
        assert_eq!(serde_json::to_string(&activity).unwrap(), stored);
        let sms = stored.replace(r#""channel":"whatsapp""#, r#""channel":"sms""#);
        let activity: Activity = serde_json::from_str(&sms).unwrap();
        assert_eq!(activity.channel, Channel::Sms);
        assert_eq!(serde_json::to_string(&activity).unwrap(), sms);
    }
}
