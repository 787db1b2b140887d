//! Conversations (SPEC.md R-CONV): customers' messages threaded per channel
//! instance, routed to queues and agents, answered within each channel's
//! rules.
//!
//! Layout, all under `org/{org}/` (ARCHITECTURE.md principle 3):
//! - `conversation/{id}`: the [`Conversation`]; its id is derived from the
//!   thread (account, our address, the customer's address), so every
//!   delivery of a customer's message finds it with one direct read, and two
//!   first messages arriving at once name the same conversation.
//! - `conversation/{id}/messages/{n}`: the messages, a [`Log`] numbered by
//!   an atomic counter, so concurrent messages never overwrite each other.
//! - `conversation/{id}/last-customer`: when the customer last wrote. It is
//!   a key of its own so that a message on a live conversation never
//!   rewrites the conversation document, which agents change concurrently.
//! - `provider-message/{provider}/{id}`: `{conversation}/{n}` for a provider
//!   message id, the dedupe record (R-IN-3) and the status lookup (R-IN-7).
//! - `contact/{id}` and `address/{channel}/{address}` → contact id (R-CONV-2).
//! - `opt-out/{channel}/{address}`: the address's opt-out ([`consent`]).
//! - `queue/{q}/conversations`, `agent/{a}/conversations`: logs of who
//!   entered a queue or was assigned, for listings and for the waiting line.
//!
//! Every change of a conversation document goes through [`commit`]: an
//! optimistic version check built from `increment` (principle 4), so two
//! agents accepting at once cannot both win.

pub mod access;
pub mod api;
pub mod bot;
pub mod consent;
pub mod contacts;
pub mod ingest;
pub mod reply;
pub mod routing;
pub mod wire;

use crate::channel::Channel;
use crate::entities::activity::Activity;
use crate::error::Error;
use crate::lease;
use crate::locale::Locale;
use crate::message::{Message, Thread};
use crate::ports::{KeyValue, UnixMillis};
use crate::providers::Provider;
use crate::store::{self, Log};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting in a queue (or with the bot) for an agent.
    Open,
    /// Assigned to an agent.
    Active,
    /// Parked by its agent until the customer writes or the agent resumes.
    Waiting,
    Closed,
}

impl State {
    pub const NAMES: &'static [&'static str] = &["open", "active", "waiting", "closed"];

    pub fn name(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Active => "active",
            State::Waiting => "waiting",
            State::Closed => "closed",
        }
    }

    pub fn parse(name: &str) -> Option<State> {
        [State::Open, State::Active, State::Waiting, State::Closed]
            .into_iter()
            .find(|state| state.name() == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub state: State,
    pub channel: Channel,
    pub workstream_id: String,
    pub account_id: String,
    /// Our side: the number, page or agent the customer wrote to.
    pub channel_address: String,
    /// The customer's side: phone number, PSID or GBM conversation id.
    pub customer_address: String,
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// The channel instance's language, for templates.
    pub language: Locale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Which routing rule chose the queue (`fallback` when none matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_by: Option<String>,
    /// The workstream's bot has the conversation (R-CONV-7).
    #[serde(default)]
    pub with_bot: bool,
    /// Bumped by every committed change; see [`commit`].
    pub version: u64,
    /// The version at which it entered its queue and was assigned: log
    /// entries of older visits no longer count.
    #[serde(default)]
    pub queued_at: u64,
    #[serde(default)]
    pub assigned_at: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
}

crate::document!(Conversation, "conversation");

impl Conversation {
    pub fn thread(&self) -> Thread<'_> {
        Thread {
            channel: self.channel,
            ours: &self.channel_address,
            customer: &self.customer_address,
        }
    }
}

/// The conversation id of a thread: a customer on one of our addresses.
pub fn thread_id(org: &str, account_id: &str, channel_address: &str, customer: &str) -> String {
    let digest = crate::auth::sha256_hex(&format!(
        "thread\n{org}\n{account_id}\n{channel_address}\n{customer}"
    ));
    digest[..32].to_owned()
}

pub fn messages(org: &str, conversation: &str) -> Log {
    Log::new(format!("org/{org}/conversation/{conversation}/messages"))
}

/// Outbound API messages sent on a thread since its customer last wrote: a
/// JSON list of activity ids, which the customer's reply threads into the
/// conversation before itself (R-OUT-8).
pub fn pending_outbound_key(org: &str, conversation: &str) -> String {
    format!("org/{org}/conversation/{conversation}/outbound")
}

pub fn last_customer_key(org: &str, conversation: &str) -> String {
    format!("org/{org}/conversation/{conversation}/last-customer")
}

pub fn provider_message_key(org: &str, provider: Provider, id: &str) -> String {
    format!(
        "org/{org}/provider-message/{provider}/{}",
        crate::encoding::percent_encode(id)
    )
}

pub fn queue_log(org: &str, queue: &str) -> Log {
    Log::new(format!("org/{org}/queue/{queue}/conversations"))
}

pub fn agent_log(org: &str, agent: &str) -> Log {
    Log::new(format!("org/{org}/agent/{agent}/conversations"))
}

/// Where a provider message id points: `{conversation}/{position}`.
pub fn message_location(conversation: &str, position: i64) -> Vec<u8> {
    format!("{conversation}/{position}").into_bytes()
}

pub fn parse_location(bytes: &[u8]) -> Option<(String, i64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (conversation, position) = text.split_once('/')?;
    Some((conversation.to_owned(), position.parse().ok()?))
}

/// A log entry naming a conversation at a version.
pub fn log_entry(conversation: &str, version: u64) -> Vec<u8> {
    format!("{conversation}:{version}").into_bytes()
}

pub fn parse_log_entry(bytes: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (conversation, version) = text.split_once(':')?;
    Some((conversation.to_owned(), version.parse().ok()?))
}

/// Writes a changed conversation with `extra` keys in one transaction,
/// provided nobody changed it since it was read: the writer of version `v`
/// must claim `…/v/{v}` first ([`lease::claim_first`]: one `increment`,
/// no read), which only one writer does. Others get
/// [`Error::ConversationChanged`] and reload. A writer that died holding it
/// blocks the conversation only until its claim expires, after which the
/// next writer takes over (R-OPS-4).
pub fn commit(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &mut Conversation,
    now: UnixMillis,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let name = version_lease(org, &conversation.id, conversation.version);
    let held = match lease::claim_first(kv, &name, now)? {
        lease::Claimed::First(_) => true,
        lease::Claimed::After(earlier) => earlier.take_over(kv, now)?.is_some(),
    };
    if !held {
        return Err(Error::ConversationChanged);
    }
    conversation.version += 1;
    let write = if conversation.version == 1 {
        store::insert(kv, org, conversation, extra)
    } else {
        store::save(kv, org, conversation, extra)
    };
    if write.is_err() {
        conversation.version -= 1;
    }
    write
}

/// The lease whose holder may write version `version + 1`.
fn version_lease(org: &str, conversation: &str, version: u64) -> String {
    format!("org/{org}/conversation/{conversation}/v/{version}")
}

/// A conversation document and when its customer last wrote, in one read.
pub fn load(
    kv: &dyn KeyValue,
    org: &str,
    id: &str,
) -> Result<Option<(Conversation, Option<String>)>, Error> {
    if !store::is_id(id) {
        return Ok(None);
    }
    let keys = [
        store::document_key::<Conversation>(org, id),
        last_customer_key(org, id),
    ];
    let mut found = kv.get_many(&keys)?.into_iter();
    let document = found.next().flatten();
    let last = found
        .next()
        .flatten()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    Ok(document
        .map(|bytes| store::decode::<Conversation>(&keys[0], &bytes))
        .transpose()?
        .map(|conversation| (conversation, last)))
}

pub fn require(
    kv: &dyn KeyValue,
    org: &str,
    id: &str,
) -> Result<(Conversation, Option<String>), Error> {
    load(kv, org, id)?.ok_or_else(|| {
        Error::not_found(
            "not_found",
            format!("no conversation with id {id} in this organisation"),
        )
    })
}

/// The status of a message of ours between handing it to the provider and
/// hearing back; it stays so if we never hear (R-OPS-4).
pub const UNKNOWN: &str = "unknown";

/// Records `message`, about to be sent, at the end of the conversation as
/// [`UNKNOWN`] before the provider is called: a request that dies during
/// the send leaves a message whose fate is unknown, never a message sent
/// but not shown (which an agent would send again).
pub fn record_intent(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &str,
    message: &mut Message,
) -> Result<(), Error> {
    let log = messages(org, conversation);
    message.status = Some(UNKNOWN.to_owned());
    message.position = log.reserve(kv)?;
    kv.set(&log.slot_key(message.position), &store::encode(message))?;
    Ok(())
}

/// Records the provider's answer for a message of [`record_intent`], with
/// its provider id for the status callbacks.
pub fn record_outcome(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &str,
    provider: Provider,
    message: &Message,
) -> Result<(), Error> {
    kv.set_many(&sent_writes(org, conversation, message, provider))?;
    Ok(())
}

/// A message's slot and, once the provider named it, its record: written
/// together whenever a message we sent changes.
pub fn sent_writes(
    org: &str,
    conversation: &str,
    message: &Message,
    provider: Provider,
) -> Vec<(String, Vec<u8>)> {
    let mut writes = vec![(
        messages(org, conversation).slot_key(message.position),
        store::encode(message),
    )];
    if let Some(id) = &message.provider_message_id {
        writes.push((
            provider_message_key(org, provider, id),
            sent_record(conversation, message),
        ));
    }
    writes
}

/// What the provider's id of a message we sent in a conversation names:
/// where the message is, and a copy of it, so that a status callback reads
/// one key and writes the message and its record in one transaction
/// (SPEC.md's budget). Every write of a sent message writes both.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentRecord {
    pub conversation: String,
    pub message: Message,
}

pub fn sent_record(conversation: &str, message: &Message) -> Vec<u8> {
    serde_json::to_vec(&SentRecord {
        conversation: conversation.to_owned(),
        message: message.clone(),
    })
    .expect("messages serialize to JSON")
}

/// A [`SentRecord`]; `None` for a record written before records held their
/// message (a bare location: see [`parse_location`]).
pub fn parse_sent_record(bytes: &[u8]) -> Option<SentRecord> {
    serde_json::from_slice(bytes).ok()
}

/// Applies a provider's status callback to an activity and, once it is in a
/// conversation, to its message there; forward only, like every status.
pub fn apply_activity_status(
    kv: &dyn KeyValue,
    org: &str,
    activity_id: &str,
    status: &str,
    error_code: Option<&str>,
    provider: Provider,
) -> Result<bool, Error> {
    let key = store::document_key::<Activity>(org, activity_id);
    let Some(bytes) = kv.get(&key)? else {
        return Ok(false);
    };
    let mut activity: Activity = store::decode(&key, &bytes)?;
    if !provider.moves_forward(Some(&activity.status), status) {
        return Ok(false);
    }
    activity.status = status.to_owned();
    if let Some(code) = error_code {
        activity.error_code = Some(code.to_owned());
    }
    let mut writes = Vec::new();
    if let Some(position) = activity.conversation_position {
        let slot = messages(org, &activity.conversation_id).slot_key(position);
        if let Some(bytes) = kv.get(&slot)? {
            let mut message: Message = store::decode(&slot, &bytes)?;
            message.status = Some(activity.status.clone());
            message.error_code = activity.error_code.clone();
            writes.push((slot, store::encode(&message)));
        }
    }
    writes.push((key, store::encode(&activity)));
    kv.set_many(&writes)?;
    Ok(true)
}

/// Takes back a message of [`record_intent`] the provider refused outright:
/// it was never sent. Best effort: if this fails it stays [`UNKNOWN`].
pub fn withdraw(kv: &dyn KeyValue, org: &str, conversation: &str, message: &Message) {
    let _ = kv.delete(&messages(org, conversation).slot_key(message.position));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_conversation_reads_and_writes_back_the_same() {
        let stored = r#"{"id":"d0000000000000000000000000000000","state":"closed","channel":"whatsapp","workstream_id":"w0000000000000000000000000000000","account_id":"a0000000000000000000000000000000","channel_address":"+14155238886","customer_address":"+4790000001","contact_id":"c0000000000000000000000000000000","profile_name":"Kari","language":"nb-NO","queue_id":"q0000000000000000000000000000000","agent_id":"g0000000000000000000000000000000","routed_by":"fallback","with_bot":false,"version":4,"queued_at":2,"assigned_at":3,"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T01:00:00.000Z","closed_at":"2026-01-01T01:00:00.000Z"}"#;
        let conversation: Conversation = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&conversation).unwrap(), stored);
    }
}
