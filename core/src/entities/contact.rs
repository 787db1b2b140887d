//! A contact (R-CONV-2) as stored: who a customer is, across channels,
//! and the addresses that point at them.

use crate::channel::Channel;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<ContactAddress>,
    /// Values routing rules can match (`contact_field`), all strings.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Channel type → when the customer opted out, as contacts kept it
    /// before opt-outs moved to their addresses ([`super::consent`]): read
    /// and kept, never added to. Keyed by the spelling, not [`Channel`], so
    /// the map keeps the alphabetical order it is stored in.
    /// The code that wrote them spelled times as [`Timestamp`] does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub opted_out: BTreeMap<String, Timestamp>,
    /// The contacts' index slot of a contact made for a sender (whose id
    /// comes from the address, so a deleted one can be made again): see
    /// [`crate::store::Document::listed_at`]. Not shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub listed_at: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactAddress {
    pub channel: Channel,
    pub address: String,
}

impl crate::store::Document for Contact {
    const KIND: &'static str = "contact";
    fn id(&self) -> &str {
        &self.id
    }
    fn listed_at(&self) -> Option<i64> {
        self.listed_at
    }
}

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

impl Contact {
    /// A contact for a sender seen for the first time.
    pub fn for_sender(
        org: &str,
        channel: Channel,
        address: &str,
        name: Option<&str>,
        now: Timestamp,
    ) -> Contact {
        Contact {
            id: contact_id_for(org, channel.as_str(), address),
            name: name.unwrap_or(address).to_owned(),
            addresses: vec![ContactAddress {
                channel,
                address: address.to_owned(),
            }],
            fields: BTreeMap::new(),
            opted_out: BTreeMap::new(),
            listed_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_get_one_contact_per_address() {
        let a = Contact::for_sender(
            "o",
            Channel::Whatsapp,
            "+1",
            Some("Jane"),
            crate::time::Timestamp::from_millis(0),
        );
        let b = Contact::for_sender(
            "o",
            Channel::Whatsapp,
            "+1",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, contact_id_for("o", "sms", "+1"));
        assert_eq!((a.name.as_str(), b.name.as_str()), ("Jane", "+1"));
    }

    /// A contact as stored before its addresses' channels were typed, a
    /// legacy opt-out included: it reads, and writes back byte for byte.
    #[test]
    fn stored_documents_read_and_write_back_unchanged() {
        let stored = r#"{"id":"c0000000000000000000000000000000","name":"Kari","addresses":[{"channel":"whatsapp","address":"+4790000001"},{"channel":"sms","address":"+4790000001"},{"channel":"facebook","address":"24680"},{"channel":"gbm","address":"conv-1"}],"fields":{"tier":"gold"},"opted_out":{"sms":"2026-01-01T00:00:00.000Z","whatsapp":"2026-01-02T00:00:00.000Z"},"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-02T00:00:00.000Z"}"#;
        let contact: Contact = serde_json::from_str(stored).unwrap();
        let channels: Vec<Channel> = contact.addresses.iter().map(|a| a.channel).collect();
        assert_eq!(channels, Channel::ALL);
        assert_eq!(serde_json::to_string(&contact).unwrap(), stored);
    }
}
