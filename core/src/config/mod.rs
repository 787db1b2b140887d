//! The configuration API (SPEC.md R-CFG): one generic create / read / update /
//! list / delete over [`Resource`]s, so every entity gets the same rules —
//! role checks, validation with named fields (R-CFG-8), masking on read
//! (R-TEN-4), and writes that are one transaction or nothing.
//!
//! Updates are PATCHes: the body's top-level fields replace the stored ones,
//! and the result is validated exactly like a create. Secrets left out of a
//! PATCH keep their stored values, since reads only ever show masks.

pub mod accounts;
pub mod agents;
pub mod keys;
pub mod orgs;
pub mod outbound_configs;
pub mod queues;
pub mod warnings;
pub mod workstreams;

use crate::api::{Method, Request, Response};
use crate::auth::{Principal, Role};
use crate::entities::agent::Agent;
use crate::entities::outbound_config::OutboundConfig;
use crate::entities::queue::Queue;
use crate::entities::workstream::Workstream;
use crate::error::Error;
use crate::input::{self, Object};
use crate::lease::Lease;
use crate::ports::Ports;
use crate::store::{self, Claim, Document};
use crate::time::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// What a handler knows about the request it serves.
pub struct Ctx<'a> {
    pub ports: &'a Ports<'a>,
    pub principal: Principal,
    /// When the request came, for `created_at` / `updated_at`, leases and
    /// time arithmetic.
    pub now: Timestamp,
}

impl<'a> Ctx<'a> {
    /// The context of a request made with an API key.
    pub fn authenticate(request: &Request, ports: &'a Ports<'a>) -> Result<Ctx<'a>, Error> {
        Ok(Ctx {
            ports,
            principal: crate::auth::authenticate(request, ports.kv)?,
            now: Timestamp::from_millis(ports.clock.now_millis()),
        })
    }

    /// `created_at` for a document: the stored one on an update.
    pub fn created_at(&self, existing: Option<Timestamp>) -> Timestamp {
        existing.unwrap_or(self.now)
    }

    pub fn org(&self) -> &str {
        &self.principal.org
    }

    pub fn kv(&self) -> &dyn crate::ports::KeyValue {
        self.ports.kv
    }

    /// `public_base_url` without a trailing slash: where providers reach us.
    pub fn public_base_url(&self) -> String {
        public_base_url(self.ports.variables)
    }
}

/// `public_base_url` without a trailing slash: where providers reach us.
pub fn public_base_url(variables: &dyn crate::ports::Variables) -> String {
    variables
        .get("public_base_url")
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned()
}

/// What saving a document changes besides the document itself.
#[derive(Default)]
pub struct Effects {
    /// Written in the document's transaction.
    pub writes: Vec<(String, Vec<u8>)>,
    /// Deleted after the document is written, best effort: caches and
    /// records whose leftovers only cost a refetch.
    pub deletes: Vec<String>,
    /// The leases of unique names this save is claiming, given back once
    /// the save is written or has failed (else they expire).
    claiming: Vec<Lease>,
}

impl Effects {
    /// Claims the unique `name` for `owner`; a name won is written with the
    /// document (its owner record).
    pub fn claim(&mut self, ctx: &Ctx, name: String, owner: &str) -> Result<Claim<()>, Error> {
        let claim = store::claim(ctx.kv(), &name, owner, ctx.ports.clock.now_millis())?;
        Ok(match claim {
            Claim::Won(lease) => {
                self.writes
                    .push((store::owner_key(&name), owner.as_bytes().to_vec()));
                self.claiming.push(lease);
                Claim::Won(())
            }
            Claim::Held => Claim::Held,
            Claim::Taken(holder) => Claim::Taken(holder),
        })
    }

    /// Gives `name` back, in the save's transaction.
    pub fn release(&mut self, ctx: &Ctx, name: &str) {
        self.writes
            .push(store::release(name, &ctx.ports.random.id128()));
    }
}

/// An entity of the configuration API.
pub trait Resource: Document + Clone {
    /// Roles that may read.
    const READERS: &'static [Role] = &[Role::Admin];
    /// Roles that may create, change and delete.
    const WRITERS: &'static [Role] = &[Role::Admin];

    /// The create body: the writable fields, as the API takes them. The
    /// contract (`contract/`) documents this type as the create and update
    /// bodies, and an update merges its PATCH onto the stored document's
    /// [`Resource::input`]: a field named here that `build` does not read
    /// fails every update, so the two cannot drift apart unnoticed.
    type Input: Serialize;

    /// The writable fields of a stored document, secrets included.
    fn input(&self) -> Self::Input;

    /// Builds the document from a create body, or from a merged PATCH
    /// (`existing` is then the stored version).
    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error>;

    /// The document as the API shows it, secrets masked; documents without
    /// secrets show as they are stored.
    fn view(&self, _ctx: &Ctx) -> Value {
        serde_json::to_value(self).expect("documents serialize to JSON")
    }

    /// Checks against other documents, and adds to `effects` what else the
    /// save writes. Names claimed into `effects` are given back if the save
    /// fails, here or in the store.
    fn on_save(
        &mut self,
        _ctx: &Ctx,
        _previous: Option<&Self>,
        _effects: &mut Effects,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Runs after a create or update was written. Best effort: the save
    /// stands whatever happens here.
    fn after_save(&self, _ctx: &Ctx) {}

    /// Refuses a delete while something depends on the document (409), and
    /// returns the keys to delete with it.
    fn on_delete(&self, _ctx: &Ctx) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Runs after the delete: keys to write once the document is gone.
    fn after_delete(&self, _ctx: &Ctx) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }
}

/// `GET` / `POST` on a collection, `GET` / `PATCH` / `DELETE` on one item.
pub fn serve<R: Resource>(
    ctx: &Ctx,
    request: &Request,
    id: Option<&str>,
) -> Result<Response, Error> {
    if let Some(save) = Save::<R>::read(ctx, request, id)? {
        return save.commit(ctx);
    }
    match (id, request.method) {
        (None, Method::Get) => {
            ctx.principal.require(R::READERS)?;
            list_page(ctx, request, |item: &R| item.view(ctx))
        }
        (None, _) => Ok(crate::api::method_not_allowed(&["GET", "POST"])),
        (Some(id), Method::Get) => {
            ctx.principal.require(R::READERS)?;
            let document: R = store::require(ctx.kv(), ctx.org(), id)?;
            Ok(Response::json(200, &document.view(ctx)))
        }
        (Some(id), Method::Delete) => {
            ctx.principal.require(R::WRITERS)?;
            let existing: R = store::require(ctx.kv(), ctx.org(), id)?;
            let extra = existing.on_delete(ctx)?;
            store::remove::<R>(ctx.kv(), ctx.org(), id, extra)?;
            // Deleted: what follows is best effort.
            let after = existing.after_delete(ctx);
            if !after.is_empty() {
                let _ = ctx.kv().set_many(&after);
            }
            Ok(Response::no_content())
        }
        (Some(_), _) => Ok(crate::api::method_not_allowed(&["GET", "PATCH", "DELETE"])),
    }
}

/// A create (`POST` on the collection) or an update (`PATCH` on an item),
/// built and validated but not written: a resource that must ask a
/// provider before saving does so between [`Save::read`] and
/// [`Save::commit`], with nothing written yet.
pub struct Save<R> {
    pub document: R,
    /// The stored version an update replaces.
    pub existing: Option<R>,
}

impl<R: Resource> Save<R> {
    /// The save `request` asks for, if it is one.
    pub fn read(ctx: &Ctx, request: &Request, id: Option<&str>) -> Result<Option<Self>, Error> {
        Ok(Some(match (id, request.method) {
            (None, Method::Post) => {
                ctx.principal.require(R::WRITERS)?;
                let body = input::json_object(&request.body)?;
                let document = R::build(ctx, ctx.ports.random.id128(), Object::root(&body), None)?;
                Save {
                    document,
                    existing: None,
                }
            }
            (Some(id), Method::Patch) => {
                ctx.principal.require(R::WRITERS)?;
                let patch = input::json_object(&request.body)?;
                let existing: R = store::require(ctx.kv(), ctx.org(), id)?;
                let stored = serde_json::to_value(existing.input())
                    .expect("create bodies serialize to JSON");
                let merged = input::merge(&stored, patch);
                let document =
                    R::build(ctx, id.to_owned(), Object::root(&merged), Some(&existing))?;
                Save {
                    document,
                    existing: Some(existing),
                }
            }
            _ => return Ok(None),
        }))
    }

    /// Writes the save: `201` with the new document, or `200` with the
    /// updated one.
    pub fn commit(self, ctx: &Ctx) -> Result<Response, Error> {
        let status = if self.existing.is_some() { 200 } else { 201 };
        let document = write(ctx, self.document, self.existing.as_ref())?;
        Ok(Response::json(status, &document.view(ctx)))
    }
}

/// `GET` on a collection: one page of `view`s, in the shape every list has.
pub fn list_page<D: Document>(
    ctx: &Ctx,
    request: &Request,
    view: impl Fn(&D) -> Value,
) -> Result<Response, Error> {
    let (cursor, limit) = store::paging(request)?;
    let page = store::list::<D>(ctx.kv(), ctx.org(), cursor, limit)?;
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Response::json(
        200,
        &serde_json::json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

/// Saves a built document with its effects in one transaction.
fn write<R: Resource>(ctx: &Ctx, mut document: R, previous: Option<&R>) -> Result<R, Error> {
    let mut effects = Effects::default();
    let result = document
        .on_save(ctx, previous, &mut effects)
        .and_then(|()| match previous {
            None => store::insert(ctx.kv(), ctx.org(), &document, effects.writes),
            Some(_) => store::save(ctx.kv(), ctx.org(), &document, effects.writes),
        });
    for lease in effects.claiming {
        lease.release(ctx.kv());
    }
    result?;
    // The save is written: nothing after it may turn it into an error.
    if !effects.deletes.is_empty() {
        let _ = ctx.kv().delete_many(&effects.deletes);
    }
    document.after_save(ctx);
    Ok(document)
}

/// 409 naming what still uses a document.
pub fn in_use(what: &str, users: &[String], fix: &str) -> Error {
    Error::conflict(
        "in_use",
        format!("{what} is still used by {}; {fix}", users.join(", ")),
    )
}

/// The routes of the admin component, after `/health`.
pub async fn route(request: &Request, ports: &Ports<'_>) -> Result<Response, Error> {
    let segments = request.segments();
    if segments.first() != Some(&"api") {
        return Err(Error::no_route(&request.path));
    }
    // Routes the operator token opens: they authenticate themselves.
    match segments[1..] {
        ["orgs"] => return orgs::create(request, ports),
        ["warnings"] => return warnings::serve(request, ports),
        _ => {}
    }
    let ctx = Ctx::authenticate(request, ports)?;
    match segments[1..] {
        ["orgs", id] => orgs::read(&ctx, request, id),
        ["keys"] => keys::serve(&ctx, request, None),
        ["keys", "me"] => keys::me(&ctx, request),
        ["keys", id] => keys::serve(&ctx, request, Some(id)),
        ["accounts"] => accounts::serve(&ctx, request, None).await,
        ["accounts", id] => accounts::serve(&ctx, request, Some(id)).await,
        ["accounts", id, "validate"] => accounts::validate(&ctx, request, id).await,
        ["queues"] => serve::<Queue>(&ctx, request, None),
        ["queues", id] => serve::<Queue>(&ctx, request, Some(id)),
        ["agents"] => serve::<Agent>(&ctx, request, None),
        ["agents", id] if request.method == Method::Get => agents::read(&ctx, id),
        ["agents", id] => serve::<Agent>(&ctx, request, Some(id)),
        ["agents", id, "presence"] => agents::set_presence(&ctx, request, id),
        ["workstreams"] => serve::<Workstream>(&ctx, request, None),
        ["workstreams", id] => serve::<Workstream>(&ctx, request, Some(id)),
        ["workstreams", id, "rotate-bot-secret"] => {
            workstreams::rotate_bot_secret(&ctx, request, id)
        }
        ["outbound-configs"] => serve::<OutboundConfig>(&ctx, request, None),
        ["outbound-configs", id] => serve::<OutboundConfig>(&ctx, request, Some(id)),
        _ => Err(Error::no_route(&request.path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FailingOnce, MemoryPorts};

    fn create_account(ports: &Ports, body: &serde_json::Value) -> Response {
        let ctx = Ctx {
            ports,
            principal: Principal {
                org: "0".repeat(32),
                key_id: "1".repeat(32),
                role: Role::Admin,
                agent_id: None,
            },
            now: Timestamp::from_millis(1_767_225_600_000),
        };
        let mut request = Request::new(Method::Post, "/api/accounts");
        request.body = body.to_string().into_bytes();
        serve::<accounts::Account>(&ctx, &request, None).unwrap_or_else(Error::into_response)
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind_and_gives_back_its_claims() {
        let memory = MemoryPorts::default();
        let kv = FailingOnce::default();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let body = serde_json::json!({
            "provider": "facebook", "name": "Messenger", "app_id": "1", "app_secret": "secret",
            "pages": [{"name": "P", "page_id": "42", "access_token": "token"}],
        });
        kv.fail_next_write.set(true);
        let failed = create_account(&ports, &body);
        assert_eq!(failed.status, 503);
        let org = "0".repeat(32);
        assert!(store::list::<accounts::Account>(&kv, &org, 0, 10)
            .unwrap()
            .items
            .is_empty());
        // The page claim was given back: the retry connects the page.
        let retried = create_account(&ports, &body);
        assert_eq!(retried.status, 201);
        let account: serde_json::Value = serde_json::from_slice(&retried.body).unwrap();
        assert!(account["pages"][0]["callback_url"].is_string(), "{account}");
    }
}
