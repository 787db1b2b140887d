//! The channel types customers write on, with the spellings stored in
//! workstreams, conversations, contacts and templates.
//!
//! A channel is what the customer sees (a WhatsApp chat, a text message);
//! a [`Provider`] is whose API carries it. Which providers serve a channel
//! is each provider's to say ([`Provider::serves`]), so a new provider
//! joins a channel without this module changing.

use crate::providers::{Provider, ReplyWindow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// When free-form messages may reach a customer on this channel: the
    /// rule of the providers that carry it.
    pub fn reply_window(self) -> ReplyWindow {
        self.providers()
            .next()
            .map_or(ReplyWindow::NONE, |provider| provider.reply_window(self))
    }

    /// The providers whose accounts carry this channel.
    pub fn providers(self) -> impl Iterator<Item = Provider> {
        Provider::ALL
            .iter()
            .copied()
            .filter(move |provider| provider.serves(self))
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
    fn spellings_round_trip_and_every_channel_has_a_provider() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
            assert!(channel.providers().next().is_some(), "{channel}");
        }
        assert_eq!(Channel::parse("messenger"), None);
    }
}
