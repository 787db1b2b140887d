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

use super::consent::{self, keep_legacy, Standing};
use crate::api::{Request, Response};
use crate::auth::Role;
use crate::channel::Channel;
use crate::config::{Ctx, Resource};
use crate::entities::activity::{self, Activity};
use crate::entities::contact::{address_key, Contact};
use crate::error::Error;
use crate::input::Object;
use crate::ports::KeyValue;
use crate::store::{self, Page};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    /// Shown without the legacy `opted_out`: [`read`] tells each
    /// address's opt-out, wherever it is kept.
    fn view(&self, _ctx: &Ctx) -> Value {
        let mut view = serde_json::to_value(self).expect("documents serialize to JSON");
        if let Some(fields) = view.as_object_mut() {
            fields.remove("opted_out");
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
