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
use send::{batch_count, ContactResult, Progress, Reason, SendAnswer, Setup, Status, Summary};

/// Who may send, and read jobs: flows, and admins trying a flow out.
pub const SENDERS: &[Role] = &[Role::Admin, Role::Flow];
/// Who may read an activity: agents too, as the timeline shows it.
pub const ACTIVITY_READERS: &[Role] = &[Role::Admin, Role::Agent, Role::Flow];

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
            ctx.principal.require(SENDERS)?;
            send_list(&ctx, request, config_id).await
        }
        ["api", "outbound", "jobs"] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(SENDERS)?;
            jobs::list(ports.kv, ctx.org(), request)
        }
        ["api", "outbound", "jobs", id] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(SENDERS)?;
            jobs::read(ports.kv, ctx.org(), id)
        }
        ["api", "outbound", "activities", id] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            let ctx = Ctx::authenticate(request, ports)?;
            ctx.principal.require(ACTIVITY_READERS)?;
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
    let mut answer = SendAnswer {
        configuration_id: setup.config.id.clone(),
        contacts: contacts.len(),
        batches: batches.len(),
        batches_sent: batches.len() - run.refused.len() - run.interrupted.len(),
        summary: Summary::of(&run.results),
        results: run.results,
        error: None,
        retry_after_seconds: None,
        not_attempted: None,
    };
    // A retry of the whole call is safe with a key, and without one when
    // nothing went: then the answer is a 503 to retry. Otherwise, like a
    // partly rate-limited call, it names the contacts to send again.
    let nothing_sent = !answer
        .results
        .iter()
        .any(|r| matches!(r.status, Status::Sent | Status::Unknown));
    if !run.interrupted.is_empty() && (progress.is_some() || nothing_sent) {
        return Ok((
            interrupted(answer, run.interrupted.len(), batches.len()),
            false,
        ));
    }
    let Some(retry_after) = run.retry_after_seconds else {
        if !run.interrupted.is_empty() {
            answer.error = Some(interrupted_error(run.interrupted.len(), batches.len()));
            answer.not_attempted = Some(not_attempted(&answer.results));
        }
        return Ok((Response::json(200, &answer), run.interrupted.is_empty()));
    };
    answer.error = Some(Reason {
        code: "rate_limited".into(),
        message: format!(
            "this organisation's outbound requests for the hour are used up: {} of {} batches were not sent; send the contacts in \"not_attempted\" again after {retry_after} seconds",
            run.refused.len(), batches.len()
        ),
        field: None,
    });
    answer.retry_after_seconds = Some(retry_after);
    answer.not_attempted = Some(not_attempted(&answer.results));
    let response =
        Response::json(429, &answer).with_header("retry-after", &retry_after.to_string());
    Ok((response, run.refused.len() < batches.len()))
}

fn interrupted_error(interrupted: usize, batches: usize) -> Reason {
    Reason {
        code: "store_unavailable".into(),
        message: format!(
            "the key-value store failed before {interrupted} of {batches} batches were sent; nothing of those was sent. Retry the call with the same Idempotency-Key to send only them, or send the contacts in \"not_attempted\" again"
        ),
        field: None,
    }
}

/// The contacts of batches that did not go.
fn not_attempted(results: &[ContactResult]) -> Vec<usize> {
    results
        .iter()
        .filter(|result| result.status == Status::NotAttempted)
        .map(|result| result.index)
        .collect()
}

/// 503 for a call some of whose batches the store kept from going: the
/// body still says what became of every contact, and a retry (with the same
/// `Idempotency-Key`, only the batches not sent go) finishes the call.
fn interrupted(mut answer: SendAnswer, interrupted: usize, batches: usize) -> Response {
    answer.error = Some(interrupted_error(interrupted, batches));
    answer.not_attempted = Some(not_attempted(&answer.results));
    Response::json(503, &answer).with_header(
        "retry-after",
        &crate::api::STORE_RETRY_AFTER_SECONDS.to_string(),
    )
}
