//! A TeleSign account's fields (R-CFG-1): the customer ID, the API key
//! (write-only; it also signs the callbacks) and the SMS numbers.

use crate::auth::mask;
use crate::error::Error;
use crate::input::Object;
use crate::phone::DigitsNumber;
use crate::providers::fields::unique;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub customer_id: String,
    pub api_key: String,
    pub numbers: Vec<TelesignNumber>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelesignNumber {
    /// Digits only, country code first (`14252306549`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9]+$"))]
    pub number: DigitsNumber,
    /// `long_code`, `short_code` or `toll_free`.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(long_code|short_code|toll_free)$")
    )]
    pub kind: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub description: String,
}

/// A TeleSign account's fields as `POST /api/accounts` takes them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TelesignAccountInput))]
pub struct Input {
    /// `FFFFFFFF-EEEE-DDDD-1234-AB1234567890`, from the TeleSign portal.
    pub customer_id: String,
    /// The base64 API key from the TeleSign portal; write-only.
    pub api_key: String,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub numbers: Vec<TelesignNumber>,
}

/// A TeleSign account's fields as the API shows them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TelesignAccountView))]
pub struct View {
    pub customer_id: String,
    /// Masked: `****` and at most the last four characters.
    pub api_key: String,
    pub numbers: Vec<TelesignNumber>,
    /// Where TeleSign posts the account's callbacks.
    pub callback_url: String,
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

    pub(super) fn input(&self) -> Input {
        Input {
            customer_id: self.customer_id.clone(),
            api_key: self.api_key.clone(),
            numbers: self.numbers.clone(),
        }
    }

    pub(super) fn view(&self, callback_url: &str) -> View {
        View {
            customer_id: self.customer_id.clone(),
            api_key: mask(&self.api_key),
            numbers: self.numbers.clone(),
            callback_url: callback_url.to_owned(),
        }
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
