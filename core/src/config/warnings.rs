//! `GET /api/warnings`: configuration an admin should fix (R-CFG-4:
//! Facebook page tokens due for refresh). They name pages and accounts, so
//! they are read with a credential, never on the public `/health`
//! (R-OPS-1). An organisation's admin sees its own organisation's, read from
//! its own accounts; the operator sees every organisation's, read from the
//! global record of connected pages. Neither lists keys.

use super::{accounts, Ctx};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{self, Role};
use crate::error::Error;
use crate::ports::Ports;
use serde::Serialize;

/// What `GET /api/warnings` answers.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warnings {
    pub warnings: Vec<accounts::PageTokenWarning>,
}

/// Every organisation's warnings with the operator token, else the
/// warnings of the admin key's organisation.
pub fn serve(request: &Request, ports: &Ports) -> Result<Response, Error> {
    if request.method != Method::Get {
        return Ok(method_not_allowed(&["GET"]));
    }
    let now = ports.clock.now_millis();
    let warnings = if auth::require_operator(request, ports.variables).is_ok() {
        accounts::every_page_token_warning(ports.kv, now)?
    } else {
        let ctx = Ctx::authenticate(request, ports)?;
        ctx.principal.require(&[Role::Admin])?;
        accounts::org_page_token_warnings(ctx.kv(), ctx.org(), now)?
    };
    Ok(Response::json(200, &Warnings { warnings }))
}
