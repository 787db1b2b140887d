//! Ingestion: a customer's message, already authenticated and normalized by
//! its webhook, becomes part of a conversation (R-IN-3, R-IN-4, R-IN-6,
//! R-IN-8, R-CONV-1..3).
//!
//! The key-value budget of a message on a live conversation (SPEC.md) is
//! three reads and three writes on every store, Spin's Redis store
//! included, where every key is a round trip of its own: so the path is
//! laid out in keys, not batches. Reads: the account's global record (the
//! webhook's, which carries the account), then the conversation and the
//! thread's pending outbound messages. Writes: the claim of the message id
//! (one `increment`, [`lease::claim_first`]), the message's position, one
//! `set-many`. An opt-out or opt-in keyword adds its record to that
//! `set-many`, written outright, unread (R-IN-8, [`consent`]); attachments
//! or a bot add the workstream. A message that opens a conversation reads
//! what routing needs besides; where a store batches reads, that rides
//! along with the first read.
//!
//! Exactly once: the provider's message id is claimed before anything is
//! written, and the holder alone stores the message, with its dedupe
//! record in the same transaction. Should the holder's write fail, or its
//! request die, nothing is given back: the claim expires, and the
//! provider's redelivery then stores the message (R-IN-4, R-OPS-4).
//! Everything after the message is stored (a notice, the bot, routing after
//! a hand-over) is best effort, so a stored message is never answered with
//! a 5xx.

use super::bot;
use super::consent::{self, Consent};
use super::reply::{deliver, may_have_been_sent, OUTCOME_UNKNOWN};
use super::routing::{assignment_entry, classify, release, reserve, route_to_queue, Recount};
use super::{
    commit, last_customer_key, messages, pending_outbound_key, provider_message_key, record_intent,
    record_outcome, thread_id, Conversation, State,
};
use crate::config::accounts::Account;
use crate::entities::activity::Activity;
use crate::entities::agent::{Agent, Presence};
use crate::entities::contact::{address_key, Contact, ContactAddress};
use crate::entities::workstream::{channel_claim, Bot, ChannelInstance, Workstream};
use crate::error::Error;
use crate::lease::{self, Claimed, Holder};
use crate::message::{Author, Content, Inbound, Message, Window};
use crate::ports::{KeyValue, Ports, UnixMillis};
use crate::providers::Provider;
use crate::store;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Already stored by an earlier or concurrent delivery.
    Duplicate,
    Stored {
        conversation_id: String,
        position: i64,
    },
}

/// The keys of a message's thread, by name: the one place that orders
/// them, so values cannot be read in another order than the keys were
/// listed in.
struct ThreadKeys {
    conversation: String,
    pending: String,
    /// The message id's dedupe record.
    record: String,
    /// The owner record of the channel's claim: the workstream serving it.
    workstream: String,
    /// The sender's address, pointing at their contact.
    address: String,
}

impl ThreadKeys {
    fn of(org: &str, account: &Account, inbound: &Inbound, thread: &str) -> ThreadKeys {
        let channel = inbound.channel.as_str();
        let provider = account.settings.provider();
        ThreadKeys {
            conversation: store::document_key::<Conversation>(org, thread),
            pending: pending_outbound_key(org, thread),
            record: provider_message_key(org, provider, &inbound.provider_message_id),
            workstream: store::owner_key(&channel_claim(
                org,
                &account.id,
                &inbound.channel_address,
            )),
            address: address_key(org, channel, &inbound.customer_address),
        }
    }
}

/// What the first read after the account found. A message on a live
/// conversation needs only its conversation and pending list: on a store
/// that reads key by key those are all that is read. The dedupe record and
/// what a new conversation needs ride along where a batch costs no more
/// (`None` when not read).
struct FirstRead {
    conversation: Option<Conversation>,
    pending: Vec<String>,
    stored_at: Option<Option<Vec<u8>>>,
    workstream_id: Option<Option<String>>,
    known_contact: Option<Option<String>>,
}

impl FirstRead {
    fn read(kv: &dyn KeyValue, keys: &ThreadKeys) -> Result<FirstRead, Error> {
        let wanted = vec![
            (keys.conversation.clone(), true),
            (keys.pending.clone(), true),
            (keys.record.clone(), false),
            (keys.workstream.clone(), false),
            (keys.address.clone(), false),
        ];
        let mut found = store::read_wanted(kv, &wanted)?.into_iter();
        let mut next = || found.next().flatten();
        let conversation = store::decode_found(&keys.conversation, next().flatten())?;
        let pending = next()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let stored_at = next();
        let workstream_id = next().map(|owner| owner.as_deref().and_then(store::holder));
        let known_contact = next().map(|address| address.map(text_of));
        Ok(FirstRead {
            conversation,
            pending,
            stored_at,
            workstream_id,
            known_contact,
        })
    }
}

fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How long a redelivery waits for a concurrent delivery of the same
/// message to finish before answering 503 (real time, in steps).
const CONCURRENT_DELIVERY_WAIT_MILLIS: [u64; 4] = [25, 50, 100, 200];

/// Stores `inbound` in its conversation.
///
/// Exactly once: the delivery that first claims the message id
/// ([`lease::claim_first`]) alone stores it, with its dedupe record in the
/// same write. Another delivery meanwhile waits briefly for that record,
/// then answers 503 so the provider retries; a delivery whose request died
/// leaves only its claim, which the next redelivery once the claim has
/// expired ([`lease::LEASE_MILLIS`] and a little) takes over (R-IN-3,
/// R-IN-4, R-OPS-4). Everything is read before the claim, so a message
/// refused (no workstream serves its address) writes nothing.
pub async fn ingest(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    inbound: &Inbound,
) -> Result<Ingested, Error> {
    if account.settings.channel_at(&inbound.channel_address) != Some(inbound.channel) {
        return Err(wrong_channel(account, inbound));
    }
    let thread = thread_id(
        org,
        &account.id,
        &inbound.channel_address,
        &inbound.customer_address,
    );
    let keys = ThreadKeys::of(org, account, inbound, &thread);
    let first = FirstRead::read(ports.kv, &keys)?;
    if first
        .stored_at
        .as_ref()
        .and_then(Option::as_deref)
        .is_some_and(stored)
    {
        return Ok(Ingested::Duplicate);
    }
    let Landing {
        serving,
        mut thread,
    } = read_landing(ports.kv, org, account, inbound, &keys, first)?;
    let delivery = match claim_delivery(ports, &keys.record)? {
        Ok(delivery) => delivery,
        Err(ingested) => return Ok(ingested),
    };
    claim_outbound(ports, org, &mut thread.outbound)?;
    let sender_is_new = thread.sender.is_new;
    let now_millis = ports.clock.now_millis();
    let arrival = Arrival {
        account,
        inbound,
        serving,
        now: crate::time::Timestamp::from_millis(now_millis),
        now_millis,
    };
    let stored = store_message(ports, org, &arrival, thread, delivery)?;
    // The message is stored: what follows is best effort, and a failure of
    // it must not make the provider deliver the message again.
    Ok(follow_up(ports, org, &arrival, stored, sender_is_new).await)
}

/// Claims the message id for this delivery, on its dedupe record (a
/// counter until the message is stored, then its location): held, or the
/// answer to give when another delivery stored it or is storing it.
fn claim_delivery(ports: &Ports<'_>, record: &str) -> Result<Result<Holder, Ingested>, Error> {
    let now = ports.clock.now_millis();
    let claimed = match lease::claim_first(ports.kv, record, now) {
        Ok(claimed) => claimed,
        // A stored message's record is its location, which no increment
        // takes.
        Err(error) => {
            return match ports.kv.get(record)? {
                Some(location) if stored(&location) => Ok(Err(Ingested::Duplicate)),
                _ => Err(error.into()),
            }
        }
    };
    match claimed {
        Claimed::First(holder) => Ok(Ok(holder)),
        Claimed::After(earlier) => match earlier.take_over(ports.kv, now)? {
            Some(holder) => Ok(Ok(holder)),
            None => another_delivery(ports, record).map(Err),
        },
    }
}

/// Whether a message's dedupe record says it is stored: it holds the
/// message's location, not the counter of its claim.
fn stored(record: &[u8]) -> bool {
    super::parse_location(record).is_some()
}
/// The workstream serving the address a message came to, and its channel
/// there.
struct Serving {
    workstream: Workstream,
    instance: ChannelInstance,
}

/// The thread as the reads found it, before the message is stored.
struct ThreadState {
    conversation: Option<Conversation>,
    sender: Sender,
    /// Outbound messages to show before this one (R-OUT-8).
    outbound: Vec<Activity>,
}

/// What the reads found of where a message lands. `serving` is read for a
/// message that opens or reopens a conversation, carries attachments, or
/// talks to a bot; a message on a live conversation needs none of it.
struct Landing {
    serving: Option<Serving>,
    thread: ThreadState,
}

/// The second read: the workstream, the sender's contact and the outbound
/// messages pending on the thread, as far as the message needs them (a
/// store that reads key by key first reads, for a conversation to open,
/// what the first read left out).
fn read_landing(
    kv: &dyn KeyValue,
    org: &str,
    account: &Account,
    inbound: &Inbound,
    keys: &ThreadKeys,
    first: FirstRead,
) -> Result<Landing, Error> {
    let live = first
        .conversation
        .as_ref()
        .filter(|c| matches!(c.state, State::Open | State::Active));
    let wants = match live {
        Some(conversation) => Wants::on_live(conversation, inbound),
        None => Wants::to_route(kv, org, account, inbound, keys, &first)?,
    };
    let landing_keys = wants.keys(org, &first.pending);
    let found = if landing_keys.is_empty() {
        Vec::new()
    } else {
        kv.get_many(&landing_keys)?
    };
    let mut found = landing_keys.iter().zip(found);
    let workstream: Option<Workstream> = match wants.workstream {
        Some(_) => decode_next(&mut found)?,
        None => None,
    };
    let contact: Option<Contact> = match wants.contact {
        Some(_) => decode_next(&mut found)?,
        None => None,
    };
    let serving = match (wants.workstream.is_some(), live.is_some()) {
        (false, _) => None,
        // A live conversation stays where it is even if its workstream no
        // longer serves the address.
        (true, true) => workstream.and_then(|w| serving_of(w, account, inbound)),
        (true, false) => Some(
            workstream
                .and_then(|w| serving_of(w, account, inbound))
                .ok_or_else(|| no_workstream(account, inbound))?,
        ),
    };
    let outbound = unthreaded(found)?;
    let sender = Sender {
        contact,
        is_new: wants.sender_is_new,
    };
    Ok(Landing {
        serving,
        thread: ThreadState {
            conversation: first.conversation,
            sender,
            outbound,
        },
    })
}

/// The next of keys read together, decoded.
fn decode_next<'k, D: serde::de::DeserializeOwned>(
    found: &mut impl Iterator<Item = (&'k String, Option<Vec<u8>>)>,
) -> Result<Option<D>, Error> {
    match found.next() {
        Some((key, value)) => store::decode_found(key, value),
        None => Ok(None),
    }
}

/// The documents [`read_landing`] reads besides the pending messages.
struct Wants {
    workstream: Option<String>,
    contact: Option<String>,
    sender_is_new: bool,
}

impl Wants {
    /// A message on a live conversation: its workstream only to tell
    /// whether attachments pass (R-IN-6) or to ask its bot, its contact
    /// only for the bot. The conversation's contact is the sender's (a
    /// link moves both).
    fn on_live(conversation: &Conversation, inbound: &Inbound) -> Wants {
        let needs_workstream = conversation.with_bot || !inbound.attachments.is_empty();
        Wants {
            workstream: needs_workstream.then(|| conversation.workstream_id.clone()),
            contact: conversation
                .with_bot
                .then(|| conversation.contact_id.clone()),
            sender_is_new: false,
        }
    }

    /// A message that opens or reopens a conversation: the workstream now
    /// serving the address (404 when none does) and the sender's contact.
    fn to_route(
        kv: &dyn KeyValue,
        org: &str,
        account: &Account,
        inbound: &Inbound,
        keys: &ThreadKeys,
        first: &FirstRead,
    ) -> Result<Wants, Error> {
        let (workstream_id, known_contact) = match (&first.workstream_id, &first.known_contact) {
            (Some(workstream_id), Some(known_contact)) => {
                (workstream_id.clone(), known_contact.clone())
            }
            _ => {
                let mut found = kv
                    .get_many(&[keys.workstream.clone(), keys.address.clone()])?
                    .into_iter();
                let workstream_id = found.next().flatten().as_deref().and_then(store::holder);
                (workstream_id, found.next().flatten().map(text_of))
            }
        };
        let workstream_id = workstream_id.ok_or_else(|| no_workstream(account, inbound))?;
        let channel = inbound.channel.as_str();
        let contact_id = known_contact.clone().unwrap_or_else(|| {
            crate::entities::contact::contact_id_for(org, channel, &inbound.customer_address)
        });
        Ok(Wants {
            workstream: Some(workstream_id),
            contact: Some(contact_id),
            sender_is_new: known_contact.is_none(),
        })
    }

    /// The keys to read, in the order [`read_landing`] takes their values.
    fn keys(&self, org: &str, pending: &[String]) -> Vec<String> {
        let mut keys = Vec::new();
        keys.extend(
            self.workstream
                .iter()
                .map(|id| store::document_key::<Workstream>(org, id)),
        );
        keys.extend(
            self.contact
                .iter()
                .map(|id| store::document_key::<Contact>(org, id)),
        );
        keys.extend(
            pending
                .iter()
                .map(|id| store::document_key::<Activity>(org, id)),
        );
        keys
    }
}

/// The workstream's channel the message came in on: without it, the
/// workstream no longer serves the address.
fn serving_of(workstream: Workstream, account: &Account, inbound: &Inbound) -> Option<Serving> {
    let instance = workstream
        .channels
        .iter()
        .find(|c| c.account_id == account.id && c.address == inbound.channel_address)
        .cloned()?;
    Some(Serving {
        workstream,
        instance,
    })
}

/// The pending outbound messages (their keys and values, as `found`) that
/// no reply has threaded yet.
fn unthreaded<'k>(
    found: impl Iterator<Item = (&'k String, Option<Vec<u8>>)>,
) -> Result<Vec<Activity>, Error> {
    let mut outbound = Vec::new();
    for (key, found) in found {
        let activity: Option<Activity> = store::decode_found(key, found)?;
        // A batch that read the list before a reply threaded it writes it
        // back: what is threaded already stays where it is.
        outbound.extend(activity.filter(|a| a.conversation_position.is_none()));
    }
    Ok(outbound)
}

/// Two first replies at once must not both thread the outbound messages:
/// the one that does not get the first message's lease threads none.
fn claim_outbound(ports: &Ports<'_>, org: &str, outbound: &mut Vec<Activity>) -> Result<(), Error> {
    if let Some(first) = outbound.first() {
        let name = format!(
            "{}/threaded",
            store::document_key::<Activity>(org, &first.id)
        );
        if lease::acquire(ports.kv, &name, ports.clock.now_millis())?.is_none() {
            outbound.clear();
        }
    }
    Ok(())
}

/// What follows a stored message, best effort: the new customer's name,
/// the notice of refused attachments, the bot's turn.
async fn follow_up(
    ports: &Ports<'_>,
    org: &str,
    arrival: &Arrival<'_>,
    stored: Stored,
    sender_is_new: bool,
) -> Ingested {
    let Arrival {
        account,
        inbound,
        serving,
        now,
        ..
    } = arrival;
    let Stored {
        mut conversation,
        position,
        mut contact,
    } = stored;
    if sender_is_new && inbound.profile_name.is_none() {
        name_new_customer(ports, org, account, &mut conversation, &mut contact, *now).await;
    }
    if !inbound.attachments.is_empty() && !arrival.takes_attachments() {
        notify_attachments_refused(ports, org, account, &conversation, *now).await;
    }
    if conversation.with_bot {
        if let Some((serving, bot)) = serving
            .as_ref()
            .and_then(|s| Some((s, s.workstream.bot.as_ref()?)))
        {
            let handoff = converse_with_bot(
                ports,
                org,
                account,
                &conversation,
                &contact,
                inbound,
                bot,
                *now,
            )
            .await;
            if handoff {
                hand_over(ports.kv, org, arrival, serving, &mut conversation, &contact);
            }
        }
    }
    Ingested::Stored {
        conversation_id: conversation.id,
        position,
    }
}

/// The bot hands the conversation to a queue. A concurrent message may hand
/// over first; either routes it. A failure leaves the conversation with the
/// bot, and the customer's next message asks the bot again.
fn hand_over(
    kv: &dyn KeyValue,
    org: &str,
    arrival: &Arrival<'_>,
    serving: &Serving,
    conversation: &mut Conversation,
    contact: &Contact,
) {
    let Serving {
        workstream,
        instance,
    } = serving;
    let classified = classify(workstream, instance, &arrival.inbound.text, contact);
    conversation.routed_by = Some(classified.routed_by);
    let _ = route_to_queue(
        kv,
        org,
        conversation,
        &classified.queue_id,
        workstream.distribution,
        arrival.now_millis,
        Vec::new(),
    );
}

/// Asks the provider for the name of a customer seen for the first time,
/// whose message carried none, and keeps it on their contact and
/// conversation. Asked once: a later message finds the contact known. Best
/// effort, as everything after the message is stored: no answer leaves the
/// name unknown.
async fn name_new_customer(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &mut Conversation,
    contact: &mut Contact,
    now: Timestamp,
) {
    let thread = conversation.thread();
    let Some(name) = account.settings.customer_name(ports, thread).await else {
        return;
    };
    if let Some((named, contact_named)) = keep_name(ports, org, conversation, contact, &name, now) {
        *conversation = named;
        *contact = contact_named;
    }
}

/// Writes `name` onto the conversation and its contact, in one commit of
/// copies read after the provider answered: a contact has no version, and
/// the copy held since the message was stored could undo a change made
/// meanwhile (a link, another address). A lost race reads them again and
/// tries once more; a store error, or a contact renamed or linked away
/// meanwhile, leaves the name unknown. The named copies, if written.
fn keep_name(
    ports: &Ports<'_>,
    org: &str,
    conversation: &Conversation,
    contact: &Contact,
    name: &str,
    now: Timestamp,
) -> Option<(Conversation, Contact)> {
    for _ in 0..2 {
        match write_name(ports, org, conversation, contact, name, now) {
            Err(Error::ConversationChanged) => continue,
            written => return written.ok().flatten(),
        }
    }
    None
}

/// One try of [`keep_name`]: `None` when there is nothing (left) to name,
/// as `unnamed` (the contact as the message left it) saw it.
fn write_name(
    ports: &Ports<'_>,
    org: &str,
    conversation: &Conversation,
    unnamed: &Contact,
    name: &str,
    now: Timestamp,
) -> Result<Option<(Conversation, Contact)>, Error> {
    let keys = [
        store::document_key::<Conversation>(org, &conversation.id),
        store::document_key::<Contact>(org, &unnamed.id),
    ];
    let mut found = ports.kv.get_many(&keys)?.into_iter();
    let fresh: Option<Conversation> = store::decode_found(&keys[0], found.next().flatten())?;
    let contact: Option<Contact> = store::decode_found(&keys[1], found.next().flatten())?;
    let (Some(mut fresh), Some(mut contact)) = (fresh, contact) else {
        return Ok(None);
    };
    if fresh.profile_name.is_some()
        || fresh.contact_id != contact.id
        || contact.name != unnamed.name
    {
        return Ok(None);
    }
    contact.name = name.to_owned();
    contact.updated_at = now;
    fresh.profile_name = Some(name.to_owned());
    let contact_write = (keys[1].clone(), store::encode(&contact));
    commit(
        ports.kv,
        org,
        &mut fresh,
        ports.clock.now_millis(),
        vec![contact_write],
    )?;
    Ok(Some((fresh, contact)))
}

/// Another delivery of the message holds its lease: it is being stored
/// right now, or its request died. Waits a moment for the record of the
/// first case; otherwise the provider is asked to retry, by which time the
/// message is stored or the dead delivery's lease has expired.
fn another_delivery(ports: &Ports<'_>, record: &str) -> Result<Ingested, Error> {
    for wait in CONCURRENT_DELIVERY_WAIT_MILLIS {
        ports.clock.sleep_millis(wait);
        if ports.kv.get(record)?.is_some_and(|record| stored(&record)) {
            return Ok(Ingested::Duplicate);
        }
    }
    Err(Error::InProgress(
        "another delivery of this message is being stored, or was cut off; retry later and it will be stored once"
            .into(),
    ))
}

/// 404 for a message to an address no workstream serves: the admin has to
/// add it to one, and the provider's console shows this answer.
fn no_workstream(account: &Account, inbound: &Inbound) -> Error {
    Error::not_found(
        "no_workstream",
        format!(
            "{} of account {} is not a channel of any workstream; add it to one (PATCH /api/workstreams/{{id}}, \"channels\")",
            inbound.channel_address, account.id
        ),
    )
}

/// 404 for a message on a channel its address does not carry on the
/// account (an SMS to a WhatsApp number): nothing serves it.
fn wrong_channel(account: &Account, inbound: &Inbound) -> Error {
    Error::not_found(
        "wrong_channel",
        format!(
            "{} does not carry {} on account {}; add it to the account for that channel (PATCH /api/accounts/{})",
            inbound.channel_address, inbound.channel, account.id, account.id
        ),
    )
}

/// A message arriving at its thread, and when.
struct Arrival<'a> {
    account: &'a Account,
    inbound: &'a Inbound,
    serving: Option<Serving>,
    now: crate::time::Timestamp,
    now_millis: UnixMillis,
}

impl Arrival<'_> {
    /// Whether the channel passes the customer's attachments on (R-IN-6):
    /// not when no workstream serves it any more.
    fn takes_attachments(&self) -> bool {
        self.serving
            .as_ref()
            .is_some_and(|s| s.instance.customer_attachments)
    }
}

/// A stored message: its conversation as it now is, its position, and the
/// sender's contact.
struct Stored {
    conversation: Conversation,
    position: i64,
    contact: Contact,
}

/// Writes the message and whatever it changes.
fn store_message(
    ports: &Ports<'_>,
    org: &str,
    arrival: &Arrival<'_>,
    thread: ThreadState,
    mut delivery: Holder,
) -> Result<Stored, Error> {
    let kv = ports.kv;
    let Arrival { inbound, now, .. } = arrival;
    let ThreadState {
        conversation,
        sender,
        outbound,
    } = thread;
    let mut message = customer_message(arrival);
    // A contact made for the sender is listed with the others.
    let listed_at = match sender.is_new && sender.contact.is_none() {
        true => Some(store::index::<Contact>(org).reserve(kv)?),
        false => None,
    };
    let (contact, mut writes) = sender_writes(org, inbound, sender, listed_at, *now);
    let conversation_id = thread_id(
        org,
        &arrival.account.id,
        &inbound.channel_address,
        &inbound.customer_address,
    );
    writes.extend(message_writes(
        kv,
        org,
        arrival,
        &conversation_id,
        outbound,
        &mut message,
    )?);
    if !delivery.keep(kv, ports.clock.now_millis())? {
        return Err(Error::InProgress(
            "storing this message took longer than its lease; retry and it will be stored once"
                .into(),
        ));
    }
    let position = message.position;
    let conversation = store_with_conversation(
        kv,
        org,
        arrival,
        conversation,
        conversation_id,
        &contact,
        writes,
    )?;
    Ok(Stored {
        conversation,
        position,
        contact,
    })
}

/// Writes the message's `writes` with its conversation: a live one stays
/// as it is, a new, closed or waiting one is routed anew.
fn store_with_conversation(
    kv: &dyn KeyValue,
    org: &str,
    arrival: &Arrival<'_>,
    conversation: Option<Conversation>,
    conversation_id: String,
    contact: &Contact,
    writes: Vec<(String, Vec<u8>)>,
) -> Result<Conversation, Error> {
    let inbound = arrival.inbound;
    if let Some(conversation) = conversation
        .as_ref()
        .filter(|c| matches!(c.state, State::Open | State::Active))
    {
        kv.set_many(&writes)?;
        return Ok(conversation.clone());
    }
    // The landing read found the workstream serving the address for every
    // conversation that is not live.
    let serving = arrival
        .serving
        .as_ref()
        .ok_or_else(|| no_workstream(arrival.account, inbound))?;
    let mut conversation = conversation
        .unwrap_or_else(|| new_conversation(arrival, serving, conversation_id, contact));
    if inbound.profile_name.is_some() {
        conversation.profile_name = inbound.profile_name.clone();
    }
    let agent = back_to_its_agent(kv, org, &conversation, arrival.now_millis)?;
    let routed = route_arrival(
        kv,
        org,
        (arrival, serving),
        agent,
        &mut conversation,
        contact,
        &writes,
    );
    match routed {
        Ok(()) => Ok(conversation),
        // Another delivery changed the conversation first (two first
        // messages at once): it routes the conversation; this message only
        // needs storing.
        Err(Error::ConversationChanged) => {
            kv.set_many(&writes)?;
            conversation.with_bot = false;
            Ok(conversation)
        }
        Err(error) => Err(error),
    }
}

/// The customer's message as the conversation shows it: attachments the
/// channel does not take from customers are only counted.
fn customer_message(arrival: &Arrival<'_>) -> Message {
    let inbound = arrival.inbound;
    let mut message = Message::new(Author::Customer, inbound.text.clone(), arrival.now);
    message.provider_message_id = Some(inbound.provider_message_id.clone());
    if arrival.takes_attachments() {
        message.attachments = inbound.attachments.clone();
    } else {
        message.attachments_refused = inbound.attachments.len();
    }
    message
}

/// Reserves the message's position after the `outbound` messages it
/// threads, and returns the writes that put them all in the conversation's
/// log: the outbound messages, the message, its dedupe record and the time
/// the customer last wrote.
fn message_writes(
    kv: &dyn KeyValue,
    org: &str,
    arrival: &Arrival<'_>,
    conversation_id: &str,
    outbound: Vec<Activity>,
    message: &mut Message,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut writes = Vec::new();
    let log = messages(org, conversation_id);
    let threaded = outbound.len() as i64;
    let first = log.reserve_many(kv, threaded + 1)?;
    message.position = first + threaded;
    if threaded > 0 {
        writes.push((pending_outbound_key(org, conversation_id), b"[]".to_vec()));
    }
    for (position, mut activity) in (first..).zip(outbound) {
        let mut sent = activity.as_message();
        sent.position = position;
        writes.push((log.slot_key(position), store::encode(&sent)));
        activity.conversation_position = Some(position);
        writes.push((
            store::document_key::<Activity>(org, &activity.id),
            store::encode(&activity),
        ));
    }
    let provider = arrival.account.settings.provider();
    writes.push((log.slot_key(message.position), store::encode(&*message)));
    writes.push((
        provider_message_key(org, provider, &arrival.inbound.provider_message_id),
        super::message_location(conversation_id, message.position),
    ));
    writes.push((
        last_customer_key(org, conversation_id),
        arrival.now.to_string().into_bytes(),
    ));
    Ok(writes)
}

/// The conversation a customer's first message on a thread opens.
fn new_conversation(
    arrival: &Arrival<'_>,
    serving: &Serving,
    id: String,
    contact: &Contact,
) -> Conversation {
    let Arrival {
        account,
        inbound,
        now,
        ..
    } = arrival;
    Conversation {
        id,
        state: State::Open,
        channel: inbound.channel,
        workstream_id: serving.workstream.id.clone(),
        account_id: account.id.clone(),
        channel_address: inbound.channel_address.clone(),
        customer_address: inbound.customer_address.clone(),
        contact_id: contact.id.clone(),
        profile_name: inbound.profile_name.clone(),
        language: serving.instance.language.clone(),
        queue_id: None,
        agent_id: None,
        routed_by: None,
        with_bot: false,
        version: 0,
        queued_at: 0,
        assigned_at: 0,
        created_at: *now,
        updated_at: *now,
        closed_at: None,
    }
}

/// Commits a new, reopened or waiting conversation with the message's
/// `writes`, routed: back to `agent` (who parked it, and has room), to the
/// bot, or to a queue.
fn route_arrival(
    kv: &dyn KeyValue,
    org: &str,
    (arrival, serving): (&Arrival<'_>, &Serving),
    agent: Option<Agent>,
    conversation: &mut Conversation,
    contact: &Contact,
    writes: &[(String, Vec<u8>)],
) -> Result<(), Error> {
    let Arrival {
        inbound,
        now,
        now_millis,
        ..
    } = arrival;
    let Serving {
        workstream,
        instance,
    } = serving;
    match agent {
        // A new or reopened conversation meets the bot first (R-CONV-7).
        None if workstream.bot.is_some() && conversation.state != State::Waiting => {
            conversation.state = State::Open;
            conversation.with_bot = true;
            conversation.queue_id = None;
            conversation.closed_at = None;
            conversation.updated_at = *now;
            commit(kv, org, conversation, *now_millis, writes.to_vec())
        }
        // A new entry in the agent's log, as for any assignment: it is
        // what the agent's load is recounted from.
        Some(agent) => assignment_entry(kv, org, conversation, &agent)
            .and_then(|entry| {
                conversation.updated_at = *now;
                let mut writes = writes.to_vec();
                writes.push(entry);
                commit(kv, org, conversation, *now_millis, writes)
            })
            .inspect_err(|_| {
                let _ = release(kv, org, &agent.id);
            }),
        None => {
            let classified = classify(workstream, instance, &inbound.text, contact);
            conversation.routed_by = Some(classified.routed_by);
            route_to_queue(
                kv,
                org,
                conversation,
                &classified.queue_id,
                workstream.distribution,
                *now_millis,
                writes.to_vec(),
            )
        }
    }
}

/// What the store holds of a message's sender.
struct Sender {
    /// Their contact's document, if it exists.
    contact: Option<Contact>,
    /// Their address points at no contact yet.
    is_new: bool,
}

/// The sender's contact, and what the message writes of it: a new
/// contact's address, document and (at `listed_at`, when it is made now)
/// index entry, and the opt-out record a keyword says, with the message or
/// not at all, so a STOP the provider got its 2xx for is never lost
/// (R-IN-8).
fn sender_writes(
    org: &str,
    inbound: &Inbound,
    sender: Sender,
    listed_at: Option<i64>,
    now: crate::time::Timestamp,
) -> (Contact, Vec<(String, Vec<u8>)>) {
    let mut writes = Vec::new();
    let channel = inbound.channel;
    if let Some(keyword) = consent::keyword(&inbound.text) {
        writes.push((
            consent::key(org, channel.as_str(), &inbound.customer_address),
            store::encode(&Consent::said(keyword, now)),
        ));
    }
    let mut contact = sender.contact.unwrap_or_else(|| {
        Contact::for_sender(
            org,
            channel,
            &inbound.customer_address,
            inbound.profile_name.as_deref(),
            now,
        )
    });
    if sender.is_new {
        // The sender's own contact may exist without the address, which a
        // link moved away before its new contact was deleted.
        let address = ContactAddress {
            channel,
            address: inbound.customer_address.clone(),
        };
        if !contact.addresses.contains(&address) {
            contact.addresses.push(address);
        }
        writes.push((
            address_key(org, channel.as_str(), &inbound.customer_address),
            contact.id.as_bytes().to_vec(),
        ));
        if let Some(slot) = listed_at {
            contact.listed_at = Some(slot);
            let index = store::index::<Contact>(org);
            writes.push((index.slot_key(slot), contact.id.as_bytes().to_vec()));
        }
        writes.push((
            store::document_key::<Contact>(org, &contact.id),
            store::encode(&contact),
        ));
    }
    (contact, writes)
}

/// A waiting conversation goes back to the agent who parked it, if that
/// agent is available and has room (its capacity is then taken).
fn back_to_its_agent(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &Conversation,
    now: UnixMillis,
) -> Result<Option<Agent>, Error> {
    let Some(agent_id) = conversation
        .agent_id
        .as_deref()
        .filter(|_| conversation.state == State::Waiting)
    else {
        return Ok(None);
    };
    let agent: Option<Agent> = store::load(kv, org, agent_id)?;
    match agent {
        Some(agent)
            if agent.presence == Presence::Available
                && reserve(kv, org, &agent, Recount::Throttled(now))? =>
        {
            Ok(Some(agent))
        }
        _ => Ok(None),
    }
}

/// Tells the customer their attachments were not passed on (R-IN-6), and
/// records the notice in the conversation. Best effort: the customer's
/// message is already stored, which is what the provider waits for.
async fn notify_attachments_refused(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &Conversation,
    now: crate::time::Timestamp,
) {
    let notice = "Sorry, we cannot receive attachments on this channel. Please describe what you wanted to show us in a message.";
    say(
        ports,
        org,
        account,
        conversation,
        Author::System,
        notice,
        now,
    )
    .await;
}

/// Sends a message of the gateway's own (a notice, the bot's reply) to the
/// customer and records it, failed or not, recording it first so that it
/// is never sent unseen (R-OPS-4). Best effort: the customer's message is
/// stored already, and a redelivery of it does not come here again.
async fn say(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &Conversation,
    author: Author,
    text: &str,
    now: crate::time::Timestamp,
) {
    let content = Content::Text {
        text: text.to_owned(),
        attachments: Vec::new(),
    };
    let mut message = Message::new(author, text, now);
    if record_intent(ports.kv, org, &conversation.id, &mut message).is_err() {
        return;
    }
    match deliver(
        ports,
        account,
        conversation.thread(),
        &content,
        author,
        Window::Open,
    )
    .await
    {
        Ok(sent) => {
            message.provider_message_id = Some(sent.provider_message_id);
            message.status = Some(sent.status);
        }
        Err(undelivered) if may_have_been_sent(&undelivered.error) => {
            message.error_code = Some(OUTCOME_UNKNOWN.to_owned());
        }
        Err(undelivered) => {
            message.status = Some("failed".to_owned());
            message.error_code = Some(undelivered.error.code().to_owned());
        }
    }
    let _ = record_outcome(
        ports.kv,
        org,
        &conversation.id,
        account.settings.provider(),
        &message,
    );
}

/// Applies a provider's status callback to the outbound message it names
/// (R-IN-7). Statuses only move forward by `provider`'s order — callbacks arrive out of
/// order — and an unknown message id is ignored: it may be another
/// system's message on the same account. `found` is the value of the
/// message's [`provider_message_key`].
pub fn apply_status(
    kv: &dyn KeyValue,
    org: &str,
    found: Option<Vec<u8>>,
    status: &str,
    error_code: Option<&str>,
    provider: Provider,
) -> Result<bool, Error> {
    let Some(found) = found else {
        return Ok(false);
    };
    if let Some(activity) = crate::entities::activity::parse_pointer(&found) {
        return super::apply_activity_status(kv, org, activity, status, error_code, provider);
    }
    let Some((conversation, mut message)) = sent_message(kv, org, &found)? else {
        return Ok(false);
    };
    if !advance(&mut message, status, provider) {
        return Ok(false);
    }
    if let Some(code) = error_code {
        message.error_code = Some(code.to_owned());
    }
    kv.set_many(&super::sent_writes(org, &conversation, &message, provider))?;
    Ok(true)
}

/// The conversation and message a sent message's record names: its copy,
/// or for a record that holds only the location, the message read from it.
fn sent_message(
    kv: &dyn KeyValue,
    org: &str,
    found: &[u8],
) -> Result<Option<(String, Message)>, Error> {
    if let Some(record) = super::parse_sent_record(found) {
        return Ok(Some((record.conversation, record.message)));
    }
    let Some((conversation, position)) = super::parse_location(found) else {
        return Ok(None);
    };
    let key = messages(org, &conversation).slot_key(position);
    let message: Option<Message> = store::decode_found(&key, kv.get(&key)?)?;
    Ok(message.map(|message| (conversation, message)))
}

/// How many of a conversation's latest messages a watermark receipt looks
/// at: receipts follow sends within minutes, and older messages had their
/// own receipts.
const WATERMARK_REACH: i64 = 20;

/// Applies a receipt that covers every message sent up to `watermark_millis`
/// (Messenger's delivery and read watermarks) to the conversation's latest
/// outbound messages, moving statuses forward only; one read of the log and
/// one write of whatever changed.
pub fn apply_watermark(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &str,
    watermark_millis: i64,
    status: &str,
    provider: Provider,
) -> Result<(), Error> {
    let log = messages(org, conversation);
    let last = log.len(kv)?;
    let mut changed = Vec::new();
    for (position, bytes) in log.read(kv, last - WATERMARK_REACH + 1, last)? {
        let key = log.slot_key(position);
        let mut message: Message = store::decode(&key, &bytes)?;
        let sent_by_us =
            message.author != Author::Customer && message.provider_message_id.is_some();
        let covered = message.at.millis() <= watermark_millis;
        if sent_by_us && covered && advance(&mut message, status, provider) {
            changed.extend(super::sent_writes(org, conversation, &message, provider));
        }
    }
    if !changed.is_empty() {
        kv.set_many(&changed)?;
    }
    Ok(())
}

/// Moves `message` to `status` if that [`Provider::moves_forward`].
fn advance(message: &mut Message, status: &str, provider: Provider) -> bool {
    if !provider.moves_forward(message.status.as_deref(), status) {
        return false;
    }
    message.status = Some(status.to_owned());
    true
}

/// Shows the customer's message to the workstream's bot (R-CONV-7) and
/// sends its reply; returns whether the bot hands the conversation over.
/// A bot that gives no usable answer (see [`bot::answer`]) hands over: a
/// customer is never left with a broken bot.
#[allow(clippy::too_many_arguments)]
async fn converse_with_bot(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &Conversation,
    contact: &Contact,
    inbound: &Inbound,
    bot: &Bot,
    now: crate::time::Timestamp,
) -> bool {
    let question = bot::question(
        bot,
        conversation,
        contact,
        inbound,
        ports.clock.now_millis(),
    );
    let Some(answer) = bot::answer(ports.http.send(question).await) else {
        return true;
    };
    if let Some(text) = &answer.reply {
        say(ports, org, account, conversation, Author::Bot, text, now).await;
    }
    answer.handoff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;
    use crate::config::accounts::Settings;
    use crate::entities::workstream::Distribution;
    use crate::locale::Locale;
    use crate::memory::{block_on, FailingOnce, MemoryPorts};

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "a0000000000000000000000000000000";

    fn setup(kv: &dyn KeyValue) -> Account {
        let account = Account {
            id: ACCOUNT.into(),
            name: "WhatsApp".into(),
            settings: Settings::Twilio(crate::providers::twilio::Settings {
                account_sid: "AC".into(),
                auth_token: "token".into(),
                numbers: vec![crate::providers::twilio::Number {
                    name: "Support".into(),
                    number: crate::phone::E164::parse("+14155238886").unwrap(),
                }],
                sms_numbers: Vec::new(),
                shared_keys: Vec::new(),
            }),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
            last_validation: None,
        };
        let workstream = Workstream {
            id: "b0000000000000000000000000000000".into(),
            name: "w".into(),
            channel: Channel::Whatsapp,
            fallback_queue: "q".into(),
            distribution: Distribution::RoundRobin,
            bot: None,
            routing_rules: Vec::new(),
            channels: vec![ChannelInstance {
                account_id: ACCOUNT.into(),
                address: "+14155238886".into(),
                language: Locale::parse("en-US").unwrap(),
                customer_attachments: true,
                agent_attachments: true,
                human_agent_tag: false,
            }],
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        };
        let owner = store::owner_key(&channel_claim(ORG, ACCOUNT, "+14155238886"));
        store::save(
            kv,
            ORG,
            &workstream,
            vec![(owner, workstream.id.clone().into_bytes())],
        )
        .unwrap();
        account
    }

    fn message(sid: &str) -> Inbound {
        Inbound {
            provider_message_id: sid.into(),
            channel: Channel::Whatsapp,
            customer_address: "+4917612345678".into(),
            channel_address: "+14155238886".into(),
            text: "hello".into(),
            attachments: Vec::new(),
            profile_name: Some("Jane".into()),
        }
    }

    fn deliver(ports: &Ports<'_>, account: &Account, inbound: &Inbound) -> Result<Ingested, Error> {
        block_on(ingest(ports, ORG, account, inbound))
    }

    #[test]
    fn a_failed_write_answers_5xx_and_the_retry_after_the_lease_stores_the_message_once() {
        let memory = MemoryPorts::default();
        let kv = FailingOnce::default();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let account = setup(&kv);
        let inbound = message("SM1");
        kv.fail_next_write.set(true);
        let failed = deliver(&ports, &account, &inbound).unwrap_err();
        assert_eq!(failed.status(), 503);
        // The failed delivery's lease is not given back (a crash would not
        // give it back either): a retry at once is asked to come back later…
        let busy = deliver(&ports, &account, &inbound).unwrap_err();
        assert_eq!((busy.status(), busy.code()), (503, "in_progress"));
        // …and after the lease, it stores the message.
        memory.clock.advance_millis(2 * crate::lease::LEASE_MILLIS);
        let stored = deliver(&ports, &account, &inbound).unwrap();
        let Ingested::Stored {
            conversation_id,
            position,
        } = stored
        else {
            panic!("the retry is stored: {stored:?}");
        };
        assert_eq!(
            deliver(&ports, &account, &inbound).unwrap(),
            Ingested::Duplicate
        );
        // The failed attempt's position stays empty; only the retry is there.
        let log = messages(ORG, &conversation_id);
        let entries = log.read(&kv, 1, log.len(&kv).unwrap()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, position);
        let (conversation, last) = super::super::require(&kv, ORG, &conversation_id).unwrap();
        assert_eq!(conversation.state, State::Open, "no agents: it waits");
        assert_eq!(conversation.queue_id.as_deref(), Some("q"));
        assert!(last.is_some());
    }

    #[test]
    fn on_a_store_that_reads_key_by_key_a_message_is_stored_once_however_it_is_redelivered() {
        let memory = MemoryPorts::default();
        let kv = crate::memory::MemoryKeyValue::key_by_key();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let account = setup(&kv);
        let inbound = message("SM1");
        let stored = deliver(&ports, &account, &inbound).unwrap();
        let Ingested::Stored {
            conversation_id, ..
        } = stored
        else {
            panic!("stored: {stored:?}");
        };
        // The record is the message's location now: a redelivery's claim
        // fails on it and finds it stored.
        assert_eq!(
            deliver(&ports, &account, &inbound).unwrap(),
            Ingested::Duplicate
        );
        // A record written before claims were counters is a location too.
        let older = provider_message_key(ORG, Provider::Twilio, "SM0");
        kv.set(&older, &super::super::message_location(&conversation_id, 1))
            .unwrap();
        assert_eq!(
            deliver(&ports, &account, &message("SM0")).unwrap(),
            Ingested::Duplicate
        );
        // A delivery in flight holds the claim: another one is asked to
        // retry, and once the claim expired, takes over and stores it.
        let in_flight = provider_message_key(ORG, Provider::Twilio, "SM2");
        let claimed = lease::claim_first(&kv, &in_flight, ports.clock.now_millis()).unwrap();
        assert!(matches!(claimed, Claimed::First(_)));
        let busy = deliver(&ports, &account, &message("SM2")).unwrap_err();
        assert_eq!((busy.status(), busy.code()), (503, "in_progress"));
        memory.clock.advance_millis(2 * crate::lease::LEASE_MILLIS);
        assert!(matches!(
            deliver(&ports, &account, &message("SM2")).unwrap(),
            Ingested::Stored { .. }
        ));
        let log = messages(ORG, &conversation_id);
        let texts = log.read(&kv, 1, log.len(&kv).unwrap()).unwrap();
        assert_eq!(texts.len(), 2, "SM1 and SM2, once each");
    }

    #[test]
    fn a_stop_is_stored_with_its_message_or_not_at_all_and_start_reverses_it() {
        let memory = MemoryPorts::default();
        let kv = FailingOnce::default();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let account = setup(&kv);
        let record_key = consent::key(ORG, "whatsapp", "+4917612345678");
        let record = || -> Option<Consent> {
            let found = kv.get(&record_key).unwrap();
            store::decode_found(&record_key, found).unwrap()
        };
        deliver(&ports, &account, &message("SM1")).unwrap();
        assert_eq!(record(), None, "an ordinary message writes no record");
        let says = |sid: &str, text: &str| Inbound {
            text: text.into(),
            ..message(sid)
        };
        kv.fail_next_write.set(true);
        assert_eq!(
            deliver(&ports, &account, &says("SM2", "Stop"))
                .unwrap_err()
                .status(),
            503
        );
        assert_eq!(record(), None, "neither the message nor the opt-out");
        memory.clock.advance_millis(2 * crate::lease::LEASE_MILLIS);
        deliver(&ports, &account, &says("SM2", "Stop")).unwrap();
        let stopped = record().expect("the redelivery stores the opt-out");
        assert!(stopped.opted_out);
        // A second STOP keeps the address opted out, since its own time;
        // START reverses it.
        memory.clock.advance_millis(1_000);
        deliver(&ports, &account, &says("SM3", "STOPALL")).unwrap();
        let again = record().unwrap();
        assert!(again.opted_out);
        assert_eq!(again.at.millis(), stopped.at.millis() + 1_000);
        deliver(&ports, &account, &says("SM4", "start")).unwrap();
        assert!(!record().unwrap().opted_out);
    }

    #[test]
    fn a_reply_threads_the_outbound_messages_not_yet_in_its_conversation() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let account = setup(ports.kv);
        let inbound = message("SM3");
        let thread = thread_id(
            ORG,
            ACCOUNT,
            &inbound.channel_address,
            &inbound.customer_address,
        );
        let activity = |id: &str, text: &str, position: Option<i64>| Activity {
            id: id.repeat(32),
            kind: crate::entities::activity::KIND.into(),
            configuration_id: "c".repeat(32),
            channel: Channel::Whatsapp,
            account_id: ACCOUNT.into(),
            from: inbound.channel_address.clone(),
            to: inbound.customer_address.clone(),
            contact_id: "d".repeat(32),
            conversation_id: thread.clone(),
            template_id: "e".repeat(32),
            locale: Locale::parse("en").unwrap(),
            text: text.into(),
            content_sid: None,
            entityrelationshipname: None,
            show_on_timeline: false,
            status: "delivered".into(),
            provider_message_id: Some(format!("SM{id}")),
            error_code: None,
            error: None,
            job_id: None,
            conversation_position: position,
            created_at: crate::time::Timestamp::from_millis(1_767_225_600_000),
        };
        // One was threaded by an earlier reply, but a batch that read the
        // list before that wrote it back.
        let sent = [
            activity("1", "Your order shipped", Some(7)),
            activity("2", "Your case was updated", None),
        ];
        let mut writes: Vec<(String, Vec<u8>)> = sent
            .iter()
            .map(|a| {
                (
                    store::document_key::<Activity>(ORG, &a.id),
                    store::encode(a),
                )
            })
            .collect();
        let ids: Vec<&str> = sent.iter().map(|a| a.id.as_str()).collect();
        writes.push((pending_outbound_key(ORG, &thread), store::encode(&ids)));
        ports.kv.set_many(&writes).unwrap();

        let Ingested::Stored { position, .. } = deliver(&ports, &account, &inbound).unwrap() else {
            panic!("stored");
        };
        let log = messages(ORG, &thread);
        let shown: Vec<(Author, String, Option<String>)> = log
            .read(ports.kv, 1, position)
            .unwrap()
            .iter()
            .map(|(_, bytes)| {
                let message: Message = serde_json::from_slice(bytes).unwrap();
                (message.author, message.text, message.status)
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    Author::Automation,
                    "Your case was updated".into(),
                    Some("delivered".into())
                ),
                (Author::Customer, "hello".into(), None),
            ]
        );
        let threaded: Activity = store::load(ports.kv, ORG, &"2".repeat(32))
            .unwrap()
            .unwrap();
        assert_eq!(threaded.conversation_position, Some(position - 1));
        assert_eq!(
            ports.kv.get(&pending_outbound_key(ORG, &thread)).unwrap(),
            Some(b"[]".to_vec())
        );
    }

    /// A store whose first `get-many` after [`Racing::arm`] lets `race`
    /// write right after the read, as a concurrent request would.
    #[derive(Default)]
    struct Racing {
        inner: crate::memory::MemoryKeyValue,
        race: std::cell::RefCell<Option<Race>>,
    }

    /// A concurrent request's writes.
    type Race = Box<dyn FnOnce(&dyn KeyValue)>;

    impl Racing {
        fn arm(&self, race: impl FnOnce(&dyn KeyValue) + 'static) {
            *self.race.borrow_mut() = Some(Box::new(race));
        }
    }

    impl KeyValue for Racing {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::ports::StoreError> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), crate::ports::StoreError> {
            self.inner.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), crate::ports::StoreError> {
            self.inner.delete(key)
        }
        fn get_many(
            &self,
            keys: &[String],
        ) -> Result<Vec<Option<Vec<u8>>>, crate::ports::StoreError> {
            let found = self.inner.get_many(keys);
            if let Some(race) = self.race.borrow_mut().take() {
                race(&self.inner);
            }
            found
        }
        fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), crate::ports::StoreError> {
            self.inner.set_many(entries)
        }
        fn delete_many(&self, keys: &[String]) -> Result<(), crate::ports::StoreError> {
            self.inner.delete_many(keys)
        }
        fn increment(&self, key: &str, delta: i64) -> Result<i64, crate::ports::StoreError> {
            self.inner.increment(key, delta)
        }
    }

    /// An unnamed customer's conversation and contact, as the message left
    /// them.
    fn unnamed_customer(ports: &Ports<'_>, account: &Account) -> (Conversation, Contact) {
        let inbound = Inbound {
            profile_name: None,
            ..message("SM5")
        };
        let Ingested::Stored {
            conversation_id, ..
        } = deliver(ports, account, &inbound).unwrap()
        else {
            panic!("stored");
        };
        let (conversation, _) = super::super::require(ports.kv, ORG, &conversation_id).unwrap();
        let contact: Contact = store::require(ports.kv, ORG, &conversation.contact_id).unwrap();
        assert_eq!(contact.name, inbound.customer_address, "unnamed");
        (conversation, contact)
    }

    /// Arms `kv` so that right after naming reads them, another request
    /// changes the conversation and, with `change`, its contact.
    fn race_on(
        kv: &Racing,
        conversation: &Conversation,
        now: UnixMillis,
        change: impl FnOnce(&mut Contact) + 'static,
    ) {
        let (id, contact_id) = (conversation.id.clone(), conversation.contact_id.clone());
        kv.arm(move |kv: &dyn KeyValue| {
            let (mut changed, _) = super::super::require(kv, ORG, &id).unwrap();
            let mut contact: Contact = store::require(kv, ORG, &contact_id).unwrap();
            change(&mut contact);
            let write = (
                store::document_key::<Contact>(ORG, &contact_id),
                store::encode(&contact),
            );
            commit(kv, ORG, &mut changed, now, vec![write]).unwrap();
        });
    }

    #[test]
    fn naming_that_loses_its_race_keeps_the_concurrent_contact_change() {
        let memory = MemoryPorts::default();
        let kv = Racing::default();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let account = setup(&kv);
        let (conversation, contact) = unnamed_customer(&ports, &account);
        let other = ContactAddress {
            channel: Channel::Sms,
            address: "+15550001111".into(),
        };
        let added = other.clone();
        race_on(&kv, &conversation, ports.clock.now_millis(), move |c| {
            c.addresses.push(added)
        });
        let (named, named_contact) = keep_name(
            &ports,
            ORG,
            &conversation,
            &contact,
            "Jane Doe",
            Timestamp::from_millis(0),
        )
        .expect("the second try names them");
        let (stored, _) = super::super::require(&kv, ORG, &conversation.id).unwrap();
        let stored_contact: Contact = store::require(&kv, ORG, &contact.id).unwrap();
        assert_eq!(
            store::encode(&stored_contact),
            store::encode(&named_contact)
        );
        assert_eq!(stored.version, named.version);
        assert_eq!(stored.version, conversation.version + 2, "after the race's");
        assert_eq!(stored.profile_name.as_deref(), Some("Jane Doe"));
        assert_eq!(stored_contact.name, "Jane Doe");
        assert_eq!(
            stored_contact.addresses,
            [contact.addresses[0].clone(), other],
            "the concurrent address stays"
        );
    }

    #[test]
    fn naming_gives_up_on_a_contact_renamed_meanwhile() {
        let memory = MemoryPorts::default();
        let kv = Racing::default();
        let ports = Ports {
            kv: &kv,
            ..memory.ports()
        };
        let account = setup(&kv);
        let (conversation, contact) = unnamed_customer(&ports, &account);
        race_on(&kv, &conversation, ports.clock.now_millis(), |c| {
            c.name = "Jane (VIP)".into()
        });
        let named = keep_name(
            &ports,
            ORG,
            &conversation,
            &contact,
            "Jane Doe",
            Timestamp::from_millis(0),
        );
        assert!(named.is_none(), "{named:?}");
        let (stored, _) = super::super::require(&kv, ORG, &conversation.id).unwrap();
        let stored_contact: Contact = store::require(&kv, ORG, &contact.id).unwrap();
        assert_eq!(stored.profile_name, None);
        assert_eq!(stored_contact.name, "Jane (VIP)");
    }

    #[test]
    fn an_address_no_workstream_serves_is_a_404_naming_the_fix() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let mut account = setup(ports.kv);
        let Settings::Twilio(twilio) = &mut account.settings else {
            unreachable!("setup makes a Twilio account")
        };
        twilio.numbers.push(crate::providers::twilio::Number {
            name: "Unrouted".into(),
            number: crate::phone::E164::parse("+15550000000").unwrap(),
        });
        let mut inbound = message("SM2");
        inbound.channel_address = "+15550000000".into();
        let refused = deliver(&ports, &account, &inbound).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (404, "no_workstream"));
        assert!(refused.message().contains("PATCH /api/workstreams"));
    }

    #[test]
    fn a_message_on_a_channel_its_number_does_not_carry_is_refused_and_not_stored() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let account = setup(ports.kv);
        let mut sms = message("SM3");
        sms.channel = Channel::Sms;
        let refused = deliver(&ports, &account, &sms).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (404, "wrong_channel"));
        assert!(
            refused.message().contains("does not carry sms"),
            "{}",
            refused.message()
        );
        // The same message on the number's channel is stored: nothing of
        // the refusal stood in its way.
        sms.channel = Channel::Whatsapp;
        assert!(matches!(
            deliver(&ports, &account, &sms).unwrap(),
            Ingested::Stored { .. }
        ));
    }
}
