//! Contacts (R-CONV-2): who a customer is, across channels.
//!
//! A customer is first known by an address (a phone number, a PSID, a GBM
//! conversation): `address/{channel}/{address}` points at a contact. An
//! unknown sender gets a contact of their own whose id is derived from the
//! address, so two first messages at once create one contact, not two. An
//! agent who recognises the customer links the conversation to an existing
//! contact record; the address then points there, and later conversations
//! from that address attach to it. Contact fields (`"tier": "gold"`) are what
//! routing rules' `contact_field` conditions read. Opt-outs (R-IN-8) belong
//! to the addresses, not to contacts ([`super::consent`]), so no change to a
//! contact can undo one.
//!
//! `GET /api/contacts?q=` finds contacts by part of their name or of an
//! address. There is no search index: a search walks the contacts' list in
//! creation order, at most [`SEARCH_WINDOW`] entries per request, and its
//! `next_cursor` continues the walk where it stopped. A page may therefore
//! hold fewer matches than `limit`, even none, while more follow: every
//! listed contact is looked at exactly once across the pages, so none is
//! missed. The list holds every contact: those made through the API, and
//! those a customer's first message or an outbound send makes, which take
//! their slot as they are made (a contact whose id comes from its address
//! can be made again after a delete: its document names its current slot).
//! A search also looks `q` up as a whole address (direct reads), and the
//! first page starts with what that finds, however far down the list.

use super::consent::{self, keep_legacy, Standing};
use crate::api::{Method, Request, Response};
use crate::auth::Role;
use crate::channel::Channel;
use crate::config::{self, Ctx, Resource};
use crate::entities::activity::{self, Activity};
use crate::entities::contact::{address_key, Contact, ContactAddress};
use crate::error::Error;
use crate::input::Object;
use crate::ports::KeyValue;
use crate::store::{self, Page};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Index entries one search request looks at, at most: what bounds its
/// cost, whatever the number of contacts.
pub const SEARCH_WINDOW: i64 = 1000;
/// The longest `q` a search takes, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// A contact as `POST /api/contacts` takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactInput {
    /// Up to 200 characters.
    pub name: String,
    /// Values routing rules' `contact_field` conditions read: strings of
    /// up to 1,000 characters.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub fields: BTreeMap<String, String>,
}

/// Who may read a contact's timeline: the flows that write it too.
pub const TIMELINE_READERS: &[Role] = &[Role::Admin, Role::Agent, Role::Flow];

impl Resource for Contact {
    type Input = ContactInput;

    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];
    const WRITERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> ContactInput {
        ContactInput {
            name: self.name.clone(),
            fields: self.fields.clone(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        input.only(&["name", "fields"])?;
        let fields = input.object("fields")?.unwrap_or_default();
        Ok(Contact {
            id,
            name: input.name("name", 200)?,
            fields: read_fields(&input, &fields)?,
            addresses: existing.map(|e| e.addresses.clone()).unwrap_or_default(),
            opted_out: existing.map(|e| e.opted_out.clone()).unwrap_or_default(),
            listed_at: existing.and_then(|e| e.listed_at),
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    /// Shown without the legacy `opted_out` ([`read`] tells each
    /// address's opt-out, wherever it is kept) and the index slot.
    fn view(&self, _ctx: &Ctx) -> Value {
        let mut view = serde_json::to_value(self).expect("documents serialize to JSON");
        if let Some(fields) = view.as_object_mut() {
            fields.remove("opted_out");
            fields.remove("listed_at");
        }
        view
    }

    /// The addresses stop pointing here; their next message makes a new
    /// contact. Their opt-outs stay where they are, legacy ones copied to
    /// them first.
    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        keep_legacy(ctx.kv(), ctx.org(), self)?;
        Ok(self
            .addresses
            .iter()
            .map(|a| address_key(ctx.org(), a.channel.as_str(), &a.address))
            .collect())
    }
}

/// `GET /api/contacts/{id}`: the contact, each address with when its
/// customer opted out of that channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactRead {
    pub id: String,
    pub name: String,
    pub addresses: Vec<AddressStanding>,
    pub fields: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An address of a contact and its opt-out (R-IN-8).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddressStanding {
    pub channel: Channel,
    pub address: String,
    /// When the customer opted out of this channel (STOP), or `null`.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub opted_out_at: Option<Timestamp>,
}

pub fn read(ctx: &Ctx, id: &str) -> Result<Response, Error> {
    ctx.principal.require(Contact::READERS)?;
    let contact: Contact = store::require(ctx.kv(), ctx.org(), id)?;
    let addresses: Vec<(&str, &str)> = contact
        .addresses
        .iter()
        .map(|a| (a.channel.as_str(), a.address.as_str()))
        .collect();
    let records = consent::read_many(ctx.kv(), ctx.org(), &addresses)?;
    let addresses = contact
        .addresses
        .iter()
        .zip(records)
        .map(|(address, record)| AddressStanding {
            channel: address.channel,
            address: address.address.clone(),
            opted_out_at: Standing::of(record, Some(&contact), address.channel).opted_out_since(),
        })
        .collect();
    let view = ContactRead {
        id: contact.id,
        name: contact.name,
        addresses,
        fields: contact.fields,
        created_at: contact.created_at,
        updated_at: contact.updated_at,
    };
    Ok(Response::json(200, &view))
}

fn read_fields(
    input: &Object,
    fields: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, Error> {
    let path = input.path_of("fields");
    fields
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) if text.chars().count() <= 1000 => Ok((name.clone(), text.clone())),
            _ => Err(Error::invalid(
                format!("{path}.{name}"),
                "wrong_type",
                format!("\"{path}.{name}\" must be a string of at most 1000 characters"),
            )),
        })
        .collect()
}

/// `GET /api/contacts/{id}/timeline`: the contact's activities, newest
/// first, a page at a time (`?limit=`, `?cursor=` from `next_cursor`).
pub fn read_timeline(
    kv: &dyn KeyValue,
    org: &str,
    request: &Request,
    contact_id: &str,
) -> Result<Response, Error> {
    let (cursor, limit) = store::paging(request)?;
    store::require::<Contact>(kv, org, contact_id)?;
    let log = activity::timeline(org, contact_id);
    let newest = match cursor {
        0 => log.len(kv)?,
        below => below - 1,
    };
    let oldest = (newest - limit as i64 + 1).max(1);
    let mut entries = log.read(kv, oldest, newest)?;
    entries.reverse();
    let ids: Vec<String> = entries
        .iter()
        .map(|(_, id)| String::from_utf8_lossy(id).into_owned())
        .collect();
    let items = store::load_many::<Activity>(kv, org, &ids)?;
    let page = Page {
        items,
        next_cursor: (oldest > 1).then(|| oldest.to_string()),
    };
    Ok(Response::json(200, &page))
}

/// `GET /api/contacts`: a page of contacts in creation order, or with `?q=`
/// those matching it (see the module's documentation).
pub fn list(ctx: &Ctx, request: &Request) -> Result<Response, Error> {
    if request.method != Method::Get {
        return config::serve::<Contact>(ctx, request, None);
    }
    ctx.principal.require(Contact::READERS)?;
    let Some(query) = request.query_param("q") else {
        return config::list_page(ctx, request, |contact: &Contact| contact.view(ctx));
    };
    let query = Search::parse(&query)?;
    let (cursor, limit) = store::paging(request)?;
    let page = search(ctx.kv(), ctx.org(), &query, cursor, limit)?;
    let items: Vec<Value> = page.items.iter().map(|c| c.view(ctx)).collect();
    Ok(Response::json(
        200,
        &Page {
            items,
            next_cursor: page.next_cursor,
        },
    ))
}

/// What `?q=` looks for.
#[derive(Debug)]
struct Search {
    /// The text as typed, trimmed, for whole addresses.
    typed: String,
    /// The text, lowercased, for names and addresses as written.
    text: String,
    /// The digits of a query that reads as (part of) a phone number, for
    /// addresses however their `+` and spaces are written.
    digits: Option<String>,
}

impl Search {
    fn parse(query: &str) -> Result<Search, Error> {
        let typed = query.trim();
        if typed.is_empty() {
            return Err(Error::invalid(
                "q",
                "required",
                "\"q\" must have something to look for; leave it out to list every contact",
            ));
        }
        if typed.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                "q",
                "too_long",
                format!("\"q\" is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let phone_like = typed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
        Ok(Search {
            typed: typed.to_owned(),
            text: typed.to_lowercase(),
            digits: (phone_like && !digits.is_empty()).then_some(digits),
        })
    }

    fn matches(&self, contact: &Contact) -> bool {
        contact.name.to_lowercase().contains(&self.text)
            || contact.addresses.iter().any(|a| self.matches_address(a))
    }

    fn matches_address(&self, address: &ContactAddress) -> bool {
        let written = &address.address;
        written.to_lowercase().contains(&self.text)
            || self.digits.as_ref().is_some_and(|digits| {
                let own: String = written.chars().filter(char::is_ascii_digit).collect();
                own.contains(digits.as_str())
            })
    }

    /// The keys of every address the query can be as a whole, on every
    /// channel: as typed and, for a number, with and without its `+`.
    fn whole_address_keys(&self, org: &str) -> Vec<String> {
        let mut spellings = vec![self.typed.clone()];
        if let Some(digits) = &self.digits {
            spellings.extend([format!("+{digits}"), digits.clone()]);
        }
        let mut keys: Vec<String> = Channel::ALL
            .iter()
            .flat_map(|channel| {
                spellings
                    .iter()
                    .map(|address| address_key(org, channel.as_str(), address))
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// The contacts an address that is the whole query points at (two reads).
fn by_whole_address(kv: &dyn KeyValue, org: &str, query: &Search) -> Result<Vec<Contact>, Error> {
    let mut ids: Vec<String> = kv
        .get_many(&query.whole_address_keys(org))?
        .into_iter()
        .flatten()
        .map(|id| String::from_utf8_lossy(&id).into_owned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    store::load_many::<Contact>(kv, org, &ids)
}

/// The first page starts with the contacts found by their whole address,
/// all of them (one per channel and spelling at most, so a first page of
/// a `limit` below that holds more), then what the walk finds; every page
/// leaves them out of its walk, so none comes twice.
fn search(
    kv: &dyn KeyValue,
    org: &str,
    query: &Search,
    cursor: i64,
    limit: usize,
) -> Result<Page<Contact>, Error> {
    let whole = by_whole_address(kv, org, query)?;
    let found_whole: Vec<String> = whole.iter().map(|c| c.id.clone()).collect();
    // The walk still takes a step on a first page full of them, so that
    // its cursor moves on.
    let room = match cursor {
        0 => limit.saturating_sub(whole.len()).max(1),
        _ => limit,
    };
    let mut page = walk(kv, org, cursor, room, |c| {
        !found_whole.contains(&c.id) && query.matches(c)
    })?;
    if cursor == 0 {
        page.items.splice(0..0, whole);
    }
    Ok(page)
}

/// Walks the contacts' list from `cursor`, [`SEARCH_WINDOW`] entries at
/// most, until `limit` contacts `keep`: the next cursor is the last entry
/// looked at, so the next page goes on from there.
fn walk(
    kv: &dyn KeyValue,
    org: &str,
    cursor: i64,
    limit: usize,
    keep: impl Fn(&Contact) -> bool,
) -> Result<Page<Contact>, Error> {
    let index = store::index::<Contact>(org);
    let count = index.len(kv)?;
    let stop = count.min(cursor.saturating_add(SEARCH_WINDOW));
    let mut items = Vec::new();
    let mut position = cursor;
    while items.len() < limit && position < stop {
        let end = stop.min(position + store::MAX_PAGE_SIZE as i64);
        let entries = index.read(kv, position + 1, end)?;
        position = end;
        for (slot, contact) in store::listed::<Contact>(kv, org, &entries)? {
            if keep(&contact) {
                items.push(contact);
                if items.len() == limit {
                    position = slot;
                    break;
                }
            }
        }
    }
    Ok(Page {
        items,
        next_cursor: (position < count).then(|| position.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKeyValue;

    const ORG: &str = "0123456789abcdef0123456789abcdef";

    fn contact(n: usize, name: &str, addresses: &[(Channel, &str)]) -> Contact {
        Contact {
            id: format!("{n:032x}"),
            name: name.to_owned(),
            addresses: addresses
                .iter()
                .map(|(channel, address)| ContactAddress {
                    channel: *channel,
                    address: (*address).to_owned(),
                })
                .collect(),
            fields: BTreeMap::new(),
            opted_out: BTreeMap::new(),
            listed_at: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    fn finds(query: &str, contact: &Contact) -> bool {
        Search::parse(query).unwrap().matches(contact)
    }

    #[test]
    fn a_search_matches_part_of_a_name_or_an_address_however_a_number_is_typed() {
        let kari = contact(
            1,
            "Kari Nordmann",
            &[
                (Channel::Whatsapp, "+4790000001"),
                (Channel::Gbm, "conv-ABC"),
            ],
        );
        for query in [
            "kari",
            "NORDM",
            " ri no ",
            "+4790000001",
            "4790000001",
            "+47 900 00",
            "900-000",
            "abc",
        ] {
            assert!(finds(query, &kari), "{query}");
        }
        for query in ["ola", "+4790000002", "kari x", "47 91"] {
            assert!(!finds(query, &kari), "{query}");
        }
        for (query, code) in [
            ("", "required"),
            ("   ", "required"),
            (&"x".repeat(101), "too_long"),
        ] {
            let error = Search::parse(query).unwrap_err();
            assert_eq!((error.status(), error.code()), (422, code), "{query}");
        }
        assert!(Search::parse(&"x".repeat(100)).is_ok());
    }

    /// Matches spread over more contacts than one request looks at: the
    /// cursors walk on, pages come back short or empty, none is missed
    /// and none comes twice; deleted contacts are skipped.
    #[test]
    fn search_pages_go_on_where_the_walk_stopped_and_miss_nothing() {
        let kv = MemoryKeyValue::default();
        let total = 2 * SEARCH_WINDOW as usize + 150;
        let mut expected = Vec::new();
        for n in 0..total {
            let name = if n % 97 == 0 {
                format!("Match {n}")
            } else {
                format!("Other {n}")
            };
            let contact = contact(n + 1, &name, &[(Channel::Sms, "+15550100")]);
            store::insert(&kv, ORG, &contact, vec![]).unwrap();
            if n % 97 == 0 && n % 5 != 0 {
                expected.push(contact.id.clone());
            }
        }
        for n in (0..total).step_by(5) {
            store::remove::<Contact>(&kv, ORG, &format!("{:032x}", n + 1), vec![]).unwrap();
        }
        let query = Search::parse("match").unwrap();
        let (mut found, mut cursor, mut pages) = (Vec::new(), 0, 0);
        loop {
            let page = search(&kv, ORG, &query, cursor, 4).unwrap();
            assert!(page.items.len() <= 4);
            found.extend(page.items.into_iter().map(|c| c.id));
            pages += 1;
            match page.next_cursor {
                Some(next) => cursor = next.parse().unwrap(),
                None => break,
            }
        }
        assert_eq!(found, expected);
        assert!(pages > expected.len() / 4, "{pages} pages");
        // One request looks at one window, however few it found there.
        let first = search(&kv, ORG, &query, 0, 200).unwrap();
        assert_eq!(first.next_cursor, Some(SEARCH_WINDOW.to_string()));
        let in_window = expected
            .iter()
            .filter(|id| u64::from_str_radix(id, 16).unwrap() <= SEARCH_WINDOW as u64);
        assert_eq!(first.items.len(), in_window.count());
    }

    /// A customer's own contact is in no list: its whole number, however
    /// typed, finds it first; a listed contact with the address comes once.
    #[test]
    fn a_whole_address_finds_contacts_that_are_in_no_list() {
        let kv = MemoryKeyValue::default();
        let customer = contact(7, "Jane Doe", &[(Channel::Whatsapp, "+4790000001")]);
        let listed = contact(8, "Kari", &[(Channel::Sms, "4790000001")]);
        let other = contact(9, "Ola", &[(Channel::Sms, "+4790000001999")]);
        store::save(&kv, ORG, &customer, vec![]).unwrap();
        for contact in [&listed, &other] {
            store::insert(&kv, ORG, contact, vec![]).unwrap();
        }
        let mut pointers = vec![];
        for contact in [&customer, &listed] {
            let address = &contact.addresses[0];
            pointers.push((
                address_key(ORG, address.channel.as_str(), &address.address),
                contact.id.clone().into_bytes(),
            ));
        }
        kv.set_many(&pointers).unwrap();
        let names = |query: &str, cursor: i64, limit: usize| {
            let page = search(&kv, ORG, &Search::parse(query).unwrap(), cursor, limit).unwrap();
            let names: Vec<String> = page.items.into_iter().map(|c| c.name).collect();
            (names, page.next_cursor)
        };
        for typed in ["+4790000001", "47 900 00 001", "+47-900-00001"] {
            assert_eq!(
                names(typed, 0, 10),
                (vec!["Jane Doe".into(), "Kari".into(), "Ola".into()], None),
                "{typed}"
            );
        }
        assert_eq!(names("jane", 0, 10), (vec![], None));
        // A first page fuller than its limit still moves the walk on.
        let (first, next) = names("4790000001", 0, 1);
        assert_eq!(first, vec!["Jane Doe", "Kari", "Ola"]);
        assert_eq!(next, None);
        let (first, next) = names("4790000001", 0, 2);
        assert_eq!((first.len(), next.as_deref()), (3, None));
    }
}
