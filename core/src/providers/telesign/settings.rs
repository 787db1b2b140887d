//! A TeleSign account's fields (R-CFG-1): the customer ID, the API key
//! (write-only; it also signs the callbacks) and the SMS numbers.

use crate::auth::mask;
use crate::error::Error;
use crate::input::Object;
use crate::phone::DigitsNumber;
use crate::providers::fields::unique;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub customer_id: String,
    pub api_key: String,
    pub numbers: Vec<TelesignNumber>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelesignNumber {
    pub number: DigitsNumber,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
}

pub const FIELDS: &[&str] = &["customer_id", "api_key", "numbers"];
const NUMBER_TYPES: &[&str] = &["long_code", "short_code", "toll_free"];

impl Settings {
    pub(super) fn read(input: &Object) -> Result<Settings, Error> {
        let numbers = input.objects("numbers", |n| {
            n.only(&["number", "type", "description"])?;
            Ok(TelesignNumber {
                number: n.parsed("number", DigitsNumber::parse)?,
                kind: n
                    .choice("type", NUMBER_TYPES)?
                    .ok_or_else(|| n.missing("type"))?
                    .to_owned(),
                description: n.str("description")?.unwrap_or_default().trim().to_owned(),
            })
        })?;
        unique(input, "numbers", numbers.iter().map(|n| n.number.as_str()))?;
        Ok(Settings {
            customer_id: input.parsed("customer_id", customer_id)?,
            api_key: input.parsed("api_key", api_key)?,
            numbers,
        })
    }

    pub(super) fn view(&self, callback_url: &str) -> Value {
        json!({
            "customer_id": self.customer_id,
            "api_key": mask(&self.api_key),
            "numbers": self.numbers,
            "callback_url": callback_url,
        })
    }

    pub(super) fn addresses(&self) -> Vec<&str> {
        self.numbers.iter().map(|n| n.number.as_str()).collect()
    }
}

fn customer_id(text: &str) -> Result<String, String> {
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if shaped {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a TeleSign customer ID: it looks like FFFFFFFF-EEEE-DDDD-1234-AB1234567890 (from the TeleSign portal)"))
    }
}

fn api_key(text: &str) -> Result<String, String> {
    let base64 = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if base64 && text.len() >= 8 {
        Ok(text.to_owned())
    } else {
        Err("the TeleSign API key is the base64 text shown in the TeleSign portal (letters, digits, +, / and =)".into())
    }
}
