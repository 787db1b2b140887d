//! A Business Messages account's fields (R-CFG-1): the partner, the
//! webhook's client token (write-only; it also signs the webhooks), the
//! service account's key (write-only) and the brand and agent.

use super::ServiceAccount;
use crate::auth::mask;
use crate::error::Error;
use crate::input::Object;
use crate::providers::fields::no_whitespace;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub partner_id: String,
    pub client_token: String,
    /// The service-account key JSON, as Google's console downloads it.
    pub service_account: String,
    pub brand_id: String,
    pub agent_id: String,
}

/// A Business Messages account's fields as `POST /api/accounts` takes
/// them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = GbmAccountInput))]
pub struct Input {
    pub partner_id: String,
    /// The webhook's client token; write-only. It also signs the webhooks.
    pub client_token: String,
    /// The service account's key as Google's console downloads it: the
    /// JSON object, or its text. Write-only.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub service_account: String,
    pub brand_id: String,
    /// The Business Messages agent customers write to.
    pub agent_id: String,
}

/// A Business Messages account's fields as the API shows them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = GbmAccountView))]
pub struct View {
    pub partner_id: String,
    /// Masked: `****` and at most the last four characters.
    pub client_token: String,
    pub service_account: ServiceAccountView,
    pub brand_id: String,
    pub agent_id: String,
    /// Where Google posts the account's callbacks.
    pub callback_url: String,
}

/// The service account as shown: its e-mail with the key masked, or only
/// a mask if the stored key no longer reads.
#[derive(Debug, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = GbmServiceAccountView))]
pub enum ServiceAccountView {
    Shown {
        client_email: String,
        /// Always `****`.
        private_key: &'static str,
    },
    /// `****`.
    Masked(&'static str),
}

pub const FIELDS: &[&str] = &[
    "partner_id",
    "client_token",
    "service_account",
    "brand_id",
    "agent_id",
];

impl Settings {
    pub(super) fn read(input: &Object) -> Result<Settings, Error> {
        Ok(Settings {
            partner_id: input.parsed("partner_id", no_whitespace("partner ID"))?,
            client_token: input.parsed("client_token", no_whitespace("client token"))?,
            service_account: service_account(input)?,
            brand_id: input.parsed("brand_id", no_whitespace("brand ID"))?,
            agent_id: input.parsed("agent_id", no_whitespace("agent ID"))?,
        })
    }

    pub(super) fn input(&self) -> Input {
        Input {
            partner_id: self.partner_id.clone(),
            client_token: self.client_token.clone(),
            service_account: self.service_account.clone(),
            brand_id: self.brand_id.clone(),
            agent_id: self.agent_id.clone(),
        }
    }

    pub(super) fn view(&self, callback_url: &str) -> View {
        View {
            partner_id: self.partner_id.clone(),
            client_token: mask(&self.client_token),
            service_account: ServiceAccount::parse(&self.service_account).map_or(
                ServiceAccountView::Masked("****"),
                |account| ServiceAccountView::Shown {
                    client_email: account.client_email,
                    private_key: "****",
                },
            ),
            brand_id: self.brand_id.clone(),
            agent_id: self.agent_id.clone(),
            callback_url: callback_url.to_owned(),
        }
    }
}

fn service_account(input: &Object) -> Result<String, Error> {
    // Accepted as the JSON object itself or as its text.
    let text = match input.object("service_account") {
        Ok(Some(object)) => Value::Object(object).to_string(),
        Ok(None) => return Err(input.missing("service_account")),
        Err(_) => input.required_str("service_account")?.to_owned(),
    };
    ServiceAccount::parse(&text)
        .map_err(|message| input.error("service_account", "invalid_format", message))?;
    Ok(text)
}
