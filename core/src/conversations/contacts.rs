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
use crate::config::{Ctx, Resource};
use crate::entities::activity::{self, Activity};
use crate::entities::contact::{address_key, Contact};
use crate::error::Error;
use crate::input::Object;
use crate::ports::KeyValue;
use crate::store;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

impl Resource for Contact {
    type Input = Value;

    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];
    const WRITERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> Value {
        json!({"name": self.name, "fields": self.fields})
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

/// `GET /api/contacts/{id}`: the contact, each address with
/// `opted_out_at` (when its customer opted out of that channel, or null).
pub fn read(ctx: &Ctx, id: &str) -> Result<Response, Error> {
    ctx.principal.require(Contact::READERS)?;
    let contact: Contact = store::require(ctx.kv(), ctx.org(), id)?;
    let addresses: Vec<(&str, &str)> = contact
        .addresses
        .iter()
        .map(|a| (a.channel.as_str(), a.address.as_str()))
        .collect();
    let records = consent::read_many(ctx.kv(), ctx.org(), &addresses)?;
    let mut view = contact.view(ctx);
    view["addresses"] = contact
        .addresses
        .iter()
        .zip(records)
        .map(|(address, record)| {
            let standing = Standing::of(record, Some(&contact), address.channel);
            json!({
                "channel": address.channel,
                "address": address.address,
                "opted_out_at": standing.opted_out_since(),
            })
        })
        .collect();
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
    Ok(Response::json(
        200,
        &json!({
            "items": items,
            "next_cursor": (oldest > 1).then(|| oldest.to_string()),
        }),
    ))
}
