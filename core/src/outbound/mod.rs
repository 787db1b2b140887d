//! The outbound API (SPEC.md R-OUT): what automation flows call to message
//! customers from a configuration's localized template.
//!
//! - `POST /api/outbound/{configurationId}/send` (flow or admin key):
//!   `{"ContactList": […]}` sent now in batches of 100 ([`send`]), or with
//!   `send_at` / `delay_seconds` stored as a job ([`jobs`]); an
//!   `Idempotency-Key` makes retries safe ([`idempotency`]).
//! - `POST /api/outbound/dispatch` (the scheduler's `dispatch_token`):
//!   sends the due jobs.
//! - `GET /api/outbound/jobs` (newest first), `GET /api/outbound/jobs/{id}`,
//!   `GET /api/outbound/activities/{id}`.
//!
//! The contact's timeline (`GET /api/contacts/{id}/timeline`) is served by
//! the conversations component, which owns `/api/contacts/...`
//! ([`crate::conversations::contacts::read_timeline`]); the activities it
//! lists are [`crate::entities::activity`]'s.

pub mod budget;
pub mod contact_list;
pub mod idempotency;
pub mod jobs;
pub mod send;

use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::Role;
use crate::config::Ctx;
use crate::entities::activity::Activity;
use crate::error::Error;
use crate::ports::Ports;
use crate::store;
use contact_list::SendBody;
use idempotency::{Begun, Claimed};
use send::{batch_count, Progress, Setup, Status, Summary};
use serde_json::json;

/// The outbound component: `/api/outbound/...`.
pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    route(request, ports)
        .await
        .unwrap_or_else(Error::into_response)
}

async fn route(request: &Request, ports: &Ports<'_>) -> Result<Response, Error> {
    match request.segments()[..] {
        ["api", "outbound", "dispatch"] => {
            if request.method != Method::Post {
                return Ok(method_not_allowed(&["POST"]));
            }
            crate::auth::require_dispatcher(request, ports.variables)?;
            jobs::dispatch(ports).await
        }
        ["api", "outbound", config_id, "send"] => {
            if request.method != Method::Post {
                return Ok(method_not_allowed(&["POST"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(&[Role::Admin, Role::Flow])?;
            send_list(&ctx, request, config_id).await
        }
        ["api", "outbound", "jobs"] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(&[Role::Admin, Role::Flow])?;
            jobs::list(ports.kv, ctx.org(), request)
        }
        ["api", "outbound", "jobs", id] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(&[Role::Admin, Role::Flow])?;
            jobs::read(ports.kv, ctx.org(), id)
        }
        ["api", "outbound", "activities", id] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal
                .require(&[Role::Admin, Role::Agent, Role::Flow])?;
            let activity: Activity = store::require(ports.kv, ctx.org(), id)?;
            Ok(Response::json(200, &activity))
        }
        _ => Err(Error::no_route(&request.path)),
    }
}

/// `POST /api/outbound/{configurationId}/send`.
async fn send_list(ctx: &Ctx<'_>, request: &Request, config_id: &str) -> Result<Response, Error> {
    let ports = ctx.ports;
    let body = SendBody::parse(&request.body, ports.clock.now_millis())?;
    let setup = Setup::load(ports.kv, ctx.org(), config_id)?;
    let key = idempotency::key_of(request.header(idempotency::HEADER))?;
    let claimed = match key {
        None => None,
        Some(key) => match idempotency::begin(ports, ctx.org(), config_id, &key, &request.body)? {
            Begun::Replay(response) => return Ok(response),
            Begun::First(claimed) => Some(claimed),
        },
    };
    let progress = claimed.as_ref().map(Claimed::progress);
    let outcome = match body.send_at_millis {
        Some(at) => {
            let job_id = claimed.as_ref().map(Claimed::derived_id);
            jobs::schedule(ports, ctx.org(), config_id, body.contacts, at, job_id)
                .map(|response| (response, true))
        }
        None => send_now(ports, ctx.org(), &setup, &body.contacts, progress.as_ref()).await,
    };
    drop(progress);
    if let Some(claimed) = claimed {
        match &outcome {
            Ok((response, true)) => claimed.keep(ports, response),
            // A retry with the key runs (resumes) the call at once.
            _ => claimed.give_back(ports),
        }
    }
    outcome.map(|(response, _)| response)
}

/// Sends every batch now; the answer, and whether it is final: `false` when
/// nothing was sent because the hour's budget is spent, or some batches were
/// not attempted because the store failed, so a retry with the same
/// `Idempotency-Key` runs again (sending only what was not sent).
async fn send_now(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[serde_json::Value],
    progress: Option<&Progress<'_>>,
) -> Result<(Response, bool), Error> {
    let batches: Vec<usize> = (0..batch_count(contacts.len())).collect();
    let run = send::run(ports, org, setup, contacts, &batches, None, progress).await?;
    let mut body = json!({
        "configuration_id": setup.config.id,
        "contacts": contacts.len(),
        "batches": batches.len(),
        "batches_sent": batches.len() - run.refused.len() - run.interrupted.len(),
        "summary": Summary::of(&run.results),
        "results": run.results,
    });
    // A retry of the whole call is safe with a key, and without one when
    // nothing went: then the answer is a 503 to retry. Otherwise, like a
    // partly rate-limited call, it names the contacts to send again.
    let nothing_sent = !run
        .results
        .iter()
        .any(|r| matches!(r.status, Status::Sent | Status::Unknown));
    if !run.interrupted.is_empty() && (progress.is_some() || nothing_sent) {
        return Ok((interrupted(body, &run, batches.len()), false));
    }
    let Some(retry_after) = run.retry_after_seconds else {
        if !run.interrupted.is_empty() {
            body["error"] = interrupted_error(&run, batches.len());
            body["not_attempted"] = json!(not_attempted(&run));
        }
        return Ok((Response::json(200, &body), run.interrupted.is_empty()));
    };
    let not_attempted = not_attempted(&run);
    body["error"] = json!({
        "code": "rate_limited",
        "message": format!(
            "this organisation's outbound requests for the hour are used up: {} of {} batches were not sent; send the contacts in \"not_attempted\" again after {retry_after} seconds",
            run.refused.len(), batches.len()
        ),
    });
    body["retry_after_seconds"] = json!(retry_after);
    body["not_attempted"] = json!(not_attempted);
    let response = Response::json(429, &body).with_header("retry-after", &retry_after.to_string());
    Ok((response, run.refused.len() < batches.len()))
}

fn interrupted_error(run: &send::Run, batches: usize) -> serde_json::Value {
    json!({
        "code": "store_unavailable",
        "message": format!(
            "the key-value store failed before {} of {batches} batches were sent; nothing of those was sent. Retry the call with the same Idempotency-Key to send only them, or send the contacts in \"not_attempted\" again",
            run.interrupted.len()
        ),
    })
}

/// The contacts of batches that did not go.
fn not_attempted(run: &send::Run) -> Vec<usize> {
    run.results
        .iter()
        .filter(|result| result.status == Status::NotAttempted)
        .map(|result| result.index)
        .collect()
}

/// 503 for a call some of whose batches the store kept from going: the
/// body still says what became of every contact, and a retry (with the same
/// `Idempotency-Key`, only the batches not sent go) finishes the call.
fn interrupted(mut body: serde_json::Value, run: &send::Run, batches: usize) -> Response {
    body["error"] = interrupted_error(run, batches);
    body["not_attempted"] = json!(not_attempted(run));
    Response::json(503, &body).with_header(
        "retry-after",
        &crate::api::STORE_RETRY_AFTER_SECONDS.to_string(),
    )
}
