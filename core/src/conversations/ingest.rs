//! Ingestion: a customer's message, already authenticated and normalized by
//! its webhook, becomes part of a conversation (R-IN-3, R-IN-4, R-IN-6,
//! R-IN-8, R-CONV-1..3).
//!
//! The key-value budget of a message on a live conversation (SPEC.md) is
//! three read round trips — the account's record (the webhook's), then one
//! `get-many` of everything the thread's keys name, then one of the
//! workstream and contact — and three writes: the dedupe claim, the
//! message's position, one `set-many`.
//!
//! Exactly once: the provider's message id is claimed with `increment`
//! before anything is written, and the winner alone stores the message; a
//! loser answers as for a redelivery. Should the winner's write fail, it
//! gives the claim back and answers 5xx, so the provider's retry of that
//! delivery stores it (R-IN-4).

use super::contacts::{address_key, opt_keyword, Contact};
use super::reply::{deliver, Content, Window};
use super::routing::{classify, release, reserve, route_to_queue};
use super::{
    commit, last_customer_key, messages, pending_outbound_key, provider_message_key, thread_id,
    Attachment, Author, Conversation, Message, State,
};
use crate::api::ApiError;
use crate::api::Method;
use crate::config::accounts::Account;
use crate::config::agents::Agent;
use crate::config::workstreams::{channel_claim, ChannelInstance, Workstream};
use crate::outbound::activity::Activity;
use crate::ports::{KeyValue, OutboundRequest, Ports};
use crate::store;

/// A customer's message as every webhook normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub provider_message_id: String,
    /// The customer: `+E.164` for phone channels, the PSID, the GBM
    /// conversation id.
    pub customer_address: String,
    /// Ours: the number, page id or GBM agent the customer wrote to.
    pub channel_address: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub profile_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Already stored by an earlier or concurrent delivery.
    Duplicate,
    Stored {
        conversation_id: String,
        position: i64,
    },
}

/// The channel type an account's provider serves.
pub fn channel_of(provider: &str) -> &'static str {
    match provider {
        "twilio" => "whatsapp",
        "telesign" => "sms",
        "facebook" => "facebook",
        _ => "gbm",
    }
}

/// What ingestion reads in the webhook's second round trip, after the
/// account document: the dedupe record, the workstream serving the address,
/// the sender's contact, the thread's conversation and the outbound messages
/// sent on the thread since the customer last wrote.
pub fn thread_keys(org: &str, account_id: &str, provider: &str, inbound: &Inbound) -> Vec<String> {
    let channel = channel_of(provider);
    let thread = thread_id(
        org,
        account_id,
        &inbound.channel_address,
        &inbound.customer_address,
    );
    vec![
        provider_message_key(org, provider, &inbound.provider_message_id),
        store::owner_key(&channel_claim(org, account_id, &inbound.channel_address)),
        address_key(org, channel, &inbound.customer_address),
        store::document_key::<Conversation>(org, &thread),
        pending_outbound_key(org, &thread),
    ]
}

fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Stores `inbound` in its conversation; `found` holds the values of
/// [`thread_keys`], in order.
pub async fn ingest(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    inbound: &Inbound,
    found: Vec<Option<Vec<u8>>>,
) -> Result<Ingested, ApiError> {
    let kv = ports.kv;
    let provider = account.settings.provider();
    let channel = channel_of(provider);
    let mut found = found.into_iter();
    let mut next = || found.next().flatten();
    if next().is_some() {
        return Ok(Ingested::Duplicate);
    }
    let workstream_id = next()
        .map(text_of)
        .ok_or_else(|| no_workstream(account, inbound))?;
    let known_contact = next().map(text_of);
    let conversation_key = store::document_key::<Conversation>(
        org,
        &thread_id(
            org,
            &account.id,
            &inbound.channel_address,
            &inbound.customer_address,
        ),
    );
    let conversation: Option<Conversation> = store::decode_found(&conversation_key, next())?;
    let pending: Vec<String> = next()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();

    let contact_id = known_contact.clone().unwrap_or_else(|| {
        super::contacts::contact_id_for(org, channel, &inbound.customer_address)
    });
    let mut keys = vec![
        store::document_key::<Workstream>(org, &workstream_id),
        store::document_key::<Contact>(org, &contact_id),
    ];
    keys.extend(
        pending
            .iter()
            .map(|id| store::document_key::<Activity>(org, id)),
    );
    let mut documents = kv.get_many(&keys)?.into_iter();
    let workstream: Workstream = store::decode_found(&keys[0], documents.next().flatten())?
        .ok_or_else(|| no_workstream(account, inbound))?;
    let instance = workstream
        .channels
        .iter()
        .find(|c| c.account_id == account.id && c.address == inbound.channel_address)
        .cloned()
        .ok_or_else(|| no_workstream(account, inbound))?;
    let stored_contact: Option<Contact> =
        store::decode_found(&keys[1], documents.next().flatten())?;
    let mut outbound = Vec::new();
    for (key, found) in keys[2..].iter().zip(documents) {
        let activity: Option<Activity> = store::decode_found(key, found)?;
        // A batch that read the list before a reply threaded it writes it
        // back: what is threaded already stays where it is.
        outbound.extend(activity.filter(|a| a.conversation_position.is_none()));
    }

    let claim = format!(
        "{}/claim",
        provider_message_key(org, provider, &inbound.provider_message_id)
    );
    if kv.increment(&claim, 1)? != 1 {
        return Ok(Ingested::Duplicate);
    }
    // Two first replies at once must not both thread the outbound messages.
    let threading = match outbound.first() {
        Some(first) => {
            let key = format!(
                "{}/threaded",
                store::document_key::<Activity>(org, &first.id)
            );
            match kv.increment(&key, 1) {
                Ok(1) => Some(key),
                Ok(_) => {
                    outbound.clear();
                    None
                }
                Err(error) => {
                    let _ = kv.delete(&claim);
                    return Err(error.into());
                }
            }
        }
        None => None,
    };
    let now_millis = ports.clock.now_millis();
    let now = crate::time::rfc3339(now_millis);
    let stored = store_message(
        ports,
        org,
        Arrival {
            account,
            channel,
            workstream: &workstream,
            instance: &instance,
            inbound,
            conversation,
            contact: stored_contact,
            contact_is_new: known_contact.is_none(),
            outbound,
            now: &now,
        },
    );
    let (mut conversation, position, contact) = match stored {
        Ok(stored) => stored,
        Err(error) => {
            let mut claims = vec![claim];
            claims.extend(threading);
            let _ = kv.delete_many(&claims);
            return Err(error);
        }
    };
    if !inbound.attachments.is_empty() && !instance.customer_attachments {
        notify_attachments_refused(ports, org, account, &conversation, &now).await;
    }
    if conversation.with_bot {
        if let Some(url) = &workstream.bot_url {
            let handoff = converse_with_bot(
                ports,
                org,
                account,
                &conversation,
                &contact,
                inbound,
                url,
                &now,
            )
            .await;
            if handoff {
                let classified = classify(&workstream, &instance, &inbound.text, &contact);
                conversation.routed_by = Some(classified.routed_by);
                // A concurrent message may hand over first; either routes it.
                match route_to_queue(
                    kv,
                    org,
                    &mut conversation,
                    &classified.queue_id,
                    &workstream.distribution,
                    &now,
                    Vec::new(),
                ) {
                    Err(error) if error.code != "conversation_changed" => return Err(error),
                    _ => {}
                }
            }
        }
    }
    Ok(Ingested::Stored {
        conversation_id: conversation.id,
        position,
    })
}

/// 404 for a message to an address no workstream serves: the admin has to
/// add it to one, and the provider's console shows this answer.
fn no_workstream(account: &Account, inbound: &Inbound) -> ApiError {
    ApiError {
        status: 404,
        code: "no_workstream",
        message: format!(
            "{} of account {} is not a channel of any workstream; add it to one (PATCH /api/workstreams/{{id}}, \"channels\")",
            inbound.channel_address, account.id
        ),
        field: None,
    }
}

struct Arrival<'a> {
    account: &'a Account,
    channel: &'a str,
    workstream: &'a Workstream,
    instance: &'a ChannelInstance,
    inbound: &'a Inbound,
    conversation: Option<Conversation>,
    contact: Option<Contact>,
    contact_is_new: bool,
    /// Outbound messages to show before this one (R-OUT-8).
    outbound: Vec<Activity>,
    now: &'a str,
}

/// Writes the message and whatever it changes; returns the conversation as
/// it now is, the message's position and the sender's contact.
fn store_message(
    ports: &Ports<'_>,
    org: &str,
    arrival: Arrival<'_>,
) -> Result<(Conversation, i64, Contact), ApiError> {
    let kv = ports.kv;
    let Arrival {
        account,
        channel,
        workstream,
        instance,
        inbound,
        conversation,
        contact,
        contact_is_new,
        outbound,
        now,
    } = arrival;
    let provider = account.settings.provider();
    let mut message = Message::new(Author::Customer, inbound.text.clone(), now);
    message.provider_message_id = Some(inbound.provider_message_id.clone());
    if instance.customer_attachments {
        message.attachments = inbound.attachments.clone();
    } else {
        message.attachments_refused = inbound.attachments.len();
    }

    let mut contact = contact.unwrap_or_else(|| {
        Contact::for_sender(
            org,
            channel,
            &inbound.customer_address,
            inbound.profile_name.as_deref(),
            now,
        )
    });
    let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
    let opted = opt_keyword(&inbound.text).is_some_and(|k| contact.apply(k, channel, now));
    if contact_is_new {
        writes.push((
            address_key(org, channel, &inbound.customer_address),
            contact.id.as_bytes().to_vec(),
        ));
    }
    if contact_is_new || opted {
        writes.push((
            store::document_key::<Contact>(org, &contact.id),
            store::encode(&contact),
        ));
    }
    let conversation_id = thread_id(
        org,
        &account.id,
        &inbound.channel_address,
        &inbound.customer_address,
    );
    let log = messages(org, &conversation_id);
    let threaded = outbound.len() as i64;
    let first = log.reserve_many(kv, threaded + 1)?;
    message.position = first + threaded;
    if threaded > 0 {
        writes.push((pending_outbound_key(org, &conversation_id), b"[]".to_vec()));
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
    writes.push((log.slot_key(message.position), store::encode(&message)));
    writes.push((
        provider_message_key(org, provider, &inbound.provider_message_id),
        super::message_location(&conversation_id, message.position),
    ));
    writes.push((
        last_customer_key(org, &conversation_id),
        now.as_bytes().to_vec(),
    ));

    let mut conversation = match conversation {
        Some(conversation) if matches!(conversation.state, State::Open | State::Active) => {
            kv.set_many(&writes)?;
            return Ok((conversation, message.position, contact));
        }
        Some(conversation) => conversation,
        None => Conversation {
            id: conversation_id,
            state: State::Open,
            channel: channel.to_owned(),
            workstream_id: workstream.id.clone(),
            account_id: account.id.clone(),
            channel_address: inbound.channel_address.clone(),
            customer_address: inbound.customer_address.clone(),
            contact_id: contact.id.clone(),
            profile_name: inbound.profile_name.clone(),
            language: instance.language.clone(),
            queue_id: None,
            agent_id: None,
            routed_by: None,
            with_bot: false,
            version: 0,
            queued_at: 0,
            assigned_at: 0,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            closed_at: None,
        },
    };
    if inbound.profile_name.is_some() {
        conversation.profile_name = inbound.profile_name.clone();
    }
    let result = match back_to_its_agent(kv, org, &conversation)? {
        // A new or reopened conversation meets the bot first (R-CONV-7).
        None if workstream.bot_url.is_some() && conversation.state != State::Waiting => {
            conversation.state = State::Open;
            conversation.with_bot = true;
            conversation.queue_id = None;
            conversation.closed_at = None;
            conversation.updated_at = now.to_owned();
            commit(kv, org, &mut conversation, writes.clone())
        }
        Some(agent) => {
            conversation.state = State::Active;
            conversation.updated_at = now.to_owned();
            commit(kv, org, &mut conversation, writes.clone()).inspect_err(|_| {
                let _ = release(kv, org, &agent.id);
            })
        }
        None => {
            let classified = classify(workstream, instance, &inbound.text, &contact);
            conversation.routed_by = Some(classified.routed_by);
            route_to_queue(
                kv,
                org,
                &mut conversation,
                &classified.queue_id,
                &workstream.distribution,
                now,
                writes.clone(),
            )
        }
    };
    match result {
        Ok(()) => Ok((conversation, message.position, contact)),
        // Another delivery changed the conversation first (two first
        // messages at once): it routes the conversation; this message only
        // needs storing.
        Err(error) if error.code == "conversation_changed" => {
            kv.set_many(&writes)?;
            conversation.with_bot = false;
            Ok((conversation, message.position, contact))
        }
        Err(error) => Err(error),
    }
}

/// A waiting conversation goes back to the agent who parked it, if that
/// agent is available and has room (its capacity is then taken).
fn back_to_its_agent(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &Conversation,
) -> Result<Option<Agent>, ApiError> {
    let Some(agent_id) = conversation
        .agent_id
        .as_deref()
        .filter(|_| conversation.state == State::Waiting)
    else {
        return Ok(None);
    };
    let agent: Option<Agent> = store::load(kv, org, agent_id)?;
    match agent {
        Some(agent) if agent.presence == "available" && reserve(kv, org, &agent)? => {
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
    now: &str,
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
/// customer and records it, failed or not. Best effort: the customer's
/// message is stored already.
async fn say(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &Conversation,
    author: Author,
    text: &str,
    now: &str,
) {
    let content = Content::Text {
        text: text.to_owned(),
        attachments: Vec::new(),
    };
    let mut message = Message::new(author, text, now);
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
        Err(undelivered) => {
            message.status = Some("failed".to_owned());
            message.error_code = Some(undelivered.error.code.to_owned());
        }
    }
    let _ = super::append(
        ports.kv,
        org,
        &conversation.id,
        &mut [message],
        Vec::new(),
        account.settings.provider(),
    );
}

/// Applies a provider's status callback to the outbound message it names
/// (R-IN-7). Statuses only move forward by `rank` — callbacks arrive out of
/// order — and an unknown message id is ignored: it may be another
/// system's message on the same account. `found` is the value of the
/// message's [`provider_message_key`].
pub fn apply_status(
    kv: &dyn KeyValue,
    org: &str,
    found: Option<Vec<u8>>,
    status: &str,
    error_code: Option<&str>,
    rank: fn(&str) -> u8,
) -> Result<bool, ApiError> {
    let Some(found) = found else {
        return Ok(false);
    };
    if let Some(activity) = crate::outbound::activity::parse_pointer(&found) {
        return crate::outbound::activity::apply_status(
            kv, org, activity, status, error_code, rank,
        );
    }
    let Some((conversation, position)) = super::parse_location(&found) else {
        return Ok(false);
    };
    let key = messages(org, &conversation).slot_key(position);
    let Some(bytes) = kv.get(&key)? else {
        return Ok(false);
    };
    let mut message: Message = store::decode(&key, &bytes)?;
    if !advance(&mut message, status, rank) {
        return Ok(false);
    }
    if let Some(code) = error_code {
        message.error_code = Some(code.to_owned());
    }
    kv.set(&key, &store::encode(&message))?;
    Ok(true)
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
    rank: fn(&str) -> u8,
) -> Result<(), ApiError> {
    let log = messages(org, conversation);
    let last = log.len(kv)?;
    let mut changed = Vec::new();
    for (position, bytes) in log.read(kv, last - WATERMARK_REACH + 1, last)? {
        let key = log.slot_key(position);
        let mut message: Message = store::decode(&key, &bytes)?;
        let sent_by_us =
            message.author != Author::Customer && message.provider_message_id.is_some();
        let covered =
            crate::time::parse_rfc3339(&message.at).is_ok_and(|sent| sent <= watermark_millis);
        if sent_by_us && covered && advance(&mut message, status, rank) {
            changed.push((key, store::encode(&message)));
        }
    }
    if !changed.is_empty() {
        kv.set_many(&changed)?;
    }
    Ok(())
}

/// Whether `status` is further along than `current` by `rank`: status
/// callbacks arrive out of order and must never move a message back.
pub fn moves_forward(current: Option<&str>, status: &str, rank: fn(&str) -> u8) -> bool {
    rank(status) > current.map_or(0, rank)
}

/// Moves `message` to `status` if that [`moves_forward`].
fn advance(message: &mut Message, status: &str, rank: fn(&str) -> u8) -> bool {
    if !moves_forward(message.status.as_deref(), status, rank) {
        return false;
    }
    message.status = Some(status.to_owned());
    true
}

/// Shows the customer's message to the workstream's bot (R-CONV-7) and
/// sends its reply; returns whether the bot hands the conversation over.
///
/// The bot answers `{"reply": "…"}` to say something, `{"handoff": true}`
/// to pass the customer to an agent, or both. A bot that cannot be reached
/// or answers anything else hands over: a customer is never left with a
/// broken bot.
#[allow(clippy::too_many_arguments)]
async fn converse_with_bot(
    ports: &Ports<'_>,
    org: &str,
    account: &Account,
    conversation: &Conversation,
    contact: &Contact,
    inbound: &Inbound,
    url: &str,
    now: &str,
) -> bool {
    let question = serde_json::json!({
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "language": conversation.language,
        "customer": {
            "address": conversation.customer_address,
            "name": contact.name,
            "contact_id": contact.id,
        },
        "message": {"text": inbound.text, "attachments": inbound.attachments},
    });
    let request = OutboundRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: question.to_string().into_bytes(),
    };
    let answer: Option<serde_json::Value> = match ports.http.send(request).await {
        Ok(response) if (200..300).contains(&response.status) => {
            serde_json::from_slice(&response.body).ok()
        }
        _ => None,
    };
    let Some(answer) = answer.filter(serde_json::Value::is_object) else {
        return true;
    };
    if let Some(text) = answer["reply"].as_str().filter(|t| !t.trim().is_empty()) {
        say(ports, org, account, conversation, Author::Bot, text, now).await;
    }
    answer["handoff"].as_bool().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::Settings;
    use crate::locale::Locale;
    use crate::memory::{block_on, FailingOnce, MemoryPorts};

    const ORG: &str = "0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "a0000000000000000000000000000000";

    fn setup(kv: &dyn KeyValue) -> Account {
        let account = Account {
            id: ACCOUNT.into(),
            name: "WhatsApp".into(),
            settings: Settings::Twilio {
                account_sid: "AC".into(),
                auth_token: "token".into(),
                numbers: Vec::new(),
            },
            created_at: String::new(),
            updated_at: String::new(),
            last_validation: None,
        };
        let workstream = Workstream {
            id: "b0000000000000000000000000000000".into(),
            name: "w".into(),
            channel: "whatsapp".into(),
            fallback_queue: "q".into(),
            distribution: "round_robin".into(),
            bot_url: None,
            routing_rules: Vec::new(),
            channels: vec![ChannelInstance {
                account_id: ACCOUNT.into(),
                address: "+14155238886".into(),
                language: Locale::parse("en-US").unwrap(),
                customer_attachments: true,
                agent_attachments: true,
                human_agent_tag: false,
            }],
            created_at: String::new(),
            updated_at: String::new(),
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
            customer_address: "+4917612345678".into(),
            channel_address: "+14155238886".into(),
            text: "hello".into(),
            attachments: Vec::new(),
            profile_name: Some("Jane".into()),
        }
    }

    fn deliver(
        ports: &Ports<'_>,
        account: &Account,
        inbound: &Inbound,
    ) -> Result<Ingested, ApiError> {
        let found = ports
            .kv
            .get_many(&thread_keys(ORG, ACCOUNT, "twilio", inbound))
            .unwrap();
        block_on(ingest(ports, ORG, account, inbound, found))
    }

    #[test]
    fn a_failed_write_answers_5xx_and_the_retry_stores_the_message_once() {
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
        assert_eq!(failed.status, 503);
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
            kind: crate::outbound::activity::KIND.into(),
            configuration_id: "c".repeat(32),
            channel: "whatsapp".into(),
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
            created_at: "2026-01-01T00:00:00.000Z".into(),
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

    #[test]
    fn an_address_no_workstream_serves_is_a_404_naming_the_fix() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let account = setup(ports.kv);
        let mut inbound = message("SM2");
        inbound.channel_address = "+15550000000".into();
        let refused = deliver(&ports, &account, &inbound).unwrap_err();
        assert_eq!((refused.status, refused.code), (404, "no_workstream"));
        assert!(refused.message.contains("PATCH /api/workstreams"));
    }
}
