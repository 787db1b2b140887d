//! API keys (R-TEN-3): admins create keys with a role, list them masked and
//! revoke them. The token is in the create response and nowhere else. Any
//! key may ask who it is (`GET /api/keys/me`).

use super::Ctx;
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{ApiKey, Role};
use crate::entities::agent::Agent;
use crate::error::Error;
use crate::input::{self, Object};
use crate::store;
use serde::Serialize;

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

/// What `GET /api/keys/me` tells a key about itself: enough for a client
/// to know what it may do, never the token or its hash.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyIdentity {
    pub org_id: String,
    pub key_id: String,
    pub name: String,
    pub role: Role,
    /// The agent an `agent` key acts as; absent for other roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// `GET /api/keys/me`, for a key of any role.
pub fn me(ctx: &Ctx, request: &Request) -> Result<Response, Error> {
    if request.method != Method::Get {
        return Ok(method_not_allowed(&["GET"]));
    }
    // Authentication read the key a moment ago; revoked since, it is no key.
    let key: ApiKey = store::load(ctx.kv(), ctx.org(), &ctx.principal.key_id)?
        .ok_or_else(|| Error::Unauthorized("this API key was revoked".into()))?;
    let identity = KeyIdentity {
        org_id: ctx.org().to_owned(),
        key_id: key.id,
        name: key.name,
        role: key.role,
        agent_id: key.agent_id,
    };
    Ok(Response::json(200, &identity))
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
