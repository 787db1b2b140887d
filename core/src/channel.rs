//! The channel types customers write on, with the spellings stored in
//! workstreams, conversations, contacts and templates.
//!
//! A channel is what the customer sees (a WhatsApp chat, a text message);
//! a provider is whose API carries it. Which providers serve a channel,
//! and so its reply window, is each provider's to say (`providers`), so a
//! new provider joins a channel without this module changing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Channel {
    #[serde(rename = "whatsapp")]
    Whatsapp,
    #[serde(rename = "sms")]
    Sms,
    /// Facebook Messenger, stored as `facebook`.
    #[serde(rename = "facebook")]
    Messenger,
    /// Google's Business Messages.
    #[serde(rename = "gbm")]
    Gbm,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Whatsapp,
        Channel::Sms,
        Channel::Messenger,
        Channel::Gbm,
    ];

    /// The stored spellings, for inputs that choose one.
    pub const NAMES: [&'static str; 4] = [
        Channel::Whatsapp.as_str(),
        Channel::Sms.as_str(),
        Channel::Messenger.as_str(),
        Channel::Gbm.as_str(),
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Sms => "sms",
            Channel::Messenger => "facebook",
            Channel::Gbm => "gbm",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == text)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
        }
        assert_eq!(Channel::parse("messenger"), None);
    }
}
