//! Contacts (R-CONV-2): who a customer is, across channels.
//!
//! A customer is first known by an address (a phone number, a PSID, a GBM
//! conversation): `address/{channel}/{address}` points at a contact. An
//! unknown sender gets a contact of their own whose id is derived from the
//! address, so two first messages at once create one contact, not two. An
//! agent who recognises the customer links the conversation to an existing
//! contact record; the address then points there, and later conversations
//! from that address attach to it. Contact fields (`"tier": "gold"`) are what
//! routing rules' `contact_field` conditions read; opt-outs (R-IN-8) are kept
//! per channel type.

use crate::api::ApiError;
use crate::auth::Role;
use crate::config::{Ctx, Resource};
use crate::input::Object;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<ContactAddress>,
    /// Values routing rules can match (`contact_field`), all strings.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Channel type → when the customer opted out (STOP, …).
    #[serde(default)]
    pub opted_out: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAddress {
    pub channel: String,
    pub address: String,
}

crate::document!(Contact, "contact");

/// The key naming the contact of an address.
pub fn address_key(org: &str, channel: &str, address: &str) -> String {
    format!(
        "org/{org}/address/{channel}/{}",
        crate::encoding::percent_encode(address)
    )
}

/// The id of the contact created for an unknown sender.
pub fn contact_id_for(org: &str, channel: &str, address: &str) -> String {
    crate::auth::sha256_hex(&format!("contact\n{org}\n{channel}\n{address}"))[..32].to_owned()
}

/// Words that opt a customer out of a channel, and back in (R-IN-8), as
/// carriers and WhatsApp Business practice define them.
const OPT_OUT_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const OPT_IN_WORDS: &[&str] = &["START", "UNSTOP"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKeyword {
    Out,
    In,
}

/// A message that is exactly one of the keywords (any case, surrounding
/// blanks and a final full stop or exclamation mark ignored).
pub fn opt_keyword(text: &str) -> Option<OptKeyword> {
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_ascii_uppercase();
    if OPT_OUT_WORDS.contains(&word.as_str()) {
        Some(OptKeyword::Out)
    } else if OPT_IN_WORDS.contains(&word.as_str()) {
        Some(OptKeyword::In)
    } else {
        None
    }
}

impl Contact {
    /// A contact for a sender seen for the first time.
    pub fn for_sender(
        org: &str,
        channel: &str,
        address: &str,
        name: Option<&str>,
        now: &str,
    ) -> Contact {
        Contact {
            id: contact_id_for(org, channel, address),
            name: name.unwrap_or(address).to_owned(),
            addresses: vec![ContactAddress {
                channel: channel.to_owned(),
                address: address.to_owned(),
            }],
            fields: BTreeMap::new(),
            opted_out: BTreeMap::new(),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        }
    }

    pub fn is_opted_out(&self, channel: &str) -> bool {
        self.opted_out.contains_key(channel)
    }

    /// Applies an opt-out or opt-in keyword; `true` when something changed.
    pub fn apply(&mut self, keyword: OptKeyword, channel: &str, now: &str) -> bool {
        let changed = match keyword {
            OptKeyword::Out if !self.is_opted_out(channel) => {
                self.opted_out.insert(channel.to_owned(), now.to_owned());
                true
            }
            OptKeyword::In => self.opted_out.remove(channel).is_some(),
            OptKeyword::Out => false,
        };
        if changed {
            self.updated_at = now.to_owned();
        }
        changed
    }
}

impl Resource for Contact {
    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];
    const WRITERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> Value {
        json!({"name": self.name, "fields": self.fields})
    }

    fn build(
        ctx: &Ctx,
        id: String,
        input: Object,
        existing: Option<&Self>,
    ) -> Result<Self, ApiError> {
        input.only(&["name", "fields"])?;
        let fields = input.object("fields")?.unwrap_or_default();
        Ok(Contact {
            id,
            name: input.name("name", 200)?,
            fields: read_fields(&input, &fields)?,
            addresses: existing.map(|e| e.addresses.clone()).unwrap_or_default(),
            opted_out: existing.map(|e| e.opted_out.clone()).unwrap_or_default(),
            created_at: ctx.created_at(existing.map(|e| e.created_at.as_str())),
            updated_at: ctx.now.clone(),
        })
    }

    /// The addresses stop pointing here; their next message makes a new
    /// contact.
    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, ApiError> {
        Ok(self
            .addresses
            .iter()
            .map(|a| address_key(ctx.org(), &a.channel, &a.address))
            .collect())
    }
}

fn read_fields(
    input: &Object,
    fields: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let path = input.path_of("fields");
    fields
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) if text.chars().count() <= 1000 => Ok((name.clone(), text.clone())),
            _ => Err(ApiError::invalid(
                format!("{path}.{name}"),
                "wrong_type",
                format!("\"{path}.{name}\" must be a string of at most 1000 characters"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        assert_eq!(opt_keyword("stop"), Some(OptKeyword::Out));
        assert_eq!(opt_keyword("  Unsubscribe. "), Some(OptKeyword::Out));
        assert_eq!(opt_keyword("STOPALL"), Some(OptKeyword::Out));
        assert_eq!(opt_keyword("start"), Some(OptKeyword::In));
        assert_eq!(opt_keyword("Unstop!"), Some(OptKeyword::In));
        assert_eq!(opt_keyword("please stop calling"), None);
        assert_eq!(opt_keyword(""), None);
    }

    #[test]
    fn opting_out_is_per_channel_and_reversible() {
        let mut contact = Contact::for_sender("o", "whatsapp", "+4712345678", None, "t0");
        assert!(contact.apply(OptKeyword::Out, "whatsapp", "t1"));
        assert!(!contact.apply(OptKeyword::Out, "whatsapp", "t2"));
        assert!(contact.is_opted_out("whatsapp") && !contact.is_opted_out("sms"));
        assert_eq!(contact.opted_out["whatsapp"], "t1");
        assert!(contact.apply(OptKeyword::In, "whatsapp", "t3"));
        assert!(!contact.is_opted_out("whatsapp"));
    }

    #[test]
    fn senders_get_one_contact_per_address() {
        let a = Contact::for_sender("o", "whatsapp", "+1", Some("Jane"), "t");
        let b = Contact::for_sender("o", "whatsapp", "+1", None, "t");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, contact_id_for("o", "sms", "+1"));
        assert_eq!((a.name.as_str(), b.name.as_str()), ("Jane", "+1"));
    }
}
