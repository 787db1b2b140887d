//! Scheduled sends (R-OUT-7): a call with `send_at` or `delay_seconds` is
//! stored as a job and sent later by `POST /api/outbound/dispatch`, which an
//! operator's scheduler (a cron trigger, a Kubernetes CronJob, `cron` and
//! `curl`) calls every minute or so with its own token (`dispatch_token`).
//!
//! Jobs of every organisation are listed in one global log
//! (`outbound/jobs/{n}` → `{org}/{job}`), so dispatch finds due jobs with
//! direct reads, never a key listing. A watermark (`outbound/jobs/done-through`)
//! skips the log's finished prefix.
//!
//! Dispatch calls may overlap, and may die anywhere (R-OPS-4). A job runs
//! under its lease ([`crate::lease`]), so only one dispatcher works on it at
//! a time; one that died leaves the job `running` with its lease, and the
//! first dispatch after the lease resumes it. Each batch records its
//! results beside the job before and after its messages go out
//! ([`send::Progress`]): a resumed job sends only batches with no record,
//! and a message handed to the provider without a recorded answer is
//! reported `unknown`, never sent twice.
//!
//! One call does a bounded amount of work — at most [`BATCHES_PER_DISPATCH`]
//! batches — so it ends well within its lease and any host's time limit; a
//! bigger job goes on at the next call (the answer says `more_due`). A job
//! whose batches the hour's budget refused is scheduled again for the next
//! hour, with only those batches, as a new attempt. A job that cannot be
//! read or run is reported in the answer's `failed` list and the others go
//! on.
//!
//! Each batch writes its per-contact results beside the job
//! (`outbound_job/{id}/batch/{n}`) in the same transaction as its
//! activities, so `GET /api/outbound/jobs/{id}` shows progress while the job
//! runs. The job itself keeps the sum of its finished batches' results
//! (`done`), saved with it after each dispatch call, so that listing jobs
//! reads the jobs and nothing of their batches, however many contacts they
//! have.

use super::send::{self, batch_count, ContactResult, Progress, Reason, Setup, Summary};
use crate::api::{Request, Response};
use crate::error::Error;
use crate::lease::{self, Lease};
use crate::ports::{KeyValue, Ports};
use crate::store::{self, Log};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;

/// Batches (of up to 100 contacts) one dispatch call sends; the rest wait
/// for the next call.
pub const BATCHES_PER_DISPATCH: usize = 20;
/// Log entries read per round trip while looking for due jobs.
const SCAN_CHUNK: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Scheduled,
    Running,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub configuration_id: String,
    pub state: JobState,
    /// When it is (next) due, as shown and in milliseconds.
    pub send_at: Timestamp,
    pub due_at_millis: i64,
    pub contacts: Vec<Value>,
    /// The batches still to send.
    pub pending_batches: Vec<usize>,
    /// How many times the hour's budget pushed it to the next hour.
    pub attempt: u32,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why the job could not run at all (its configuration was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Reason>,
    /// What became of the contacts of the batches no longer pending, as of
    /// the job's last save. `None` on jobs stored before it was kept: their
    /// batches' records tell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Summary>,
}

crate::document!(Job, "outbound_job");

fn jobs_log() -> Log {
    Log::new("outbound/jobs")
}

const WATERMARK_KEY: &str = "outbound/jobs/done-through";

/// The lease a dispatcher holds while it runs a job.
fn run_lease(org: &str, job_id: &str) -> String {
    format!("{}/run", store::document_key::<Job>(org, job_id))
}

/// Where a job keeps the results of its batches.
fn records_prefix(org: &str, job_id: &str) -> String {
    format!("{}/batch", store::document_key::<Job>(org, job_id))
}

/// The job's batch records, written under `lease`.
fn progress<'a>(org: &str, job_id: &str, lease: &'a RefCell<Lease>) -> Progress<'a> {
    Progress {
        prefix: records_prefix(org, job_id),
        lease,
    }
}

/// Stores a job to send `contacts` with `config_id` at `send_at_millis`.
/// With `id` (from an `Idempotency-Key`), a job already stored under it is
/// the answer, so a retried call schedules nothing twice.
pub fn schedule(
    ports: &Ports<'_>,
    org: &str,
    config_id: &str,
    contacts: Vec<Value>,
    send_at_millis: i64,
    id: Option<String>,
) -> Result<Response, Error> {
    if let Some(id) = &id {
        if let Some(job) = store::load::<Job>(ports.kv, org, id)? {
            return Ok(Response::json(202, &view(&job, &[])));
        }
    }
    let job = Job {
        id: id.unwrap_or_else(|| ports.random.id128()),
        configuration_id: config_id.to_owned(),
        state: JobState::Scheduled,
        send_at: Timestamp::from_millis(send_at_millis),
        due_at_millis: send_at_millis,
        pending_batches: (0..batch_count(contacts.len())).collect(),
        contacts,
        attempt: 0,
        created_at: Timestamp::from_millis(ports.clock.now_millis()),
        started_at: None,
        finished_at: None,
        error: None,
        done: Some(Summary::default()),
    };
    let log = jobs_log();
    let slot = log.reserve(ports.kv)?;
    // The organisation's own index, for `GET /api/outbound/jobs`: the
    // global log would make a listing read every organisation's jobs.
    let listed = store::index::<Job>(org);
    let listed_slot = listed.reserve(ports.kv)?;
    ports.kv.set_many(&[
        (
            store::document_key::<Job>(org, &job.id),
            store::encode(&job),
        ),
        (log.slot_key(slot), format!("{org}/{}", job.id).into_bytes()),
        (listed.slot_key(listed_slot), job.id.clone().into_bytes()),
    ])?;
    Ok(Response::json(202, &view(&job, &[])))
}

/// `GET /api/outbound/jobs/{id}`: the job, its progress and the results so
/// far (one read of the job, one of its batches' results).
pub fn read(kv: &dyn KeyValue, org: &str, id: &str) -> Result<Response, Error> {
    let job: Job = store::require(kv, org, id)?;
    let results = results_of(kv, org, &[&job], Batches::All)?;
    Ok(Response::json(200, &view(&job, &results[0])))
}

/// `GET /api/outbound/jobs`: the organisation's jobs, newest first, a page
/// at a time (`?limit=`, `?cursor=` from `next_cursor`), each with its
/// state and its progress as of its last save, without its per-contact
/// results (one job's read has them). Per page, one round trip each: the
/// index's count and its entries, the jobs; and the batches' results of
/// jobs stored before they kept their progress, if the page has any.
pub fn list(kv: &dyn KeyValue, org: &str, request: &Request) -> Result<Response, Error> {
    let (cursor, limit) = store::paging(request)?;
    let index = store::index::<Job>(org);
    let newest = match cursor {
        0 => index.len(kv)?,
        below => below - 1,
    };
    let oldest = (newest - limit as i64 + 1).max(1);
    let ids: Vec<String> = index
        .read(kv, oldest, newest)?
        .iter()
        .rev()
        .map(|(_, id)| String::from_utf8_lossy(id).into_owned())
        .collect();
    let jobs = store::load_many::<Job>(kv, org, &ids)?;
    let untold: Vec<&Job> = jobs.iter().filter(|j| j.done.is_none()).collect();
    let mut told_by_records = finished_summaries(kv, org, &untold)?.into_iter();
    let items: Vec<JobView> = jobs
        .iter()
        .map(|job| {
            let done = job
                .done
                .unwrap_or_else(|| told_by_records.next().expect("one per job without `done`"));
            summary_view(job, done)
        })
        .collect();
    Ok(Response::json(
        200,
        &store::Page {
            items,
            next_cursor: (oldest > 1).then(|| oldest.to_string()),
        },
    ))
}

/// What the records of the batches no longer pending of each of `jobs`
/// say, in one read: `done` of jobs stored before they kept it.
fn finished_summaries(kv: &dyn KeyValue, org: &str, jobs: &[&Job]) -> Result<Vec<Summary>, Error> {
    let results = results_of(kv, org, jobs, Batches::Finished)?;
    Ok(results.iter().map(Summary::of).collect())
}

/// Which of a job's batches' records to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batches {
    All,
    /// Those no longer pending.
    Finished,
}

/// The results each of `jobs` has recorded so far in `batches`, in one
/// read.
fn results_of(
    kv: &dyn KeyValue,
    org: &str,
    jobs: &[&Job],
    batches: Batches,
) -> Result<Vec<Vec<ContactResult>>, Error> {
    // Each batch record's key, and which of `jobs` it belongs to.
    let (owners, keys): (Vec<usize>, Vec<String>) = jobs
        .iter()
        .enumerate()
        .flat_map(|(n, job)| {
            let prefix = records_prefix(org, &job.id);
            (0..batch_count(job.contacts.len()))
                .filter(move |batch| {
                    batches == Batches::All || !job.pending_batches.contains(batch)
                })
                .map(move |batch| (n, send::batch_record_key(&prefix, batch)))
        })
        .unzip();
    let mut results = vec![Vec::new(); jobs.len()];
    if keys.is_empty() {
        return Ok(results);
    }
    for ((owner, key), found) in owners.iter().zip(&keys).zip(kv.get_many(&keys)?) {
        if let Some(bytes) = found {
            results[*owner].extend(store::decode::<Vec<ContactResult>>(key, &bytes)?);
        }
    }
    Ok(results)
}

/// A job as the API shows it: the answer to a scheduled send call (`202`)
/// and to `GET /api/outbound/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: String,
    pub configuration_id: String,
    pub state: JobState,
    /// When it is (next) due.
    pub send_at: Timestamp,
    /// How many times the hour's budget pushed it to the next hour.
    pub attempt: u32,
    pub contacts: usize,
    pub batches: usize,
    pub progress: JobProgress,
    /// The per-contact results so far, in list order of the batches sent;
    /// left out of `GET /api/outbound/jobs` (read one job for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ContactResult>>,
    /// Why the job could not run at all (its configuration was deleted).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<Reason>,
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finished_at: Option<Timestamp>,
}

/// How many of a job's contacts ended each way, and how many wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
    pub pending: usize,
    /// Shown only when some are: handed to the provider without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<usize>,
}

/// The job with the results its batches recorded.
fn view(job: &Job, results: &[ContactResult]) -> JobView {
    JobView {
        results: Some(results.to_vec()),
        ..summary_view(job, Summary::of(results))
    }
}

/// The job with the sum of its results, `summary`, but not the results.
fn summary_view(job: &Job, summary: Summary) -> JobView {
    let ended = summary.sent + summary.skipped + summary.failed + summary.unknown;
    JobView {
        id: job.id.clone(),
        configuration_id: job.configuration_id.clone(),
        state: job.state,
        send_at: job.send_at,
        attempt: job.attempt,
        contacts: job.contacts.len(),
        batches: batch_count(job.contacts.len()),
        progress: JobProgress {
            sent: summary.sent,
            skipped: summary.skipped,
            failed: summary.failed,
            pending: job.contacts.len().saturating_sub(ended),
            unknown: (summary.unknown > 0).then_some(summary.unknown),
        },
        results: None,
        error: job.error.clone(),
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    }
}

/// What `POST /api/outbound/dispatch` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchAnswer {
    /// The jobs this call ran (or went on with), and their state after.
    pub dispatched: Vec<DispatchedJob>,
    /// Jobs that could not be read or run; the others went on.
    pub failed: Vec<FailedJob>,
    /// Scheduled jobs not due yet.
    pub due_later: usize,
    /// Due work is left over: call again.
    pub more_due: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchedJob {
    pub org: String,
    pub job_id: String,
    pub state: JobState,
    pub send_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedJob {
    pub org: String,
    pub job_id: String,
    pub error: Reason,
}

/// What one dispatch call did, as it answers.
#[derive(Default)]
struct Dispatch {
    answer: DispatchAnswer,
    /// Batches this call may still send.
    batches_left: usize,
}

/// `POST /api/outbound/dispatch` (`dispatch_token`): runs (or resumes) due jobs, at
/// most [`BATCHES_PER_DISPATCH`] batches per call.
pub async fn dispatch(ports: &Ports<'_>) -> Result<Response, Error> {
    let kv = ports.kv;
    let log = jobs_log();
    let count = log.len(kv)?;
    let watermark = kv
        .get(WATERMARK_KEY)?
        .and_then(|bytes| String::from_utf8(bytes).ok()?.parse::<i64>().ok())
        .unwrap_or(0);
    let mut done_through = watermark;
    let mut call = Dispatch {
        batches_left: BATCHES_PER_DISPATCH,
        ..Dispatch::default()
    };
    let mut from = watermark + 1;
    while from <= count {
        let to = (from + SCAN_CHUNK - 1).min(count);
        for Slot { number, job } in read_slots(kv, &log, from, to)? {
            let finished = match job {
                None => empty_slot_expired(ports, &log, number),
                Some(job) => visit(ports, &mut call, &job.org, &job.id, job.found).await,
            };
            // The watermark only passes consecutive finished slots.
            if finished && done_through == number - 1 {
                done_through = number;
            }
        }
        from = to + 1;
    }
    if done_through > watermark {
        // Best effort, and safe under races: any value written covers only
        // finished jobs.
        let _ = kv.set(WATERMARK_KEY, done_through.to_string().as_bytes());
    }
    Ok(Response::json(200, &call.answer))
}

/// A slot of the jobs log.
struct Slot {
    number: i64,
    /// `None` while the slot is empty (or its entry unreadable).
    job: Option<LoggedJob>,
}

/// The job a log entry (`{org}/{job}`) names.
struct LoggedJob {
    org: String,
    id: String,
    /// The job's document, when it is still stored.
    found: Option<Vec<u8>>,
}

/// Slots `from..=to` of the log and their jobs' documents: two reads for
/// the whole chunk, not one per job.
fn read_slots(kv: &dyn KeyValue, log: &Log, from: i64, to: i64) -> Result<Vec<Slot>, Error> {
    let entries: std::collections::HashMap<i64, Vec<u8>> =
        log.read(kv, from, to)?.into_iter().collect();
    let mut slots: Vec<Slot> = (from..=to)
        .map(|number| Slot {
            number,
            job: entries.get(&number).and_then(|entry| logged_job(entry)),
        })
        .collect();
    let keys: Vec<String> = slots
        .iter()
        .filter_map(|slot| slot.job.as_ref())
        .map(|job| store::document_key::<Job>(&job.org, &job.id))
        .collect();
    let mut found = kv.get_many(&keys)?.into_iter();
    for job in slots.iter_mut().filter_map(|slot| slot.job.as_mut()) {
        job.found = found.next().flatten();
    }
    Ok(slots)
}

fn logged_job(entry: &[u8]) -> Option<LoggedJob> {
    let text = std::str::from_utf8(entry).ok()?;
    let (org, id) = text.split_once('/')?;
    Some(LoggedJob {
        org: org.to_owned(),
        id: id.to_owned(),
        found: None,
    })
}

/// A slot whose job was never written — its request died between taking
/// the slot and writing — counts as finished once it has been seen empty
/// for longer than a lease; until then the write may still be under way.
fn empty_slot_expired(ports: &Ports<'_>, log: &Log, slot: i64) -> bool {
    let key = format!("{}/empty-since", log.slot_key(slot));
    let now = ports.clock.now_millis();
    match ports.kv.get(&key) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes)
            .parse::<i64>()
            .is_ok_and(|since| now - since > 2 * lease::LEASE_MILLIS),
        Ok(None) => {
            let _ = ports.kv.set(&key, now.to_string().as_bytes());
            false
        }
        Err(_) => false,
    }
}

/// Runs the job of one log entry if it is due and nobody else is running
/// it; whether it is finished (for the watermark).
async fn visit(
    ports: &Ports<'_>,
    call: &mut Dispatch,
    org: &str,
    id: &str,
    found: Option<Vec<u8>>,
) -> bool {
    let key = store::document_key::<Job>(org, id);
    let job: Job = match store::decode_found(&key, found) {
        Ok(Some(job)) => job,
        // Deleted with its organisation: nothing to send.
        Ok(None) => return true,
        Err(error) => {
            call.answer.failed.push(failure(org, id, &error));
            return true;
        }
    };
    match job.state {
        JobState::Done => return true,
        JobState::Scheduled if job.due_at_millis > ports.clock.now_millis() => {
            call.answer.due_later += 1;
            return false;
        }
        _ if call.batches_left == 0 => {
            call.answer.more_due = true;
            return false;
        }
        _ => {}
    }
    let lease = match lease::acquire(ports.kv, &run_lease(org, id), ports.clock.now_millis()) {
        // Another dispatcher runs it, or one died running it and the lease
        // has yet to expire.
        Ok(None) => return false,
        Ok(Some(lease)) => RefCell::new(lease),
        Err(error) => {
            call.answer.failed.push(failure(org, id, &error.into()));
            return false;
        }
    };
    let outcome = run_job(ports, org, job, &lease, &mut call.batches_left).await;
    // The next call may continue the job at once.
    lease.into_inner().release(ports.kv);
    call.record(ports, org, id, outcome)
}

impl Dispatch {
    /// Adds a job's run to the answer; whether the job is finished.
    fn record(&mut self, ports: &Ports<'_>, org: &str, id: &str, run: Result<Job, Error>) -> bool {
        match run {
            Ok(job) => {
                if job.state != JobState::Done {
                    self.answer.more_due |= job.due_at_millis <= ports.clock.now_millis();
                }
                self.answer.dispatched.push(DispatchedJob {
                    org: org.to_owned(),
                    job_id: job.id.clone(),
                    state: job.state,
                    send_at: job.send_at,
                });
                job.state == JobState::Done
            }
            Err(error) => {
                self.answer.failed.push(failure(org, id, &error));
                false
            }
        }
    }
}

fn failure(org: &str, id: &str, error: &Error) -> FailedJob {
    FailedJob {
        org: org.to_owned(),
        job_id: id.to_owned(),
        error: Reason {
            code: error.code().to_owned(),
            message: error.message(),
            field: None,
        },
    }
}

/// Runs (or resumes) up to `batches_left` of a job's pending batches under
/// `lease`, and stores what became of the job.
async fn run_job(
    ports: &Ports<'_>,
    org: &str,
    mut job: Job,
    lease: &RefCell<Lease>,
    batches_left: &mut usize,
) -> Result<Job, Error> {
    let kv = ports.kv;
    let now = || Timestamp::from_millis(ports.clock.now_millis());
    if job.state != JobState::Running {
        job.state = JobState::Running;
        job.started_at.get_or_insert_with(now);
        store::save(kv, org, &job, Vec::new())?;
    }
    let setup = match Setup::load(kv, org, &job.configuration_id) {
        Ok(setup) => setup,
        Err(error) if error.is_refusal() => {
            job.state = JobState::Done;
            job.finished_at = Some(now());
            job.error = Some(Reason::from(&error));
            return save_holding(ports, org, job, lease);
        }
        Err(error) => return Err(error),
    };
    let take = job.pending_batches.len().min(*batches_left);
    *batches_left -= take;
    let (batches, later) = job.pending_batches.split_at(take);
    let progress = progress(org, &job.id, lease);
    let run = send::run(
        ports,
        org,
        &setup,
        &job.contacts,
        batches,
        Some(&job.id),
        Some(&progress),
    )
    .await?;
    job.pending_batches = still_pending(later, &run);
    job.done = Some(match job.done {
        Some(done) => add_finished(done, &run),
        None => finished_summaries(kv, org, &[&job])?[0],
    });
    schedule_rest(ports, &mut job, run.retry_after_seconds);
    save_holding(ports, org, job, lease)
}

/// The batches a run left for later: those past this call's share, and
/// those the budget refused or the run was interrupted before.
fn still_pending(later: &[usize], run: &send::Run) -> Vec<usize> {
    let mut pending: Vec<usize> = later.to_vec();
    pending.extend(&run.refused);
    pending.extend(&run.interrupted);
    pending.sort_unstable();
    pending
}

/// `done` with the results of the batches `run` finished: all it ran but
/// those left pending, whose contacts are the only ones not attempted.
/// A batch leaves the pending ones in the save that adds its results, so
/// none is added twice.
fn add_finished(before: Summary, run: &send::Run) -> Summary {
    let finished = run
        .results
        .iter()
        .filter(|result| result.status != send::Status::NotAttempted);
    let this_run = Summary::of(finished);
    Summary {
        sent: before.sent + this_run.sent,
        skipped: before.skipped + this_run.skipped,
        failed: before.failed + this_run.failed,
        not_attempted: 0,
        unknown: before.unknown + this_run.unknown,
    }
}

/// When the job's pending batches go: after the budget's wait as a new
/// attempt, at the next call, or never when none are left.
fn schedule_rest(ports: &Ports<'_>, job: &mut Job, retry_after_seconds: Option<u64>) {
    match retry_after_seconds {
        Some(seconds) => {
            job.state = JobState::Scheduled;
            job.attempt += 1;
            job.due_at_millis = ports.clock.now_millis() + seconds as i64 * 1000;
            job.send_at = Timestamp::from_millis(job.due_at_millis);
        }
        None if job.pending_batches.is_empty() => {
            job.state = JobState::Done;
            job.finished_at = Some(Timestamp::from_millis(ports.clock.now_millis()));
        }
        // More than one call's share, or batches the store kept from going:
        // the next call goes on with them.
        None => {
            job.state = JobState::Scheduled;
            job.due_at_millis = ports.clock.now_millis();
        }
    }
}

/// Saves the job, if this dispatcher still holds its lease; else whoever
/// took it over owns its state.
fn save_holding(
    ports: &Ports<'_>,
    org: &str,
    job: Job,
    lease: &RefCell<Lease>,
) -> Result<Job, Error> {
    if !lease
        .borrow_mut()
        .keep(ports.kv, ports.clock.now_millis())?
    {
        return Err(Error::InProgress(
            "this dispatch took longer than the job's lease; the next dispatch goes on with the job"
                .into(),
        ));
    }
    store::save(ports.kv, org, &job, Vec::new())?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;
    use crate::config::accounts::{Account, Settings};
    use crate::entities::outbound_config::OutboundConfig;
    use crate::locale::Locale;
    use crate::memory::{block_on, reply, MapVariables, MemoryPorts, ScriptedHttp};
    use crate::template_text::TemplateText;
    use crate::templates::{Template, Version};
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const CONFIG: &str = "c0000000000000000000000000000000";

    /// An SMS configuration on a TeleSign account that accepts every send,
    /// with a budget of one batch per hour.
    fn ports() -> MemoryPorts {
        let sent = AtomicU64::new(0);
        let memory = MemoryPorts {
            http: ScriptedHttp::new(move |_| {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                reply(200, &format!("{{\"reference_id\":\"{n:032X}\",\"status\":{{\"code\":290,\"description\":\"Message in progress\"}}}}"))
            }),
            variables: MapVariables::from([
                ("telesign_api_base", "https://telesign.test"),
                ("public_base_url", "https://switchboard.test"),
                ("outbound_requests_per_hour", "1"),
            ]),
            ..MemoryPorts::default()
        };
        let kv = &memory.kv;
        let account = Account {
            id: "a0000000000000000000000000000000".into(),
            name: "SMS".into(),
            settings: Settings::Telesign(crate::providers::telesign::Settings {
                customer_id: "customer".into(),
                api_key: "a2V5".into(),
                numbers: vec![serde_json::from_value(
                    serde_json::json!({"number": "14252306549", "type": "long_code"}),
                )
                .unwrap()],
            }),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
            last_validation: None,
        };
        let template = Template {
            id: "t0000000000000000000000000000000".into(),
            name: "t".into(),
            channel_types: vec![Channel::Sms],
            default_locale: Locale::parse("en").unwrap(),
            versions: [(
                Locale::parse("en").unwrap(),
                Version {
                    text: TemplateText::parse("Hi {{CustomerName}}").unwrap(),
                    approved: false,
                    content_sid: None,
                },
            )]
            .into(),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        };
        let config = OutboundConfig {
            id: CONFIG.into(),
            name: "c".into(),
            show_on_timeline: false,
            channel_type: crate::channel::Channel::Sms,
            channel: "14252306549".into(),
            account_id: account.id.clone(),
            template_id: template.id.clone(),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        };
        store::save(kv, ORG, &account, Vec::new()).unwrap();
        store::save(kv, ORG, &template, Vec::new()).unwrap();
        store::save(kv, ORG, &config, Vec::new()).unwrap();
        memory
    }

    fn contacts(count: usize) -> Vec<Value> {
        (0..count)
            .map(|n| json!({"tocontactid": format!("+4790{n:06}"), "channelid": "sms", "optin": true, "CustomerName": "Kari", "CaseName": "CAS-1"}))
            .collect()
    }

    /// Schedules `contacts` for now; the job's id.
    fn scheduled(ports: &Ports<'_>, contacts: Vec<Value>) -> String {
        let now = ports.clock.now_millis();
        let response = schedule(ports, ORG, CONFIG, contacts, now, None).unwrap();
        assert_eq!(response.status, 202);
        let job: Value = serde_json::from_slice(&response.body).unwrap();
        job["id"].as_str().unwrap().to_owned()
    }

    fn dispatched(ports: &Ports<'_>) -> Value {
        let response = block_on(dispatch(ports)).unwrap();
        serde_json::from_slice(&response.body).unwrap()
    }

    fn job(ports: &Ports<'_>, id: &str) -> Value {
        serde_json::from_slice(&read(ports.kv, ORG, id).unwrap().body).unwrap()
    }

    #[test]
    fn batches_over_the_budget_wait_for_the_next_hour_then_finish_the_job() {
        let memory = ports();
        let ports = memory.ports();
        let id = scheduled(&ports, contacts(150));

        // One batch fits this hour's budget; the other waits for the next.
        assert_eq!(dispatched(&ports)["dispatched"][0]["state"], "scheduled");
        assert_eq!(memory.http.sent().len(), 100);
        let waiting = job(&ports, &id);
        assert_eq!(
            (waiting["state"].as_str(), waiting["attempt"].as_u64()),
            (Some("scheduled"), Some(1))
        );
        assert_eq!(waiting["progress"]["sent"], 100);
        assert_eq!(waiting["progress"]["pending"], 50);
        let later = dispatched(&ports);
        assert_eq!(
            (
                later["dispatched"].as_array().unwrap().len(),
                later["due_later"].as_u64()
            ),
            (0, Some(1))
        );

        memory.clock.advance_millis(3_600_000);
        assert_eq!(dispatched(&ports)["dispatched"][0]["state"], "done");
        assert_eq!(memory.http.sent().len(), 150);
        let done = job(&ports, &id);
        assert_eq!(
            done["progress"],
            json!({"sent": 150, "skipped": 0, "failed": 0, "pending": 0})
        );
        // Finished jobs are behind the watermark: later calls skip them.
        assert_eq!(ports.kv.get(WATERMARK_KEY).unwrap(), Some(b"1".to_vec()));
        assert_eq!(dispatched(&ports)["dispatched"], json!([]));
        assert_eq!(memory.http.sent().len(), 150);
    }

    #[test]
    fn a_job_whose_configuration_is_gone_ends_with_the_reason() {
        let memory = ports();
        let ports = memory.ports();
        let id = scheduled(&ports, contacts(1));
        store::remove::<OutboundConfig>(ports.kv, ORG, CONFIG, Vec::new()).unwrap();
        dispatched(&ports);
        let done = job(&ports, &id);
        assert_eq!(done["state"], "done");
        assert_eq!(done["error"]["code"], "not_found");
        assert!(memory.http.sent().is_empty());
    }

    fn listed(ports: &Ports<'_>, org: &str, query: &str) -> Result<Value, Error> {
        let mut request = Request::new(crate::api::Method::Get, "/api/outbound/jobs");
        request.query = query.into();
        let response = list(ports.kv, org, &request)?;
        assert_eq!(response.status, 200);
        Ok(serde_json::from_slice(&response.body).unwrap())
    }

    fn ids(page: &Value) -> Vec<&str> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn jobs_are_listed_newest_first_a_page_at_a_time_with_their_progress() {
        let memory = ports();
        let ports = memory.ports();
        let first = scheduled(&ports, contacts(150));
        let second = scheduled(&ports, contacts(1));
        let third = scheduled(&ports, contacts(2));
        // The first job's first batch goes (the budget is one an hour).
        dispatched(&ports);

        let page = listed(&ports, ORG, "limit=2").unwrap();
        assert_eq!(ids(&page), [third.as_str(), second.as_str()]);
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let rest = listed(&ports, ORG, &format!("limit=2&cursor={cursor}")).unwrap();
        assert_eq!(ids(&rest), [first.as_str()]);
        assert_eq!(rest["next_cursor"], Value::Null);
        let job = &rest["items"][0];
        assert_eq!(job["state"], "scheduled");
        assert_eq!(job["contacts"], 150);
        assert_eq!(
            job["progress"],
            json!({"sent": 100, "skipped": 0, "failed": 0, "pending": 50})
        );
        // The per-contact results are the job's own read.
        assert!(job.get("results").is_none(), "{job}");
        assert_eq!(ids(&listed(&ports, ORG, "").unwrap()).len(), 3);
    }

    fn listed_progress(ports: &Ports<'_>) -> Value {
        listed(ports, ORG, "").unwrap()["items"][0]["progress"].clone()
    }

    fn progress(sent: usize, pending: usize) -> Value {
        json!({"sent": sent, "skipped": 0, "failed": 0, "pending": pending})
    }

    /// The list shows what the job keeps, never reading its batches'
    /// records; a job stored before it kept its progress is told by the
    /// records of its finished batches, and keeps it from its next run on.
    #[test]
    fn the_list_reads_each_jobs_own_progress_and_older_jobs_their_records() {
        let memory = ports();
        let ports = memory.ports();
        let id = scheduled(&ports, contacts(150));
        dispatched(&ports);
        let records: Vec<String> = (0..2)
            .map(|batch| send::batch_record_key(&records_prefix(ORG, &id), batch))
            .collect();
        let kept = ports.kv.get_many(&records).unwrap();
        ports.kv.delete_many(&records).unwrap();
        assert_eq!(listed_progress(&ports), progress(100, 50));

        // As stored before `done`: the finished batch's record tells it.
        let key = store::document_key::<Job>(ORG, &id);
        let mut older: Job = store::decode(&key, &ports.kv.get(&key).unwrap().unwrap()).unwrap();
        older.done = None;
        store::save(ports.kv, ORG, &older, Vec::new()).unwrap();
        assert_eq!(listed_progress(&ports), progress(0, 150));
        ports
            .kv
            .set(&records[0], kept[0].as_ref().unwrap())
            .unwrap();
        assert_eq!(listed_progress(&ports), progress(100, 50));
        memory.clock.advance_millis(3_600_000);
        assert_eq!(dispatched(&ports)["dispatched"][0]["state"], "done");
        let job: Job = store::decode(&key, &ports.kv.get(&key).unwrap().unwrap()).unwrap();
        assert_eq!(job.done.map(|done| done.sent), Some(150));
        ports.kv.delete_many(&records).unwrap();
        assert_eq!(listed_progress(&ports), progress(150, 0));
    }

    #[test]
    fn another_organisation_lists_none_and_bad_paging_is_refused() {
        let memory = ports();
        let ports = memory.ports();
        scheduled(&ports, contacts(1));
        let other = listed(&ports, "fedcba9876543210fedcba9876543210", "").unwrap();
        assert_eq!(other, json!({"items": [], "next_cursor": null}));
        for (query, field) in [("limit=0", "limit"), ("cursor=-1", "cursor")] {
            let error = listed(&ports, ORG, query).unwrap_err();
            assert_eq!(
                (error.status(), error.field()),
                (422, Some(field)),
                "{query}"
            );
        }
    }

    #[test]
    fn a_stored_job_reads_and_writes_back_the_same() {
        let stored = r#"{"id":"j0000000000000000000000000000000","configuration_id":"c0000000000000000000000000000000","state":"done","send_at":"2026-01-01T01:00:00.000Z","due_at_millis":1767229200000,"contacts":[{"Phone":"+4790000001"}],"pending_batches":[],"attempt":1,"created_at":"2026-01-01T00:00:00.000Z","started_at":"2026-01-01T01:00:00.250Z","finished_at":"2026-01-01T01:00:02.000Z","error":{"code":"not_found","message":"gone"}}"#;
        let job: Job = serde_json::from_str(stored).unwrap();
        assert_eq!(job.send_at.millis(), job.due_at_millis);
        assert_eq!(serde_json::to_string(&job).unwrap(), stored);
    }
}
