//! A workstream (R-CFG-5) as stored: the channel instances it answers
//! (R-CFG-6), how it routes new conversations to queues, and its bot.

use crate::auth::mask;
use crate::channel::Channel;
use crate::input::Word;
use crate::locale::Locale;
use crate::ports::Randomness;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workstream {
    pub id: String,
    pub name: String,
    pub channel: Channel,
    pub fallback_queue: String,
    pub distribution: Distribution,
    /// `bot_url` and `bot_secret`, when the workstream has a bot.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Bot))]
    pub bot: Option<Bot>,
    pub routing_rules: Vec<RoutingRule>,
    pub channels: Vec<ChannelInstance>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which of a queue's agents is offered a new conversation first
/// (R-CONV-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Rotates through the queue's agents, one further for each conversation
    /// the queue is given; what a workstream saved without a choice gets.
    #[default]
    RoundRobin,
    /// The agent holding the fewest conversations.
    LeastActive,
}

impl Word for Distribution {
    const ALL: &'static [Distribution] = &[Distribution::RoundRobin, Distribution::LeastActive];

    fn word(self) -> &'static str {
        match self {
            Distribution::RoundRobin => "round_robin",
            Distribution::LeastActive => "least_active",
        }
    }
}

/// The bot that sees a workstream's new conversations first, and the secret
/// its calls are signed with; stored (and shown) as `bot_url` and
/// `bot_secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bot {
    /// The bot's webhook.
    #[serde(rename = "bot_url")]
    // Not required in the schema: a workstream without a bot has neither.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub url: String,
    /// Signs the calls to the bot: whole in the response of the save that
    /// made it (or of `rotate-bot-secret`), masked after.
    #[serde(rename = "bot_secret")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub secret: String,
    /// The secret was made by this request, whose response shows it: the
    /// only time it is shown whole.
    #[serde(skip)]
    made_now: bool,
}

impl Bot {
    /// A bot at `url` with a new secret of 256 random bits.
    pub fn new(url: String, random: &dyn Randomness) -> Bot {
        Bot {
            url,
            secret: format!("sbbot_{}{}", random.id128(), random.id128()),
            made_now: true,
        }
    }

    /// The same bot, secret and all, at another URL.
    pub fn moved_to(&self, url: String) -> Bot {
        Bot {
            url,
            ..self.clone()
        }
    }

    /// The same bot with a new secret.
    pub fn rotated(&self, random: &dyn Randomness) -> Bot {
        Bot::new(self.url.clone(), random)
    }

    /// The secret as a response may show it: whole once, masked after.
    pub fn shown_secret(&self) -> String {
        if self.made_now {
            self.secret.clone()
        } else {
            mask(&self.secret)
        }
    }
}

/// Conditions that must all hold for a new conversation to go to `queue`;
/// rules are tried in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoutingRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub queue: String,
    pub conditions: Conditions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conditions {
    /// The channel instance's address the customer wrote to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The channel instance's language; `nb` also matches `nb-NO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Locale>,
    /// Any of these words in the first message (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// A field of the customer's contact record equals a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_field: Option<ContactField>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactField {
    pub name: String,
    pub equals: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelInstance {
    pub account_id: String,
    /// The number (WhatsApp `+E.164`, SMS digits), Facebook page id or GBM agent id.
    pub address: String,
    pub language: Locale,
    /// Whether customers may send attachments here; `false` when left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub customer_attachments: bool,
    /// Whether agents may send attachments here; `false` when left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub agent_attachments: bool,
    /// Facebook only: replies up to 7 days after the customer's last
    /// message, sent with the HUMAN_AGENT tag; `false` when left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub human_agent_tag: bool,
}

crate::document!(Workstream, "workstream");

impl Workstream {
    pub fn uses_queue(&self, queue: &str) -> bool {
        self.fallback_queue == queue || self.routing_rules.iter().any(|rule| rule.queue == queue)
    }
}

/// The claim of one address; its owner key names the workstream.
pub fn channel_claim(org: &str, account_id: &str, address: &str) -> String {
    format!("org/{org}/channel/{account_id}/{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workstream as stored before its channel and distribution were
    /// typed: it reads, and writes back byte for byte.
    #[test]
    fn stored_documents_read_and_write_back_unchanged() {
        let stored = r#"{"id":"w0000000000000000000000000000000","name":"Support","channel":"facebook","fallback_queue":"q0000000000000000000000000000000","distribution":"least_active","bot_url":"https://bot.example.com/sb","bot_secret":"sbbot_secret","routing_rules":[{"name":"Norsk","queue":"q0000000000000000000000000000001","conditions":{"channel":"1234567890","language":"nb","keywords":["faktura"],"contact_field":{"name":"tier","equals":"gold"}}}],"channels":[{"account_id":"a0000000000000000000000000000000","address":"1234567890","language":"nb-NO","customer_attachments":true,"agent_attachments":false,"human_agent_tag":true}],"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-02T00:00:00.000Z"}"#;
        let workstream: Workstream = serde_json::from_str(stored).unwrap();
        assert_eq!(
            (workstream.channel, workstream.distribution),
            (Channel::Messenger, Distribution::LeastActive)
        );
        assert_eq!(serde_json::to_string(&workstream).unwrap(), stored);
        let round_robin = stored.replace("least_active", "round_robin");
        let workstream: Workstream = serde_json::from_str(&round_robin).unwrap();
        assert_eq!(workstream.distribution, Distribution::RoundRobin);
        assert_eq!(serde_json::to_string(&workstream).unwrap(), round_robin);
    }
}
