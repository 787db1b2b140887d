//! A Business Messages account's fields (R-CFG-1): the partner, the
//! webhook's client token (write-only; it also signs the webhooks), the
//! service account's key (write-only) and the brand and agent.

use super::ServiceAccount;
use crate::auth::mask;
use crate::error::Error;
use crate::input::Object;
use crate::providers::fields::no_whitespace;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub partner_id: String,
    pub client_token: String,
    /// The service-account key JSON, as Google's console downloads it.
    pub service_account: String,
    pub brand_id: String,
    pub agent_id: String,
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

    pub(super) fn view(&self, callback_url: &str) -> Value {
        json!({
            "partner_id": self.partner_id,
            "client_token": mask(&self.client_token),
            "service_account": ServiceAccount::parse(&self.service_account)
                .map(|account| json!({"client_email": account.client_email, "private_key": "****"}))
                .unwrap_or(json!("****")),
            "brand_id": self.brand_id,
            "agent_id": self.agent_id,
            "callback_url": callback_url,
        })
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
