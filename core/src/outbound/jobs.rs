//! Scheduled sends (R-OUT-7): a call with `send_at` or `delay_seconds` is
//! stored as a job and sent later by `POST /api/outbound/dispatch`, which an
//! operator's scheduler (a cron trigger, a Kubernetes CronJob, `cron` and
//! `curl`) calls every minute or so.
//!
//! Jobs of every organisation are listed in one global log
//! (`outbound/jobs/{n}` → `{org}/{job}`), so dispatch finds due jobs with
//! direct reads, never a key listing. A watermark (`outbound/jobs/done-through`)
//! skips the log's finished prefix. Dispatch calls may overlap: a job runs
//! only for the caller that wins its claim (`increment` on
//! `…/claim/{attempt}` returns 1), so each job is sent exactly once however
//! many dispatchers run. A job whose batches the hour's budget refused is
//! scheduled again for the next hour, with only those batches, as a new
//! attempt.
//!
//! Each batch writes its per-contact results beside the job
//! (`outbound_job/{id}/batch/{n}`) in the same transaction as its
//! activities, so `GET /api/outbound/jobs/{id}` shows progress while the job
//! runs.

use super::send::{self, batch_count, ContactResult, Reason, Setup, Summary};
use crate::api::{ApiError, Response};
use crate::ports::{KeyValue, Ports};
use crate::store::{self, Log};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Jobs one dispatch call runs; the rest wait for the next call.
pub const JOBS_PER_DISPATCH: usize = 20;
/// Log entries read per round trip while looking for due jobs.
const SCAN_CHUNK: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When it is (next) due, RFC 3339, and in milliseconds.
    pub send_at: String,
    pub due_at_millis: i64,
    pub contacts: Vec<Value>,
    /// The batches still to send.
    pub pending_batches: Vec<usize>,
    /// Dispatch attempts so far; each claim is per attempt.
    pub attempt: u32,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why the job could not run at all (its configuration was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Reason>,
}

crate::document!(Job, "outbound_job");

fn jobs_log() -> Log {
    Log::new("outbound/jobs")
}

const WATERMARK_KEY: &str = "outbound/jobs/done-through";

fn claim_key(org: &str, job: &Job) -> String {
    format!(
        "{}/claim/{}",
        store::document_key::<Job>(org, &job.id),
        job.attempt
    )
}

/// Where a job keeps the results of its batch `batch`.
pub fn batch_key(org: &str, job_id: &str, batch: usize) -> String {
    format!("{}/batch/{batch}", store::document_key::<Job>(org, job_id))
}

/// Stores a job to send `contacts` with `config_id` at `send_at_millis`.
pub fn schedule(
    ports: &Ports<'_>,
    org: &str,
    config_id: &str,
    contacts: Vec<Value>,
    send_at_millis: i64,
) -> Result<Response, ApiError> {
    let now = crate::time::rfc3339(ports.clock.now_millis());
    let job = Job {
        id: ports.random.id128(),
        configuration_id: config_id.to_owned(),
        state: JobState::Scheduled,
        send_at: crate::time::rfc3339(send_at_millis),
        due_at_millis: send_at_millis,
        pending_batches: (0..batch_count(contacts.len())).collect(),
        contacts,
        attempt: 0,
        created_at: now,
        started_at: None,
        finished_at: None,
        error: None,
    };
    let log = jobs_log();
    let slot = log.reserve(ports.kv)?;
    ports.kv.set_many(&[
        (
            store::document_key::<Job>(org, &job.id),
            store::encode(&job),
        ),
        (log.slot_key(slot), format!("{org}/{}", job.id).into_bytes()),
    ])?;
    Ok(Response::json(202, &view(&job, &[])))
}

/// `GET /api/outbound/jobs/{id}`: the job, its progress and the results so
/// far (one read of the job, one of its batches' results).
pub fn read(kv: &dyn KeyValue, org: &str, id: &str) -> Result<Response, ApiError> {
    let job: Job = store::require(kv, org, id)?;
    let keys: Vec<String> = (0..batch_count(job.contacts.len()))
        .map(|batch| batch_key(org, id, batch))
        .collect();
    let mut results = Vec::new();
    for (key, found) in keys.iter().zip(kv.get_many(&keys)?) {
        if let Some(bytes) = found {
            results.extend(store::decode::<Vec<ContactResult>>(key, &bytes)?);
        }
    }
    Ok(Response::json(200, &view(&job, &results)))
}

fn view(job: &Job, results: &[ContactResult]) -> Value {
    let summary = Summary::of(results);
    json!({
        "id": job.id,
        "configuration_id": job.configuration_id,
        "state": job.state,
        "send_at": job.send_at,
        "attempt": job.attempt,
        "contacts": job.contacts.len(),
        "batches": batch_count(job.contacts.len()),
        "progress": {
            "sent": summary.sent,
            "skipped": summary.skipped,
            "failed": summary.failed,
            "pending": job.contacts.len().saturating_sub(results.len()),
        },
        "results": results,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
}

/// `POST /api/outbound/dispatch` (operator): runs every due job, at most
/// [`JOBS_PER_DISPATCH`] per call.
pub async fn dispatch(ports: &Ports<'_>) -> Result<Response, ApiError> {
    let kv = ports.kv;
    let now = ports.clock.now_millis();
    let log = jobs_log();
    let count = log.len(kv)?;
    let watermark = kv
        .get(WATERMARK_KEY)?
        .and_then(|bytes| String::from_utf8(bytes).ok()?.parse::<i64>().ok())
        .unwrap_or(0);
    let mut done_through = watermark;
    let mut dispatched = Vec::new();
    let mut due_later = 0;
    let mut more_due = false;
    let mut from = watermark + 1;
    while from <= count {
        let to = (from + SCAN_CHUNK - 1).min(count);
        let entries = log.read(kv, from, to)?;
        let named: Vec<(i64, String, String)> = entries
            .into_iter()
            .filter_map(|(slot, bytes)| {
                let text = String::from_utf8(bytes).ok()?;
                let (org, id) = text.split_once('/')?;
                Some((slot, org.to_owned(), id.to_owned()))
            })
            .collect();
        let keys: Vec<String> = named
            .iter()
            .map(|(_, org, id)| store::document_key::<Job>(org, id))
            .collect();
        let jobs = kv.get_many(&keys)?;
        for (((slot, org, _), key), found) in named.iter().zip(&keys).zip(jobs) {
            let job: Option<Job> = store::decode_found(key, found)?;
            let finished = match job {
                None => true,
                Some(job) if job.state != JobState::Scheduled => job.state == JobState::Done,
                Some(job) if job.due_at_millis > now => {
                    due_later += 1;
                    false
                }
                Some(_) if dispatched.len() >= JOBS_PER_DISPATCH => {
                    more_due = true;
                    false
                }
                Some(job) => {
                    if kv.increment(&claim_key(org, &job), 1)? != 1 {
                        false
                    } else {
                        let job = run_job(ports, org, job).await?;
                        let finished = job.state == JobState::Done;
                        dispatched.push(json!({
                            "org": org,
                            "job_id": job.id,
                            "state": job.state,
                            "send_at": job.send_at,
                        }));
                        finished
                    }
                }
            };
            // The watermark only passes consecutive finished slots: an empty
            // slot may be a job whose write is still under way.
            if finished && done_through == slot - 1 {
                done_through = *slot;
            }
        }
        from = to + 1;
    }
    if done_through > watermark {
        // Best effort, and safe under races: any value written covers only
        // finished jobs.
        let _ = kv.set(WATERMARK_KEY, done_through.to_string().as_bytes());
    }
    Ok(Response::json(
        200,
        &json!({"dispatched": dispatched, "due_later": due_later, "more_due": more_due}),
    ))
}

/// Runs a claimed job's pending batches and stores what became of it.
async fn run_job(ports: &Ports<'_>, org: &str, mut job: Job) -> Result<Job, ApiError> {
    let kv = ports.kv;
    let now = || crate::time::rfc3339(ports.clock.now_millis());
    job.state = JobState::Running;
    job.started_at.get_or_insert_with(now);
    store::save(kv, org, &job, Vec::new())?;
    let setup = match Setup::load(kv, org, &job.configuration_id) {
        Ok(setup) => setup,
        Err(error) if error.status < 500 => {
            job.state = JobState::Done;
            job.finished_at = Some(now());
            job.error = Some(Reason::from(&error));
            store::save(kv, org, &job, Vec::new())?;
            return Ok(job);
        }
        Err(error) => return Err(error),
    };
    let run = send::run(
        ports,
        org,
        &setup,
        &job.contacts,
        &job.pending_batches,
        Some(&job.id),
    )
    .await?;
    match run.retry_after_seconds {
        Some(seconds) => {
            job.state = JobState::Scheduled;
            job.attempt += 1;
            job.due_at_millis = ports.clock.now_millis() + seconds as i64 * 1000;
            job.send_at = crate::time::rfc3339(job.due_at_millis);
            job.pending_batches = run.refused;
        }
        None => {
            job.state = JobState::Done;
            job.pending_batches.clear();
            job.finished_at = Some(now());
        }
    }
    store::save(kv, org, &job, Vec::new())?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::{Account, Settings};
    use crate::config::outbound_configs::OutboundConfig;
    use crate::locale::Locale;
    use crate::memory::{block_on, reply, MapVariables, MemoryPorts, ScriptedHttp};
    use crate::template_text::TemplateText;
    use crate::templates::{Template, Version};
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
            settings: Settings::Telesign {
                customer_id: "customer".into(),
                api_key: "a2V5".into(),
                numbers: vec![serde_json::from_value(
                    serde_json::json!({"number": "14252306549", "type": "long_code"}),
                )
                .unwrap()],
            },
            created_at: String::new(),
            updated_at: String::new(),
            last_validation: None,
        };
        let template = Template {
            id: "t0000000000000000000000000000000".into(),
            name: "t".into(),
            channel_types: vec!["sms".into()],
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
            created_at: String::new(),
            updated_at: String::new(),
        };
        let config = OutboundConfig {
            id: CONFIG.into(),
            name: "c".into(),
            show_on_timeline: false,
            channel_type: "sms".into(),
            channel: "14252306549".into(),
            account_id: account.id.clone(),
            template_id: template.id.clone(),
            created_at: String::new(),
            updated_at: String::new(),
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
        let response = schedule(ports, ORG, CONFIG, contacts, now).unwrap();
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
}
