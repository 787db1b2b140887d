//! `/api/outbound/...`: what automation flows call to message customers
//! (R-OUT), and the scheduler's dispatch.

use crate::operation::{error, page, Access, Api, Op};
use switchboard_core::entities::activity::Activity;
use switchboard_core::outbound::jobs::{DispatchAnswer, JobView};
use switchboard_core::outbound::send::SendAnswer;
use switchboard_core::outbound::{contact_list::SendRequest, ACTIVITY_READERS, SENDERS};
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::RefOr;

const TAG: &str = "Outbound messages";

/// `send`'s path, which the Power Automate connector keeps.
pub const SEND: &str = "/api/outbound/{configurationId}/send";
pub const JOB: &str = "/api/outbound/jobs/{id}";

pub fn describe(api: &mut Api) {
    send(api);
    let job = api.schema::<JobView>();
    api.add(
        Op::get(JOB, "read_outbound_job", "Read a scheduled send's job")
            .tag(TAG)
            .access(Access::Key(SENDERS))
            .path_param("id", "The job's id, from the scheduled call's answer.")
            .describe("`state` is `scheduled`, `running` or `done`; `progress` counts the contacts so far and `results` has each sent batch's per-contact results, so progress shows while the job runs.")
            .answers(200, "The job and its results so far.", job.clone()),
    );
    api.add(
        Op::get(
            "/api/outbound/jobs",
            "list_outbound_jobs",
            "List the scheduled sends' jobs",
        )
        .tag(TAG)
        .access(Access::Key(SENDERS))
        .describe("Newest first, each with its state and progress but without `results` (read one job for them). `progress` is what the job keeps, updated at the end of each dispatch call: a job's own read, which counts its batches as they are recorded, can be ahead of it while a dispatch call is under way. Jobs scheduled before this list existed are not in it; they still open by id.")
        .paged()
        .answers(200, "A page of jobs, newest first.", page(job)),
    );
    let activity = api.schema::<Activity>();
    api.add(
        Op::get("/api/outbound/activities/{id}", "read_outbound_activity", "Read an outbound message activity")
            .tag(TAG)
            .access(Access::Key(ACTIVITY_READERS))
            .path_param("id", "The activity's id, from a send's results.")
            .describe("The record of one message sent (or tried) to one contact: text, locale, template, configuration, and a `status` the provider's delivery callbacks move forward (`sent` → `delivered` → `read`, or `failed`/`undelivered`).")
            .answers(200, "The activity.", activity),
    );
    let dispatched = api.schema::<DispatchAnswer>();
    api.add(
        Op::post("/api/outbound/dispatch", "dispatch_outbound_jobs", "Send the due scheduled jobs")
            .tag(TAG)
            .access(Access::Dispatcher)
            .describe("For the operator's scheduler, every minute or so. Runs every due job of every organisation once, even when calls overlap, at most 20 batches (2,000 contacts) per call; `more_due: true` says call again. A job that cannot be read or run is listed in `failed` and the others go on.")
            .answers(200, "What this call did.", dispatched),
    );
}

fn send(api: &mut Api) {
    let body = api.schema::<SendRequest>();
    let answer = api.schema::<SendAnswer>();
    let job = api.schema::<JobView>();
    // The store failing before any batch went is the plain error; failing
    // between batches still says what became of every contact.
    let interrupted: RefOr<Schema> = AnyOfBuilder::new()
        .item(answer.clone())
        .item(error())
        .into();
    let replayed =
        "`true` when this is the answer of an earlier call with the same `Idempotency-Key`.";
    let retry_after = "Seconds to wait before sending the contacts in `not_attempted` again.";
    api.add(
        Op::post(SEND, "send_outbound", "Send a contact list")
            .tag(TAG)
            .access(Access::Key(SENDERS))
            .path_param("configurationId", "The outbound configuration's id: its number, template and channel.")
            .header("Idempotency-Key", "Makes retries safe: a retry with the same key sends nothing again and answers the first call's answer. 1 to 255 printable ASCII characters, e.g. a UUID; the same key with another body is `422 idempotency_key_reused`.")
            .describe("`ContactList` in the seed's field names (case-sensitive), sent in batches of 100, each batch one request of the organisation's hour's budget. Each contact is checked, rendered and sent on its own: a bad contact fails alone with a `reason` naming its field (`ContactList[3].CaseName`), the others go. With `send_at` or `delay_seconds` nothing is sent yet: the answer is `202` with a job that `POST /api/outbound/dispatch` sends when due.")
            .body(body)
            .answers(200, "Sent now: what became of every contact.", answer.clone())
            .answers(202, "Scheduled: the stored job.", job)
            .answers(429, "Some batches were over the hour's budget and were not sent (`error.code` `rate_limited`); the results of those that went, and `not_attempted`, the contacts to send again after `Retry-After`.", answer)
            .answers(503, "The store failed: before anything was sent (the plain error), or between batches (the contacts' results, `not_attempted`). Retry after `Retry-After` seconds, with the same `Idempotency-Key` to send only what was not sent.", interrupted)
            .fails(409, "`request_in_progress`: a call with this `Idempotency-Key` is still sending (retry later with the same key), or `configuration_broken`: the configuration's template or account is gone.")
            .answer_header(200, "idempotent-replayed", replayed)
            .answer_header(202, "idempotent-replayed", replayed)
            .answer_header(429, "idempotent-replayed", replayed)
            .answer_header(429, "retry-after", retry_after)
            .answer_header(503, "retry-after", "Seconds to wait before retrying."),
    );
}
