//! Sending a contact list (R-OUT-3..5): batches of 100 against the hour's
//! budget, each contact checked, rendered and sent on its own, and each
//! batch recorded in one write.
//!
//! A batch's key-value cost is fixed, whatever its size: one `get-many` of
//! its contacts' address, thread and opt-out keys, one of their contact
//! documents,
//! and one `set-many` with every activity, provider-message pointer, new
//! contact and thread entry (ARCHITECTURE.md principle 3). Only
//! show-on-timeline adds a write per contact: the slot in the contact's
//! timeline, which has to be numbered atomically.
//!
//! Batches run concurrently, and so do the sends within a batch, each with
//! a bound, so a call keeps at most `BATCHES_IN_FLIGHT × SENDS_IN_FLIGHT`
//! provider requests open.

use super::budget;
use super::contact_list::{recipient, Recipient, BATCH_SIZE};
use crate::channel::Channel;
use crate::config::accounts::Account;
use crate::conversations::consent::{self, Consent, Standing};
use crate::conversations::reply::{deliver, may_have_been_sent, Sent, OUTCOME_UNKNOWN};
use crate::conversations::{pending_outbound_key, provider_message_key, thread_id};
use crate::entities::activity::{self, Activity};
use crate::entities::contact::{address_key, Contact};
use crate::entities::outbound_config::OutboundConfig;
use crate::error::Error;
use crate::lease::Lease;
use crate::message::{Author, Content, Rendered, Thread, Window};
use crate::ports::Ports;
use crate::store;
use crate::template_text::RenderContext;
use crate::templates::Template;
use crate::time::Timestamp;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

pub const BATCHES_IN_FLIGHT: usize = 4;
pub const SENDS_IN_FLIGHT: usize = 25;
/// Outbound messages a thread remembers for the customer's reply.
const PENDING_PER_THREAD: usize = 20;

/// What a send needs besides the list: the configuration, its template
/// and the account that owns its number.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: OutboundConfig,
    pub template: Template,
    pub account: Account,
}

impl Setup {
    /// Reads the configuration, then its template and account in one round
    /// trip; 404 for an unknown configuration.
    pub fn load(
        kv: &dyn crate::ports::KeyValue,
        org: &str,
        config_id: &str,
    ) -> Result<Setup, Error> {
        let config: OutboundConfig = store::load(kv, org, config_id)?.ok_or_else(|| {
            Error::not_found(
                "not_found",
                format!(
                    "no outbound configuration with id {config_id} in this organisation; create one with POST /api/outbound-configs"
                ),
            )
        })?;
        let keys = [
            store::document_key::<Template>(org, &config.template_id),
            store::document_key::<Account>(org, &config.account_id),
        ];
        let mut found = kv.get_many(&keys)?.into_iter();
        let broken = |what: &str| {
            Error::conflict(
                "configuration_broken",
                format!(
                    "outbound configuration {config_id}'s {what} no longer exists; fix it with PATCH /api/outbound-configs/{config_id}"
                ),
            )
        };
        let template: Template = store::decode_found(&keys[0], found.next().flatten())?
            .ok_or_else(|| broken("template"))?;
        let account: Account = store::decode_found(&keys[1], found.next().flatten())?
            .ok_or_else(|| broken("account"))?;
        Ok(Setup {
            config,
            template,
            account,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ContactStatus))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Sent,
    Skipped,
    Failed,
    /// Its batch was over the hour's budget, or the store failed before
    /// it went; nothing of it was sent.
    NotAttempted,
    /// Handed to the provider without an answer we could record: it may
    /// have been sent, and is never sent again on its own (R-OPS-4).
    Unknown,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::NotAttempted => "not_attempted",
            Status::Unknown => "unknown",
        }
    }
}

/// Why a contact or a job did not go as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<&Error> for Reason {
    fn from(error: &Error) -> Reason {
        Reason {
            code: error.code().to_owned(),
            message: error.message(),
            field: error.field().map(str::to_owned),
        }
    }
}

/// What became of one contact (R-OUT-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactResult {
    /// The contact's position in `ContactList`.
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tocontactid: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The template version used (R-TPL-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl ContactResult {
    fn new(index: usize, tocontactid: Option<String>, status: Status) -> ContactResult {
        ContactResult {
            index,
            tocontactid,
            status,
            provider_message_id: None,
            activity_id: None,
            contact_id: None,
            locale: None,
            reason: None,
        }
    }

    fn because(mut self, reason: Reason) -> ContactResult {
        self.reason = Some(reason);
        self
    }
}

fn reason(code: &str, message: impl Into<String>, field: Option<String>) -> Reason {
    Reason {
        code: code.to_owned(),
        message: message.into(),
        field,
    }
}

/// How many contacts ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_attempted: usize,
    /// Shown only when some are: most runs have none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown: usize,
}

/// The answer to a send call that sent now (`200`), and to one that did
/// not send everything (`429` over the hour's budget, `503` when the store
/// failed): what became of every contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendAnswer {
    pub configuration_id: String,
    /// Contacts in the list.
    pub contacts: usize,
    /// Batches of 100 the list was split into.
    pub batches: usize,
    pub batches_sent: usize,
    pub summary: Summary,
    /// One per contact, in list order.
    pub results: Vec<ContactResult>,
    /// Why some batches were not sent: `rate_limited` or `store_unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Reason>,
    /// With `rate_limited`: when the hour's budget has room again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The indexes of the contacts to send again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_attempted: Option<Vec<usize>>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a ContactResult>) -> Summary {
        results
            .into_iter()
            .fold(Summary::default(), |mut summary, result| {
                match result.status {
                    Status::Sent => summary.sent += 1,
                    Status::Skipped => summary.skipped += 1,
                    Status::Failed => summary.failed += 1,
                    Status::NotAttempted => summary.not_attempted += 1,
                    Status::Unknown => summary.unknown += 1,
                }
                summary
            })
    }
}

/// The outcome of sending some of a list's batches.
#[derive(Debug, Clone)]
pub struct Run {
    /// One per contact of the batches asked for, in list order.
    pub results: Vec<ContactResult>,
    /// The batches refused by the budget.
    pub refused: Vec<usize>,
    /// Seconds until the budget has room again, when some were refused.
    pub retry_after_seconds: Option<u64>,
    /// Batches not attempted because the store failed before anything of
    /// them was sent, or the run's lease was lost: a resumed run sends them.
    pub interrupted: Vec<usize>,
}

/// Where a resumable run (a scheduled job, an idempotent call) records each
/// batch, and the lease it runs under.
///
/// Before a batch's messages go out, its results are written with every
/// contact about to be sent as [`Status::Unknown`]; after, with what the
/// provider answered. A run resumed after its request died finds the
/// record and sends nothing of that batch again: a customer never gets a
/// message twice because we crashed (R-OPS-4), and a message whose fate we
/// never learnt stays `unknown` for the operator to check.
pub struct Progress<'a> {
    /// Batch `n`'s record is `{prefix}/{n}`.
    pub prefix: String,
    pub lease: &'a RefCell<Lease>,
}

impl Progress<'_> {
    pub fn batch_key(&self, batch: usize) -> String {
        batch_record_key(&self.prefix, batch)
    }
}

/// Where a run recording under `prefix` keeps batch `batch`'s results.
pub fn batch_record_key(prefix: &str, batch: usize) -> String {
    format!("{prefix}/{batch}")
}

pub fn batch_count(contacts: usize) -> usize {
    contacts.div_ceil(BATCH_SIZE)
}

/// Sends the batches numbered `batches` of `contacts`: those a resumed run
/// recorded already come from their records; the rest are taken from the
/// hour's budget, and those that fit are sent. `job_id` marks the
/// activities of a scheduled job.
pub async fn run(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[Value],
    batches: &[usize],
    job_id: Option<&str>,
    progress: Option<&Progress<'_>>,
) -> Result<Run, Error> {
    let Recorded {
        mut results,
        to_send,
    } = recorded(ports, batches, progress)?;
    let limit = budget::requests_per_hour(ports.variables)?;
    let grant = match to_send.len() {
        0 => budget::Grant {
            allowed: 0,
            retry_after_seconds: 0,
        },
        asked => budget::take(ports.kv, org, asked, limit, ports.clock.now_millis())?,
    };
    let (allowed, refused) = to_send.split_at(grant.allowed);
    let SentBatches {
        results: sent,
        interrupted,
    } = send_batches(ports, org, setup, contacts, allowed, job_id, progress).await;
    results.extend(sent);
    let out_of_budget = reason(
        "rate_limited",
        format!(
            "the organisation's {limit} outbound requests for this hour are used up; send this contact again after {} seconds",
            grant.retry_after_seconds
        ),
        None,
    );
    let store_failed = reason(
        "store_unavailable",
        "the key-value store failed before this contact's batch was sent; nothing of it was sent, send it again",
        None,
    );
    for &batch in refused {
        results.extend(not_attempted(batch, contacts, &out_of_budget));
    }
    for &batch in &interrupted {
        results.extend(not_attempted(batch, contacts, &store_failed));
    }
    results.sort_by_key(|result| result.index);
    Ok(Run {
        results,
        refused: refused.to_vec(),
        retry_after_seconds: (!refused.is_empty()).then_some(grant.retry_after_seconds),
        interrupted,
    })
}

/// What a resumed run finds recorded of `batches`.
struct Recorded {
    /// The results of the batches recorded already.
    results: Vec<ContactResult>,
    /// The batches with no record: all of them when the run is not resumable.
    to_send: Vec<usize>,
}

fn recorded(
    ports: &Ports<'_>,
    batches: &[usize],
    progress: Option<&Progress<'_>>,
) -> Result<Recorded, Error> {
    let Some(progress) = progress else {
        return Ok(Recorded {
            results: Vec::new(),
            to_send: batches.to_vec(),
        });
    };
    let keys: Vec<String> = batches.iter().map(|&b| progress.batch_key(b)).collect();
    let mut recorded = Recorded {
        results: Vec::new(),
        to_send: Vec::new(),
    };
    for ((&batch, key), found) in batches.iter().zip(&keys).zip(ports.kv.get_many(&keys)?) {
        match store::decode_found::<Vec<ContactResult>>(key, found)? {
            Some(results) => recorded.results.extend(results),
            None => recorded.to_send.push(batch),
        }
    }
    Ok(recorded)
}

/// What became of the batches a run sent.
struct SentBatches {
    results: Vec<ContactResult>,
    /// Batches of which nothing was sent (see [`run_batch`]), in order.
    interrupted: Vec<usize>,
}

/// Sends `batches`, a bounded number at a time.
async fn send_batches(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[Value],
    batches: &[usize],
    job_id: Option<&str>,
    progress: Option<&Progress<'_>>,
) -> SentBatches {
    let sent: Vec<(usize, Option<Vec<ContactResult>>)> = stream::iter(batches)
        .map(|&batch| async move {
            let sent = run_batch(ports, org, setup, contacts, batch, job_id, progress).await;
            (batch, sent)
        })
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .collect()
        .await;
    let mut done = SentBatches {
        results: Vec::new(),
        interrupted: Vec::new(),
    };
    for (batch, sent) in sent {
        match sent {
            Some(results) => done.results.extend(results),
            None => done.interrupted.push(batch),
        }
    }
    done.interrupted.sort_unstable();
    done
}

/// A not-attempted result, for `why`, for each contact of `batch`.
fn not_attempted<'a>(
    batch: usize,
    contacts: &'a [Value],
    why: &'a Reason,
) -> impl Iterator<Item = ContactResult> + 'a {
    batch_range(batch, contacts.len()).map(move |index| {
        ContactResult::new(index, tocontactid(&contacts[index]), Status::NotAttempted)
            .because(why.clone())
    })
}

fn batch_range(batch: usize, contacts: usize) -> std::ops::Range<usize> {
    batch * BATCH_SIZE..((batch + 1) * BATCH_SIZE).min(contacts)
}

/// The `tocontactid` as given, to name a contact that failed.
fn tocontactid(contact: &Value) -> Option<String> {
    contact["tocontactid"].as_str().map(str::to_owned)
}

/// A contact ready to go: checked, not opted out, rendered.
struct Ready {
    recipient: Recipient,
    contact_id: String,
    /// Its contact document is new: written with the batch.
    new_contact: Option<Contact>,
    thread: String,
    rendered: Rendered,
}

/// Sends one batch: checks and prepares its contacts, records the intent
/// (activities `unknown`, and the batch's record when the run is
/// resumable), sends, and records the outcome. `None` when nothing of it
/// was sent because the store failed first or the run lost its lease.
async fn run_batch(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[Value],
    batch: usize,
    job_id: Option<&str>,
    progress: Option<&Progress<'_>>,
) -> Option<Vec<ContactResult>> {
    let record_key = progress.map(|p| p.batch_key(batch));
    let now = Timestamp::from_millis(ports.clock.now_millis());
    let Recipients {
        fit,
        refused: mut results,
    } = recipients(contacts, batch, &setup.config);
    let Prepared {
        ready,
        not_ready,
        pending,
    } = prepare(ports, org, setup, fit, now).ok()?;
    results.extend(not_ready);
    let mut activities: Vec<Activity> = ready
        .iter()
        .map(|ready| intended_activity(ports, setup, ready, job_id, now))
        .collect();
    results.extend(ready.iter().zip(&activities).map(intended_result));
    results.sort_by_key(|result| result.index);
    let intent = record_intent(ports, org, &activities, &results, record_key.as_deref());
    if intent.is_err() || !still_running(ports, progress) {
        return None;
    }
    let sends = send_all(ports, setup, &ready).await;
    let provider = setup.account.settings.provider();
    let mut writes = Vec::new();
    let mut threads_sent_on = Vec::new();
    for ((ready, sent), activity) in ready.iter().zip(sends).zip(activities.iter_mut()) {
        let result = results
            .iter_mut()
            .find(|r| r.index == ready.recipient.index)
            .expect("every ready contact has a result");
        if let Some(provider_message_id) = record_send(sent, activity, result) {
            writes.push((
                provider_message_key(org, provider, &provider_message_id),
                activity::pointer(&activity.id),
            ));
            threads_sent_on.push((ready.thread.clone(), activity.id.clone()));
        }
        writes.extend(new_contact_writes(org, &setup.config, ready));
    }
    writes.extend(pending_writes(org, pending, threads_sent_on));
    record_outcome(ports, org, &activities, &mut results, record_key, writes);
    Some(results)
}

/// A batch's contacts as given.
struct Recipients {
    /// Those fit to send to.
    fit: Vec<Recipient>,
    /// A failed result for each of the others.
    refused: Vec<ContactResult>,
}

fn recipients(contacts: &[Value], batch: usize, config: &OutboundConfig) -> Recipients {
    let mut recipients = Recipients {
        fit: Vec::new(),
        refused: Vec::new(),
    };
    for index in batch_range(batch, contacts.len()) {
        match recipient(index, &contacts[index], config) {
            Ok(recipient) => recipients.fit.push(recipient),
            Err(error) => recipients.refused.push(
                ContactResult::new(index, tocontactid(&contacts[index]), Status::Failed)
                    .because(Reason::from(&error)),
            ),
        }
    }
    recipients
}

/// A ready contact's result before its send: `unknown` until the provider
/// answers.
fn intended_result((ready, activity): (&Ready, &Activity)) -> ContactResult {
    let mut result = ContactResult::new(
        ready.recipient.index,
        Some(ready.recipient.to.to_string()),
        Status::Unknown,
    )
    .because(outcome_unknown());
    result.activity_id = Some(activity.id.clone());
    result.contact_id = Some(ready.contact_id.clone());
    result.locale = Some(ready.rendered.locale.to_string());
    result
}

/// Puts what the provider answered into the contact's activity and result;
/// the provider's message id when the message went out.
fn record_send(
    sent: Result<Sent, Error>,
    activity: &mut Activity,
    result: &mut ContactResult,
) -> Option<String> {
    match sent {
        Ok(sent) => {
            activity.status = sent.status;
            activity.error_code = None;
            activity.error = None;
            activity.provider_message_id = Some(sent.provider_message_id.clone());
            result.status = Status::Sent;
            result.reason = None;
            result.provider_message_id = Some(sent.provider_message_id.clone());
            Some(sent.provider_message_id)
        }
        // No answer: the provider may have the message. It stays
        // `unknown`, and is not sent again.
        Err(error) if may_have_been_sent(&error) => {
            activity.error = Some(error.message());
            result.reason = Some(Reason {
                message: format!("{} ({})", outcome_unknown().message, error.message()),
                ..outcome_unknown()
            });
            None
        }
        Err(error) => {
            activity.status = "failed".to_owned();
            activity.error_code = Some(error.code().to_owned());
            activity.error = Some(error.message());
            result.status = Status::Failed;
            result.reason = Some(Reason::from(&error));
            None
        }
    }
}

/// A contact made for this send, its index entry and its address
/// pointing at it.
fn new_contact_writes(org: &str, config: &OutboundConfig, ready: &Ready) -> Vec<(String, Vec<u8>)> {
    let Some(contact) = &ready.new_contact else {
        return Vec::new();
    };
    let index = store::index::<Contact>(org);
    let listed = contact
        .listed_at
        .map(|slot| (index.slot_key(slot), contact.id.as_bytes().to_vec()));
    listed
        .into_iter()
        .chain([
            (
                address_key(
                    org,
                    config.channel_type.as_str(),
                    ready.recipient.to.as_str(),
                ),
                contact.id.as_bytes().to_vec(),
            ),
            (
                store::document_key::<Contact>(org, &contact.id),
                store::encode(contact),
            ),
        ])
        .collect()
}

/// The pending outbound messages of each thread sent on, with the
/// activities just sent added and the oldest dropped past
/// [`PENDING_PER_THREAD`].
fn pending_writes(
    org: &str,
    mut pending: Pending,
    sent: Vec<(String, String)>,
) -> Vec<(String, Vec<u8>)> {
    let mut threads = Vec::new();
    for (thread, activity_id) in sent {
        pending.entry(thread.clone()).or_default().push(activity_id);
        threads.push(thread);
    }
    threads.sort();
    threads.dedup();
    threads
        .into_iter()
        .map(|thread| {
            let mut ids = pending.remove(&thread).unwrap_or_default();
            let excess = ids.len().saturating_sub(PENDING_PER_THREAD);
            ids.drain(..excess);
            (pending_outbound_key(org, &thread), store::encode(&ids))
        })
        .collect()
}

/// Writes the batch's outcome in one transaction: `writes`, the
/// activities, and the batch's record when the run is resumable.
fn record_outcome(
    ports: &Ports<'_>,
    org: &str,
    activities: &[Activity],
    results: &mut [ContactResult],
    record_key: Option<String>,
    mut writes: Vec<(String, Vec<u8>)>,
) {
    writes.extend(activities.iter().map(|activity| {
        (
            store::document_key::<Activity>(org, &activity.id),
            store::encode(activity),
        )
    }));
    if let Some(key) = record_key {
        writes.push((key, store::encode(&results)));
    }
    if let Err(error) = ports.kv.set_many(&writes) {
        // The messages went out; only their record is behind. What is
        // stored still says `unknown`, so nothing is sent again.
        not_recorded(results, &Error::from(error));
    }
}

fn outcome_unknown() -> Reason {
    reason(
        OUTCOME_UNKNOWN,
        "the message was handed to the provider but no answer was recorded: it may have reached the customer; check the provider's logs before sending it again",
        None,
    )
}

/// The activity of a contact about to be sent, as recorded before the send.
fn intended_activity(
    ports: &Ports<'_>,
    setup: &Setup,
    ready: &Ready,
    job_id: Option<&str>,
    now: Timestamp,
) -> Activity {
    let config = &setup.config;
    Activity {
        id: ports.random.id128(),
        kind: activity::KIND.to_owned(),
        configuration_id: config.id.clone(),
        channel: config.channel_type,
        account_id: setup.account.id.clone(),
        from: config.channel.clone(),
        to: ready.recipient.to.to_string(),
        contact_id: ready.contact_id.clone(),
        conversation_id: ready.thread.clone(),
        template_id: config.template_id.clone(),
        locale: ready.rendered.locale.clone(),
        text: ready.rendered.text.clone(),
        content_sid: ready.rendered.content_sid.clone(),
        entityrelationshipname: ready.recipient.entity_relationship.clone(),
        show_on_timeline: config.show_on_timeline,
        status: Status::Unknown.name().to_owned(),
        provider_message_id: None,
        error_code: Some(outcome_unknown().code),
        error: None,
        job_id: job_id.map(str::to_owned),
        conversation_position: None,
        created_at: now,
    }
}

/// Writes, before anything is sent, the batch's activities as `unknown`
/// with their timeline entries, and its results when the run is resumable.
fn record_intent(
    ports: &Ports<'_>,
    org: &str,
    activities: &[Activity],
    results: &[ContactResult],
    record_key: Option<&str>,
) -> Result<(), Error> {
    let mut writes = timeline_slots(ports, org, activities)?;
    writes.extend(activities.iter().map(|activity| {
        (
            store::document_key::<Activity>(org, &activity.id),
            store::encode(activity),
        )
    }));
    if let Some(key) = record_key {
        writes.push((key.to_owned(), store::encode(&results)));
    }
    if !writes.is_empty() {
        ports.kv.set_many(&writes)?;
    }
    Ok(())
}

/// Whether a resumable run still holds its lease (renewing it); a plain
/// call always runs.
fn still_running(ports: &Ports<'_>, progress: Option<&Progress<'_>>) -> bool {
    progress.is_none_or(|progress| {
        progress
            .lease
            .borrow_mut()
            .keep(ports.kv, ports.clock.now_millis())
            .unwrap_or(false)
    })
}

/// Hands every ready contact's message to the provider, a bounded number
/// at a time; the outcomes in the order of `ready`.
async fn send_all(ports: &Ports<'_>, setup: &Setup, ready: &[Ready]) -> Vec<Result<Sent, Error>> {
    let config = &setup.config;
    let mut sends: Vec<(usize, Result<_, Error>)> = stream::iter(ready.iter().enumerate())
        .map(|(n, ready)| async move {
            let content = Content::Template {
                template_id: config.template_id.clone(),
                rendered: ready.rendered.clone(),
            };
            let thread = Thread {
                channel: config.channel_type,
                ours: &config.channel,
                customer: ready.recipient.to.as_str(),
            };
            let sent = deliver(
                ports,
                &setup.account,
                thread,
                &content,
                Author::Automation,
                Window::Open,
            )
            .await
            .map_err(|undelivered| undelivered.error);
            (n, sent)
        })
        .buffer_unordered(SENDS_IN_FLIGHT)
        .collect()
        .await;
    sends.sort_by_key(|(n, _)| *n);
    sends.into_iter().map(|(_, sent)| sent).collect()
}

/// The timeline entries of `activities` shown on the timeline: a slot of
/// each contact's log, taken now, and the activity id to write there.
fn timeline_slots(
    ports: &Ports<'_>,
    org: &str,
    activities: &[Activity],
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut slots = Vec::new();
    for activity in activities.iter().filter(|a| a.show_on_timeline) {
        let log = activity::timeline(org, &activity.contact_id);
        let slot = log.reserve(ports.kv)?;
        slots.push((log.slot_key(slot), activity.id.as_bytes().to_vec()));
    }
    Ok(slots)
}

/// The messages went out but their outcome could not be stored: the
/// results say so, and keep what the provider answered.
fn not_recorded(results: &mut [ContactResult], error: &Error) {
    for result in results.iter_mut().filter(|r| r.activity_id.is_some()) {
        result.reason = Some(reason(
            "activity_not_recorded",
            format!(
                "the message was handed to the provider, but the outcome could not be stored ({}); its activity says unknown",
                error.message()
            ),
            None,
        ));
    }
}

/// Each thread's outbound messages not yet threaded into its conversation.
type Pending = HashMap<String, Vec<String>>;

/// A batch's recipients after [`prepare`].
struct Prepared {
    ready: Vec<Ready>,
    /// A result for each recipient who is skipped or failed.
    not_ready: Vec<ContactResult>,
    /// Each thread's pending outbound messages, which the batch extends.
    pending: Pending,
}

/// Reads what the batch's contacts need (two round trips), skips those who
/// may not be contacted and renders the rest. Also returns each thread's
/// pending outbound messages, which the batch's write extends.
fn prepare(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    recipients: Vec<Recipient>,
    now: Timestamp,
) -> Result<Prepared, Error> {
    let (addressees, pending) = read_addressees(ports.kv, org, &setup.config, &recipients)?;
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for (recipient, addressee) in recipients.into_iter().zip(addressees) {
        match check(org, setup, recipient, addressee, now) {
            Ok(one) => ready.push(one),
            Err(result) => not_ready.push(*result),
        }
    }
    list_new_contacts(ports.kv, org, &mut ready)?;
    Ok(Prepared {
        ready,
        not_ready,
        pending,
    })
}

/// Gives the contacts the batch makes their slots in the contacts' index
/// (one `increment` for all), so that they are listed with the others.
fn list_new_contacts(
    kv: &dyn crate::ports::KeyValue,
    org: &str,
    ready: &mut [Ready],
) -> Result<(), Error> {
    let mut new: Vec<&mut Contact> = ready
        .iter_mut()
        .filter_map(|r| r.new_contact.as_mut())
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let first = store::index::<Contact>(org).reserve_many(kv, new.len() as i64)?;
    for (slot, contact) in (first..).zip(new.iter_mut()) {
        contact.listed_at = Some(slot);
    }
    Ok(())
}

/// What the store knows of one recipient's address.
struct Addressee {
    thread: String,
    /// The contact id the address points to, if any.
    known: Option<String>,
    /// That contact, unless it was deleted.
    contact: Option<Contact>,
    /// The address's opt-out record.
    consent: Option<Consent>,
}

/// Reads the recipients' addresses, threads and opt-outs in one round
/// trip and their contacts in a second; also returns each thread's
/// pending outbound messages.
fn read_addressees(
    kv: &dyn crate::ports::KeyValue,
    org: &str,
    config: &OutboundConfig,
    recipients: &[Recipient],
) -> Result<(Vec<Addressee>, Pending), Error> {
    let channel = config.channel_type.as_str();
    let mut keys = Vec::with_capacity(recipients.len() * 3);
    let mut threads = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let to = recipient.to.as_str();
        let thread = thread_id(org, &config.account_id, &config.channel, to);
        keys.push(address_key(org, channel, to));
        keys.push(pending_outbound_key(org, &thread));
        keys.push(consent::key(org, channel, to));
        threads.push(thread);
    }
    let found = kv.get_many(&keys)?;
    let mut addressees = Vec::with_capacity(recipients.len());
    let mut pending = Pending::new();
    for ((thread, values), keys) in threads.into_iter().zip(found.chunks(3)).zip(keys.chunks(3)) {
        let ids: Vec<String> = values[1]
            .as_ref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        pending.insert(thread.clone(), ids);
        addressees.push(Addressee {
            thread,
            known: values[0]
                .as_ref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
            contact: None,
            consent: store::decode_found(&keys[2], values[2].clone())?,
        });
    }
    let contact_keys: Vec<String> = addressees
        .iter()
        .filter_map(|a| a.known.as_ref())
        .map(|id| store::document_key::<Contact>(org, id))
        .collect();
    let mut contacts: HashMap<String, Contact> = HashMap::new();
    for (key, found) in contact_keys.iter().zip(kv.get_many(&contact_keys)?) {
        if let Some(contact) = found.and_then(|bytes| store::decode::<Contact>(key, &bytes).ok()) {
            contacts.insert(contact.id.clone(), contact);
        }
    }
    for addressee in &mut addressees {
        addressee.contact = addressee
            .known
            .as_ref()
            .and_then(|id| contacts.get(id).cloned());
    }
    Ok((addressees, pending))
}

/// Why a recipient may not be contacted, if they may not: the flow says
/// so, or the customer opted out of the channel (R-IN-8).
fn skipped(
    recipient: &Recipient,
    addressee: &Addressee,
    channel: Channel,
) -> Option<ContactResult> {
    let to = Some(recipient.to.to_string());
    if !recipient.opt_in {
        return Some(
            ContactResult::new(recipient.index, to, Status::Skipped).because(reason(
                "opted_out",
                "\"optin\" is false: the customer does not want to be contacted",
                Some(format!("ContactList[{}].optin", recipient.index)),
            )),
        );
    }
    let standing = Standing::of(
        addressee.consent.clone(),
        addressee.contact.as_ref(),
        channel,
    );
    let since = standing.opted_out_since()?;
    let mut result = ContactResult::new(recipient.index, to, Status::Skipped).because(reason(
        "opted_out",
        format!(
            "the customer opted out of {channel} on {since}; only they can opt back in, by sending START"
        ),
        None,
    ));
    result.contact_id = addressee.contact.as_ref().map(|c| c.id.clone());
    Some(result)
}

/// The recipient's message, or its failed result naming the field to fix.
fn render_for(setup: &Setup, recipient: &Recipient) -> Result<Rendered, Box<ContactResult>> {
    let context = RenderContext {
        customer_name: Some(&recipient.customer_name),
        case_name: Some(&recipient.case_name),
        context_items: Some(&recipient.context_items),
    };
    setup
        .template
        .render(
            setup.config.channel_type,
            recipient.locale.as_ref(),
            &context,
        )
        .map_err(|failure| {
            let field = match failure.field() {
                "CustomerName" | "CaseName" | "contextitems" | "locale" => Some(format!(
                    "ContactList[{}].{}",
                    recipient.index,
                    failure.field()
                )),
                _ => None,
            };
            let to = Some(recipient.to.to_string());
            let result = ContactResult::new(recipient.index, to, Status::Failed);
            Box::new(result.because(reason(failure.code(), failure.to_string(), field)))
        })
}

/// One recipient, ready to send, or its result: skipped, or failed because
/// the template does not render for it.
fn check(
    org: &str,
    setup: &Setup,
    recipient: Recipient,
    addressee: Addressee,
    now: Timestamp,
) -> Result<Ready, Box<ContactResult>> {
    let channel = setup.config.channel_type;
    if let Some(result) = skipped(&recipient, &addressee, channel) {
        return Err(Box::new(result));
    }
    let rendered = render_for(setup, &recipient)?;
    let (contact_id, new_contact) = match addressee.contact {
        Some(contact) => (contact.id, None),
        // An address pointing at a deleted contact, or none: the contact
        // is (re)created, as an inbound message would.
        None => {
            let to = recipient.to.to_string();
            let contact =
                Contact::for_sender(org, channel, &to, Some(&recipient.customer_name), now);
            (contact.id.clone(), Some(contact))
        }
    };
    Ok(Ready {
        recipient,
        contact_id,
        new_contact,
        thread: addressee.thread,
        rendered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryPorts;
    use crate::phone::E164;
    use crate::ports::KeyValue;

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const TO: &str = "+4790000001";
    const CONTACT: &str = "c0000000000000000000000000000000";

    fn config() -> OutboundConfig {
        OutboundConfig {
            id: "f".repeat(32),
            name: "Case updated".into(),
            show_on_timeline: false,
            channel_type: crate::channel::Channel::Sms,
            channel: "14252306549".into(),
            account_id: "a".repeat(32),
            template_id: "e".repeat(32),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        }
    }

    fn recipient() -> Recipient {
        Recipient {
            index: 0,
            to: E164::parse(TO).unwrap(),
            opt_in: true,
            locale: None,
            context_items: serde_json::Map::new(),
            entity_relationship: None,
            customer_name: "Kari".into(),
            case_name: "CAS-1".into(),
        }
    }

    /// Why the recipient is skipped, if they are.
    fn skipped_because(kv: &dyn KeyValue) -> Option<String> {
        let (addressees, _) = read_addressees(kv, ORG, &config(), &[recipient()]).unwrap();
        skipped(&recipient(), &addressees[0], Channel::Sms)
            .map(|result| result.reason.unwrap().message)
    }

    fn record(opted_out: bool) -> Vec<u8> {
        store::encode(&Consent {
            opted_out,
            at: Timestamp::from_millis(1_769_904_000_000),
        })
    }

    #[test]
    fn a_contact_stored_with_an_opt_out_before_addresses_kept_them_still_skips() {
        let memory = MemoryPorts::default();
        let kv = memory.ports().kv;
        // As the code before opt-out records wrote it.
        let legacy = format!(
            r#"{{"id":"{CONTACT}","name":"Kari","addresses":[{{"channel":"sms","address":"{TO}"}}],"fields":{{}},"opted_out":{{"sms":"2026-01-01T00:00:00.000Z"}},"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z"}}"#
        );
        kv.set(&address_key(ORG, "sms", TO), CONTACT.as_bytes())
            .unwrap();
        kv.set(
            &store::document_key::<Contact>(ORG, CONTACT),
            legacy.as_bytes(),
        )
        .unwrap();
        let because = skipped_because(kv).expect("skipped");
        assert!(because.contains("2026-01-01T00:00:00.000Z"), "{because}");
        // The customer's START is the address's record, which wins.
        kv.set(&consent::key(ORG, "sms", TO), &record(false))
            .unwrap();
        assert_eq!(skipped_because(kv), None);
    }

    #[test]
    fn an_address_opted_out_is_skipped_whatever_contact_it_has() {
        let memory = MemoryPorts::default();
        let kv = memory.ports().kv;
        kv.set(&consent::key(ORG, "sms", TO), &record(true))
            .unwrap();
        assert!(skipped_because(kv).is_some(), "no contact at all");
        let linked = Contact::for_sender(
            ORG,
            Channel::Sms,
            "+4790000002",
            Some("Ola"),
            crate::time::Timestamp::from_millis(0),
        );
        kv.set(&address_key(ORG, "sms", TO), linked.id.as_bytes())
            .unwrap();
        kv.set(
            &store::document_key::<Contact>(ORG, &linked.id),
            &store::encode(&linked),
        )
        .unwrap();
        assert!(skipped_because(kv).is_some(), "linked to another contact");
        kv.set(&consent::key(ORG, "sms", "+4790000002"), &record(true))
            .unwrap();
        kv.set(&consent::key(ORG, "sms", TO), &record(false))
            .unwrap();
        assert_eq!(skipped_because(kv), None, "another address's STOP");
    }
}
