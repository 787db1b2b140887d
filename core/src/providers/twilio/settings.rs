//! A Twilio account's fields (R-CFG-1): the Account SID, the auth token
//! (write-only; it also signs the webhooks) and the WhatsApp numbers.

use crate::auth::mask;
use crate::error::Error;
use crate::input::Object;
use crate::phone::E164;
use crate::providers::fields::{no_whitespace, unique};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub account_sid: String,
    pub auth_token: String,
    pub numbers: Vec<WhatsAppNumber>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhatsAppNumber {
    pub name: String,
    pub number: E164,
}

pub const FIELDS: &[&str] = &["account_sid", "auth_token", "numbers"];

impl Settings {
    pub(super) fn read(input: &Object) -> Result<Settings, Error> {
        let numbers = input.objects("numbers", |n| {
            n.only(&["name", "number"])?;
            Ok(WhatsAppNumber {
                name: n.name("name", 100)?,
                number: n.parsed("number", E164::parse)?,
            })
        })?;
        unique(input, "numbers", numbers.iter().map(|n| n.number.as_str()))?;
        Ok(Settings {
            account_sid: input.parsed("account_sid", account_sid)?,
            auth_token: input.parsed("auth_token", no_whitespace("auth token"))?,
            numbers,
        })
    }

    pub(super) fn view(&self, callback_url: &str) -> Value {
        json!({
            "account_sid": self.account_sid,
            "auth_token": mask(&self.auth_token),
            "numbers": self.numbers,
            "callback_url": callback_url,
        })
    }

    pub(super) fn addresses(&self) -> Vec<&str> {
        self.numbers.iter().map(|n| n.number.as_str()).collect()
    }
}

fn account_sid(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("AC").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a Twilio Account SID: it is AC followed by 32 hex digits, as shown on the Twilio console"))
    }
}
