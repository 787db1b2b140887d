//! API keys (R-TEN-3): admins create keys with a role, list them masked and
//! revoke them. The token is in the create response and nowhere else.

use super::Ctx;
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{ApiKey, Role};
use crate::entities::agent::Agent;
use crate::error::Error;
use crate::input::{self, Object};
use crate::store;

pub fn serve(ctx: &Ctx, request: &Request, id: Option<&str>) -> Result<Response, Error> {
    ctx.principal.require(&[Role::Admin])?;
    match (id, request.method) {
        (None, Method::Post) => create(ctx, request),
        (None, Method::Get) => super::list_page(ctx, request, |key: &ApiKey| {
            serde_json::to_value(key.view(None)).expect("keys serialize")
        }),
        (None, _) => Ok(method_not_allowed(&["GET", "POST"])),
        (Some(id), Method::Get) => {
            let key: ApiKey = store::require(ctx.kv(), ctx.org(), id)?;
            Ok(Response::json(200, &key.view(None)))
        }
        (Some(id), Method::Delete) => {
            let key: ApiKey = store::require(ctx.kv(), ctx.org(), id)?;
            if key.id == ctx.principal.key_id {
                return Err(Error::conflict(
                    "own_key",
                    "a key cannot revoke itself; revoke it with another admin key",
                ));
            }
            store::remove::<ApiKey>(ctx.kv(), ctx.org(), id, Vec::new())?;
            Ok(Response::no_content())
        }
        (Some(_), _) => Ok(method_not_allowed(&["GET", "DELETE"])),
    }
}

fn create(ctx: &Ctx, request: &Request) -> Result<Response, Error> {
    let body = input::json_object(&request.body)?;
    let fields = Object::root(&body);
    fields.only(&["name", "role", "agent_id"])?;
    let name = fields.name("name", 100)?;
    let role = fields
        .one_of::<Role>("role")?
        .ok_or_else(|| fields.missing("role"))?;
    let agent_id = match (role, fields.str("agent_id")?) {
        (Role::Agent, Some(agent_id)) => {
            if store::load::<Agent>(ctx.kv(), ctx.org(), agent_id)?.is_none() {
                return Err(fields.error(
                    "agent_id",
                    "unknown_agent",
                    format!("no agent with id {agent_id} in this organisation; create it with POST /api/agents"),
                ));
            }
            Some(agent_id.to_owned())
        }
        (Role::Agent, None) => {
            return Err(fields.error(
                "agent_id",
                "required",
                "an agent key is bound to one agent: give \"agent_id\"",
            ))
        }
        (_, Some(_)) => {
            return Err(fields.error(
                "agent_id",
                "not_allowed",
                "only keys with role \"agent\" are bound to an agent",
            ))
        }
        (_, None) => None,
    };
    let (key, token) = ApiKey::issue(ctx.ports.random, ctx.org(), name, role, agent_id, ctx.now);
    store::insert(ctx.kv(), ctx.org(), &key, Vec::new())?;
    Ok(Response::json(201, &key.view(Some(&token))))
}
