//! Organisations (R-TEN-1, R-TEN-2): the operator creates one and receives
//! its first admin key; its admins read it.

use super::Ctx;
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{self, ApiKey, ApiKeyView, Role};
use crate::error::Error;
use crate::input::{self, Object};
use crate::ports::Ports;
use crate::store;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// What `POST /api/orgs` answers: the organisation and its first admin
/// key, whose token is shown here only.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgCreated<'a> {
    pub org: &'a Org,
    pub api_key: ApiKeyView<'a>,
}

fn org_key(id: &str) -> String {
    format!("org/{id}/profile")
}

/// `POST /api/orgs` with the operator token.
pub fn create(request: &Request, ports: &Ports) -> Result<Response, Error> {
    if request.method != Method::Post {
        return Ok(method_not_allowed(&["POST"]));
    }
    auth::require_operator(request, ports.variables)?;
    let body = input::json_object(&request.body)?;
    let fields = Object::root(&body);
    fields.only(&["name"])?;
    let now = Timestamp::from_millis(ports.clock.now_millis());
    let org = Org {
        id: ports.random.id128(),
        name: fields.name("name", 200)?,
        created_at: now,
    };
    let (key, token) = ApiKey::issue(
        ports.random,
        &org.id,
        "first admin key".into(),
        Role::Admin,
        None,
        now,
    );
    store::insert(
        ports.kv,
        &org.id,
        &key,
        vec![(org_key(&org.id), store::encode(&org))],
    )?;
    Ok(Response::json(
        201,
        &OrgCreated {
            org: &org,
            api_key: key.view(Some(&token)),
        },
    ))
}

/// `GET /api/orgs/{id}`: any key of the organisation; other ids are 404.
pub fn read(ctx: &Ctx, request: &Request, id: &str) -> Result<Response, Error> {
    if request.method != Method::Get {
        return Ok(method_not_allowed(&["GET"]));
    }
    let stored = if id == ctx.org() {
        ctx.kv().get(&org_key(id))?
    } else {
        None
    };
    let org: Org = stored
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::no_route(&request.path))?;
    Ok(Response::json(200, &org))
}
