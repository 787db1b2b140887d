//! Sending a contact list (R-OUT-3..5): batches of 100 against the hour's
//! budget, each contact checked, rendered and sent on its own, and each
//! batch recorded in one write.
//!
//! A batch's key-value cost is fixed, whatever its size: one `get-many` of
//! its contacts' address and thread keys, one of their contact documents,
//! and one `set-many` with every activity, provider-message pointer, new
//! contact and thread entry (ARCHITECTURE.md principle 3). Only
//! show-on-timeline adds a write per contact: the slot in the contact's
//! timeline, which has to be numbered atomically.
//!
//! Batches run concurrently, and so do the sends within a batch, each with
//! a bound, so a call keeps at most `BATCHES_IN_FLIGHT × SENDS_IN_FLIGHT`
//! provider requests open.

use super::activity::{self, Activity};
use super::budget;
use super::contact_list::{recipient, Recipient, BATCH_SIZE};
use crate::api::ApiError;
use crate::config::accounts::Account;
use crate::config::outbound_configs::OutboundConfig;
use crate::conversations::contacts::{address_key, Contact};
use crate::conversations::reply::{deliver, Content, Window};
use crate::conversations::{pending_outbound_key, provider_message_key, thread_id, Author, Thread};
use crate::ports::Ports;
use crate::store;
use crate::template_text::RenderContext;
use crate::templates::{Rendered, Template};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    ) -> Result<Setup, ApiError> {
        let config: OutboundConfig = store::load(kv, org, config_id)?.ok_or_else(|| ApiError {
            status: 404,
            code: "not_found",
            message: format!(
                "no outbound configuration with id {config_id} in this organisation; create one with POST /api/outbound-configs"
            ),
            field: None,
        })?;
        let keys = [
            store::document_key::<Template>(org, &config.template_id),
            store::document_key::<Account>(org, &config.account_id),
        ];
        let mut found = kv.get_many(&keys)?.into_iter();
        let broken = |what: &str| {
            ApiError::conflict(
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
#[serde(rename_all = "snake_case")]
pub enum Status {
    Sent,
    Skipped,
    Failed,
    /// Its batch was over the hour's budget; nothing of it was sent.
    NotAttempted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<&ApiError> for Reason {
    fn from(error: &ApiError) -> Reason {
        Reason {
            code: error.code.to_owned(),
            message: error.message.clone(),
            field: error.field.clone(),
        }
    }
}

/// What became of one contact (R-OUT-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_attempted: usize,
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
}

pub fn batch_count(contacts: usize) -> usize {
    contacts.div_ceil(BATCH_SIZE)
}

/// Sends the batches numbered `batches` of `contacts`: takes them from the
/// hour's budget, then runs those that fit. For a scheduled job (`job_id`),
/// each batch also writes its results beside the job, with its activities.
pub async fn run(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[Value],
    batches: &[usize],
    job_id: Option<&str>,
) -> Result<Run, ApiError> {
    let limit = budget::requests_per_hour(ports.variables)?;
    let grant = budget::take(
        ports.kv,
        org,
        batches.len(),
        limit,
        ports.clock.now_millis(),
    )?;
    let (allowed, refused) = batches.split_at(grant.allowed);
    let sent: Vec<Vec<ContactResult>> = stream::iter(allowed)
        .map(|&batch| run_batch(ports, org, setup, contacts, batch, job_id))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .collect()
        .await;
    let mut results: Vec<ContactResult> = sent.into_iter().flatten().collect();
    for &batch in refused {
        results.extend(batch_range(batch, contacts.len()).map(|index| {
            ContactResult::new(index, tocontactid(&contacts[index]), Status::NotAttempted).because(
                reason(
                    "rate_limited",
                    format!(
                        "the organisation's {limit} outbound requests for this hour are used up; send this contact again after {} seconds",
                        grant.retry_after_seconds
                    ),
                    None,
                ),
            )
        }));
    }
    results.sort_by_key(|result| result.index);
    Ok(Run {
        results,
        refused: refused.to_vec(),
        retry_after_seconds: (!refused.is_empty()).then_some(grant.retry_after_seconds),
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

async fn run_batch(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    contacts: &[Value],
    batch: usize,
    job_id: Option<&str>,
) -> Vec<ContactResult> {
    let results_key = job_id.map(|job| super::jobs::batch_key(org, job, batch));
    let config = &setup.config;
    let channel = config.channel_type.as_str();
    let now = crate::time::rfc3339(ports.clock.now_millis());
    let mut results = Vec::new();
    let mut recipients = Vec::new();
    for index in batch_range(batch, contacts.len()) {
        match recipient(index, &contacts[index], config) {
            Ok(recipient) => recipients.push(recipient),
            Err(error) => results.push(
                ContactResult::new(index, tocontactid(&contacts[index]), Status::Failed)
                    .because(Reason::from(&error)),
            ),
        }
    }
    let prepared = prepare(ports, org, setup, recipients, &now);
    let (ready, mut pending) = match prepared {
        Ok((ready, skipped_or_failed, pending)) => {
            results.extend(skipped_or_failed);
            (ready, pending)
        }
        Err((error, recipients)) => {
            results.extend(recipients.into_iter().map(|recipient| {
                ContactResult::new(
                    recipient.index,
                    Some(recipient.to.to_string()),
                    Status::Failed,
                )
                .because(Reason::from(&error))
            }));
            return record_results(ports, results, results_key);
        }
    };
    let sends: Vec<(Ready, Result<crate::conversations::reply::Sent, ApiError>)> =
        stream::iter(ready)
            .map(|ready| async move {
                let content = Content::Template {
                    template_id: config.template_id.clone(),
                    rendered: ready.rendered.clone(),
                };
                let thread = Thread {
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
                (ready, sent)
            })
            .buffer_unordered(SENDS_IN_FLIGHT)
            .collect()
            .await;

    let provider = setup.account.settings.provider();
    let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
    let mut activities = Vec::new();
    let mut threads_sent_on = Vec::new();
    for (ready, sent) in sends {
        let mut activity = Activity {
            id: ports.random.id128(),
            kind: activity::KIND.to_owned(),
            configuration_id: config.id.clone(),
            channel: channel.to_owned(),
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
            status: "failed".to_owned(),
            provider_message_id: None,
            error_code: None,
            error: None,
            job_id: job_id.map(str::to_owned),
            conversation_position: None,
            created_at: now.clone(),
        };
        let mut result = ContactResult::new(
            ready.recipient.index,
            Some(ready.recipient.to.to_string()),
            Status::Sent,
        );
        result.activity_id = Some(activity.id.clone());
        result.contact_id = Some(ready.contact_id.clone());
        result.locale = Some(ready.rendered.locale.to_string());
        match sent {
            Ok(sent) => {
                writes.push((
                    provider_message_key(org, provider, &sent.provider_message_id),
                    activity::pointer(&activity.id),
                ));
                pending
                    .entry(ready.thread.clone())
                    .or_default()
                    .push(activity.id.clone());
                threads_sent_on.push(ready.thread.clone());
                activity.status = sent.status;
                activity.provider_message_id = Some(sent.provider_message_id.clone());
                result.provider_message_id = Some(sent.provider_message_id);
            }
            Err(error) => {
                activity.error_code = Some(error.code.to_owned());
                activity.error = Some(error.message.clone());
                result.status = Status::Failed;
                result.reason = Some(Reason::from(&error));
            }
        }
        if let Some(contact) = ready.new_contact {
            writes.push((
                address_key(org, channel, ready.recipient.to.as_str()),
                contact.id.as_bytes().to_vec(),
            ));
            writes.push((
                store::document_key::<Contact>(org, &contact.id),
                store::encode(&contact),
            ));
        }
        activities.push(activity);
        results.push(result);
    }
    threads_sent_on.sort();
    threads_sent_on.dedup();
    for thread in threads_sent_on {
        let mut ids = pending.remove(&thread).unwrap_or_default();
        let excess = ids.len().saturating_sub(PENDING_PER_THREAD);
        ids.drain(..excess);
        writes.push((pending_outbound_key(org, &thread), store::encode(&ids)));
    }
    let recorded = timeline_slots(ports, org, &activities).map(|slots| {
        writes.extend(slots);
        writes.extend(activities.iter().map(|activity| {
            (
                store::document_key::<Activity>(org, &activity.id),
                store::encode(activity),
            )
        }));
    });
    if let Err(error) = recorded {
        not_recorded(&mut results, &error);
        return results;
    }
    if let Some(key) = results_key {
        results.sort_by_key(|result| result.index);
        writes.push((key, store::encode(&results)));
    }
    if let Err(error) = ports.kv.set_many(&writes) {
        not_recorded(&mut results, &ApiError::from(error));
    }
    results
}

/// The timeline entries of `activities` shown on the timeline: a slot of
/// each contact's log, taken now, and the activity id to write there.
fn timeline_slots(
    ports: &Ports<'_>,
    org: &str,
    activities: &[Activity],
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let mut slots = Vec::new();
    for activity in activities.iter().filter(|a| a.show_on_timeline) {
        let log = activity::timeline(org, &activity.contact_id);
        let slot = log.reserve(ports.kv)?;
        slots.push((log.slot_key(slot), activity.id.as_bytes().to_vec()));
    }
    Ok(slots)
}

/// The messages went out but their activities could not be stored: the
/// results say so, and stay `sent` — sending them again would send twice.
fn not_recorded(results: &mut [ContactResult], error: &ApiError) {
    for result in results.iter_mut().filter(|r| r.activity_id.is_some()) {
        result.activity_id = None;
        result.reason = Some(reason(
            "activity_not_recorded",
            format!(
                "the message was handed to the provider, but its activity could not be stored ({})",
                error.message
            ),
            None,
        ));
    }
}

/// Writes a batch's results where its job keeps them, when nothing was sent.
fn record_results(
    ports: &Ports<'_>,
    mut results: Vec<ContactResult>,
    results_key: Option<String>,
) -> Vec<ContactResult> {
    if let Some(key) = results_key {
        results.sort_by_key(|result| result.index);
        // Best effort: the store just failed; the job still ends.
        let _ = ports.kv.set(&key, &store::encode(&results));
    }
    results
}

type Prepared = (Vec<Ready>, Vec<ContactResult>, HashMap<String, Vec<String>>);

/// Reads what the batch's contacts need (two round trips), skips those who
/// may not be contacted and renders the rest. Also returns each thread's
/// pending outbound messages, which the batch's write extends.
fn prepare(
    ports: &Ports<'_>,
    org: &str,
    setup: &Setup,
    recipients: Vec<Recipient>,
    now: &str,
) -> Result<Prepared, (ApiError, Vec<Recipient>)> {
    let kv = ports.kv;
    let config = &setup.config;
    let channel = config.channel_type.as_str();
    let threads: Vec<String> = recipients
        .iter()
        .map(|r| thread_id(org, &config.account_id, &config.channel, r.to.as_str()))
        .collect();
    let keys: Vec<String> = recipients
        .iter()
        .zip(&threads)
        .flat_map(|(r, thread)| {
            [
                address_key(org, channel, r.to.as_str()),
                pending_outbound_key(org, thread),
            ]
        })
        .collect();
    let found = match kv.get_many(&keys) {
        Ok(found) => found,
        Err(error) => return Err((error.into(), recipients)),
    };
    let mut known_ids = Vec::new();
    let mut pending: HashMap<String, Vec<String>> = HashMap::new();
    for (thread, pair) in threads.iter().zip(found.chunks(2)) {
        let known = pair[0]
            .as_ref()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        known_ids.push(known);
        let ids: Vec<String> = pair[1]
            .as_ref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        pending.insert(thread.clone(), ids);
    }
    let contact_keys: Vec<String> = known_ids
        .iter()
        .flatten()
        .map(|id| store::document_key::<Contact>(org, id))
        .collect();
    let documents = match kv.get_many(&contact_keys) {
        Ok(documents) => documents,
        Err(error) => return Err((error.into(), recipients)),
    };
    let mut contacts: HashMap<String, Contact> = HashMap::new();
    for (key, found) in contact_keys.iter().zip(documents) {
        if let Some(contact) = found.and_then(|bytes| store::decode::<Contact>(key, &bytes).ok()) {
            contacts.insert(contact.id.clone(), contact);
        }
    }

    let mut ready = Vec::new();
    let mut others = Vec::new();
    for ((recipient, thread), known) in recipients.into_iter().zip(threads).zip(known_ids) {
        let to = recipient.to.to_string();
        let contact = known.as_ref().and_then(|id| contacts.get(id));
        if !recipient.opt_in {
            others.push(
                ContactResult::new(recipient.index, Some(to), Status::Skipped).because(reason(
                    "opted_out",
                    "\"optin\" is false: the customer does not want to be contacted",
                    Some(format!("ContactList[{}].optin", recipient.index)),
                )),
            );
            continue;
        }
        if let Some(contact) = contact.filter(|c| c.is_opted_out(channel)) {
            let mut result = ContactResult::new(recipient.index, Some(to), Status::Skipped).because(
                reason(
                    "opted_out",
                    format!(
                        "the customer opted out of {channel} on {} (they can send START to opt back in)",
                        contact.opted_out[channel]
                    ),
                    None,
                ),
            );
            result.contact_id = Some(contact.id.clone());
            others.push(result);
            continue;
        }
        let context = RenderContext {
            customer_name: Some(&recipient.customer_name),
            case_name: Some(&recipient.case_name),
            context_items: Some(&recipient.context_items),
        };
        let rendered =
            match setup
                .template
                .render(channel, recipient.locale.as_ref(), &context)
            {
                Ok(rendered) => rendered,
                Err(failure) => {
                    let field =
                        match failure.field() {
                            "CustomerName" | "CaseName" | "contextitems" | "locale" => Some(
                                format!("ContactList[{}].{}", recipient.index, failure.field()),
                            ),
                            _ => None,
                        };
                    others.push(
                        ContactResult::new(recipient.index, Some(to), Status::Failed)
                            .because(reason(failure.code(), failure.to_string(), field)),
                    );
                    continue;
                }
            };
        let (contact_id, new_contact) = match (contact, known) {
            (Some(contact), _) => (contact.id.clone(), None),
            // An address pointing at a deleted contact, or none: the
            // contact is (re)created, as an inbound message would.
            _ => {
                let contact =
                    Contact::for_sender(org, channel, &to, Some(&recipient.customer_name), now);
                (contact.id.clone(), Some(contact))
            }
        };
        ready.push(Ready {
            recipient,
            contact_id,
            new_contact,
            thread,
            rendered,
        });
    }
    Ok((ready, others, pending))
}
