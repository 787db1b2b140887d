//! Opt-outs (SPEC.md R-IN-8): a customer's STOP belongs to the address it
//! was sent from, on that channel, and nothing but the customer undoes it.
//!
//! Contacts are the organisation's own bookkeeping: agents link an address
//! to another contact, admins delete and re-create contacts. None of that
//! may bring a message to someone who said STOP, so the opt-out is not a
//! contact field but a small key of its own, `opt-out/{channel}/{address}`.
//! It is written in the same transaction as the customer's message that
//! says the keyword, so a STOP the provider got its 2xx for is stored
//! (R-OPS-4), and it is never rewritten with the contact. The customer's
//! START (or another opt-in word) writes it back as opted in: a batch write
//! cannot delete, and a record that says so costs nothing to read.
//!
//! A keyword writes its record outright, without reading it: the record
//! says what the customer said last, and since when. So a STOP on a live
//! conversation costs no read beyond the message's three (SPEC.md's budget
//! on a store that reads key by key); a repeated STOP moves the time to
//! its own, and a START from someone never opted out writes an opted-in
//! record, which changes nothing.
//!
//! The key names the channel type, as the contact index does: SMS STOP
//! means no more SMS from this organisation, whichever number or provider
//! would send it (each channel type has one provider today, so this is the
//! provider's address too).
//!
//! Contacts saved before opt-outs moved here carry `opted_out` (channel →
//! when) for all their addresses on a channel. That is honoured for an
//! address without a record of its own, and copied onto the addresses
//! ([`keep_legacy`]) before a link or a delete would part it from them.

use crate::channel::Channel;
use crate::entities::contact::Contact;
use crate::error::Error;
use crate::ports::KeyValue;
use crate::store;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// An address's opt-out record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub opted_out: bool,
    /// When the customer's keyword set it.
    pub at: Timestamp,
}

pub fn key(org: &str, channel: &str, address: &str) -> String {
    format!(
        "org/{org}/opt-out/{channel}/{}",
        crate::encoding::percent_encode(address)
    )
}

/// Words that opt a customer out, and back in: Twilio's defaults (its
/// Advanced Opt-Out documentation), which carriers and TeleSign's keyword
/// handling share.
const OPT_OUT_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN_WORDS: &[&str] = &["START", "YES", "UNSTOP"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
}

/// A message that is exactly one of the keywords (any case, surrounding
/// blanks and a final full stop or exclamation mark ignored).
pub fn keyword(text: &str) -> Option<Keyword> {
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_ascii_uppercase();
    if OPT_OUT_WORDS.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN_WORDS.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else {
        None
    }
}

/// Where an address stands: its own record, else the legacy flag of the
/// contact it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    record: Option<Consent>,
    legacy_since: Option<Timestamp>,
}

impl Standing {
    /// `record` is the value of the address's [`key`]; `contact` the
    /// contact the address points to, if any.
    pub fn of(record: Option<Consent>, contact: Option<&Contact>, channel: Channel) -> Standing {
        Standing {
            record,
            legacy_since: contact.and_then(|c| c.opted_out.get(channel.as_str()).copied()),
        }
    }

    /// When the customer opted out, if they are opted out now.
    pub fn opted_out_since(&self) -> Option<Timestamp> {
        match &self.record {
            Some(record) => record.opted_out.then_some(record.at),
            None => self.legacy_since,
        }
    }
}

impl Consent {
    /// The record of the customer's `keyword`, said at `now`.
    pub fn said(keyword: Keyword, now: Timestamp) -> Consent {
        Consent {
            opted_out: keyword == Keyword::OptOut,
            at: now,
        }
    }
}

/// Copies a contact's legacy opt-outs onto those of its addresses that
/// have no record of their own, before a link or a delete parts them. It
/// only writes what already holds, so it may run again, or before a
/// change that then fails.
pub fn keep_legacy(kv: &dyn KeyValue, org: &str, contact: &Contact) -> Result<(), Error> {
    let flagged: Vec<(String, Timestamp)> = contact
        .addresses
        .iter()
        .filter_map(|a| {
            let since = contact.opted_out.get(a.channel.as_str())?;
            Some((key(org, a.channel.as_str(), &a.address), *since))
        })
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = flagged.iter().map(|(key, _)| key.clone()).collect();
    let writes: Vec<(String, Vec<u8>)> = flagged
        .into_iter()
        .zip(kv.get_many(&keys)?)
        .filter(|(_, found)| found.is_none())
        .map(|((key, since), _)| {
            let record = Consent {
                opted_out: true,
                at: since,
            };
            (key, store::encode(&record))
        })
        .collect();
    if !writes.is_empty() {
        kv.set_many(&writes)?;
    }
    Ok(())
}

/// The records of `addresses` (channel, address) in one read.
pub fn read_many(
    kv: &dyn KeyValue,
    org: &str,
    addresses: &[(&str, &str)],
) -> Result<Vec<Option<Consent>>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = addresses
        .iter()
        .map(|(channel, address)| key(org, channel, address))
        .collect();
    keys.iter()
        .zip(kv.get_many(&keys)?)
        .map(|(key, found)| store::decode_found(key, found))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryPorts;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        assert_eq!(keyword("stop"), Some(Keyword::OptOut));
        assert_eq!(keyword("  Unsubscribe. "), Some(Keyword::OptOut));
        assert_eq!(keyword("STOPALL"), Some(Keyword::OptOut));
        assert_eq!(keyword("optout"), Some(Keyword::OptOut));
        assert_eq!(keyword("start"), Some(Keyword::OptIn));
        assert_eq!(keyword("Yes!"), Some(Keyword::OptIn));
        assert_eq!(keyword("Unstop!"), Some(Keyword::OptIn));
        assert_eq!(keyword("please stop calling"), None);
        assert_eq!(keyword(""), None);
    }

    fn t(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    fn record(opted_out: bool, at: Timestamp) -> Option<Consent> {
        Some(Consent { opted_out, at })
    }

    #[test]
    fn the_last_keyword_says_where_the_address_stands_and_since_when() {
        let fresh = Standing::of(None, None, Channel::Sms);
        assert_eq!(fresh.opted_out_since(), None);
        let stop = Consent::said(Keyword::OptOut, t(1));
        assert_eq!(Some(stop.clone()), record(true, t(1)));
        let out = Standing::of(Some(stop), None, Channel::Sms);
        assert_eq!(out.opted_out_since(), Some(t(1)));
        let start = Consent::said(Keyword::OptIn, t(2));
        assert_eq!(Some(start.clone()), record(false, t(2)));
        let back_in = Standing::of(Some(start), None, Channel::Sms);
        assert_eq!(back_in.opted_out_since(), None);
    }

    #[test]
    fn a_legacy_contact_flag_counts_until_the_address_has_a_record() {
        let mut contact = Contact::for_sender(
            "o",
            Channel::Sms,
            "+4712345678",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        contact.opted_out.insert("sms".into(), t(1));
        let legacy = Standing::of(None, Some(&contact), Channel::Sms);
        assert_eq!(legacy.opted_out_since(), Some(t(1)));
        assert_eq!(
            Standing::of(None, Some(&contact), Channel::Whatsapp).opted_out_since(),
            None
        );
        // The address's own record, once a keyword wrote one, wins.
        let stopped = Some(Consent::said(Keyword::OptOut, t(2)));
        let pinned = Standing::of(stopped, Some(&contact), Channel::Sms);
        assert_eq!(pinned.opted_out_since(), Some(t(2)));
        let started = Some(Consent::said(Keyword::OptIn, t(3)));
        let reversed = Standing::of(started, Some(&contact), Channel::Sms);
        assert_eq!(reversed.opted_out_since(), None);
    }

    #[test]
    fn legacy_opt_outs_are_copied_to_addresses_without_a_record() {
        let memory = MemoryPorts::default();
        let kv = memory.ports().kv;
        let mut contact = Contact::for_sender(
            "o",
            Channel::Sms,
            "+4711111111",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        contact
            .addresses
            .push(crate::entities::contact::ContactAddress {
                channel: Channel::Sms,
                address: "+4722222222".into(),
            });
        contact
            .addresses
            .push(crate::entities::contact::ContactAddress {
                channel: Channel::Whatsapp,
                address: "+4711111111".into(),
            });
        contact.opted_out.insert("sms".into(), t(1));
        let opted_in = Consent {
            opted_out: false,
            at: t(2),
        };
        kv.set(&key("o", "sms", "+4722222222"), &store::encode(&opted_in))
            .unwrap();
        keep_legacy(kv, "o", &contact).unwrap();
        let found = read_many(
            kv,
            "o",
            &[
                ("sms", "+4711111111"),
                ("sms", "+4722222222"),
                ("whatsapp", "+4711111111"),
            ],
        )
        .unwrap();
        assert_eq!(found, vec![record(true, t(1)), Some(opted_in), None]);
    }

    #[test]
    fn a_stored_record_reads_and_writes_back_the_same() {
        let stored = r#"{"opted_out":true,"at":"2026-01-01T00:00:00.000Z"}"#;
        let record: Consent = serde_json::from_str(stored).unwrap();
        assert_eq!(String::from_utf8(store::encode(&record)).unwrap(), stored);
    }
}
