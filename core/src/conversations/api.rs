//! The agent API (R-CONV-5) and contacts (R-CONV-2): the conversations
//! component's routes.
//!
//! Every action is a state transition committed with the conversation's
//! version check, so two agents pressing "accept" at once get one 200 and
//! one 409, and capacity is taken before a conversation is given and given
//! back when it is parked, closed or moved on. Every route that names a
//! conversation asks [`access`] whether the caller may, through
//! [`conversation_for`]; listings show an agent only what it may read.

use super::access::{self, Need};
use super::reply::{
    deliver, free_form_window, may_have_been_sent, Undelivered, MAX_TEXT_CHARS, OUTCOME_UNKNOWN,
};
use super::routing::{assign, pull_waiting, release, reserve, route_to_queue, Recount};
use super::wire::{
    Accept, ActionBody, Close, ConversationRead, ConversationView, Link, Reply, Resume, Transfer,
    Wait,
};
use super::{
    agent_log, commit, last_customer_key, messages, parse_log_entry, queue_log, record_intent,
    record_outcome, withdraw, Conversation, State,
};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::Role;
use crate::channel::Channel;
use crate::config::accounts::Account;
use crate::config::{serve, Ctx};
use crate::entities::agent::Agent;
use crate::entities::contact::{address_key, Contact, ContactAddress};
use crate::entities::queue::Queue;
use crate::entities::workstream::{ChannelInstance, Workstream};
use crate::error::{Error, ProviderFailure};
use crate::input::{self, Object};
use crate::message::{Author, Content, Message, Window};
use crate::ports::{KeyValue, Ports, UnixMillis};
use crate::store::{self, Log, Page};
use crate::template_text::{RenderContext, RenderError};
use crate::templates::{RenderFailure, Template};
use serde_json::{Map, Value};

/// Who may list, read and work conversations: agents their own (see
/// [`access`]), admins all.
pub const READERS: &[Role] = &[Role::Admin, Role::Agent];
/// The states of a conversation that is not closed.
const LIVE: &[State] = &[State::Open, State::Active, State::Waiting];
const ANY: &[State] = &[State::Open, State::Active, State::Waiting, State::Closed];

/// A state transition: the caller's context, the conversation id, the body.
type Action<B> = fn(&Ctx, &str, B) -> Result<Response, Error>;
/// Whether a log entry (conversation, version) still stands for it.
type EntryHolds = Box<dyn Fn(&Conversation, u64) -> bool>;
/// Whether the caller may see a conversation in a listing.
type Readable<'a> = Box<dyn Fn(&Conversation) -> bool + 'a>;

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    route(request, ports)
        .await
        .unwrap_or_else(Undelivered::into_response)
}

async fn route(request: &Request, ports: &Ports<'_>) -> Result<Response, Undelivered> {
    let segments = request.segments();
    let ctx = Ctx::authenticate(request, ports)?;
    let post = |f: &dyn Fn(&Ctx, &str, &Object) -> Result<Response, Error>, id: &str| {
        if request.method != Method::Post {
            return Ok(method_not_allowed(&["POST"]));
        }
        ctx.principal.require(READERS)?;
        let body = body_object(request)?;
        Ok(f(&ctx, id, &Object::root(&body))?)
    };
    match segments[..] {
        ["api", "conversations"] => match request.method {
            Method::Get => Ok(list(&ctx, request)?),
            _ => Ok(method_not_allowed(&["GET"])),
        },
        ["api", "conversations", id] => match request.method {
            Method::Get => Ok(read(&ctx, request, id)?),
            _ => Ok(method_not_allowed(&["GET"])),
        },
        ["api", "conversations", id, Accept::ACTION] => post(&acting(accept), id),
        ["api", "conversations", id, Transfer::ACTION] => post(&acting(transfer), id),
        ["api", "conversations", id, Wait::ACTION] => post(&acting(wait), id),
        ["api", "conversations", id, Resume::ACTION] => post(&acting(resume), id),
        ["api", "conversations", id, Close::ACTION] => post(&acting(close), id),
        ["api", "conversations", id, Link::ACTION] => post(&acting(link), id),
        ["api", "conversations", id, Reply::ACTION] => {
            if request.method != Method::Post {
                return Ok(method_not_allowed(&["POST"]));
            }
            ctx.principal.require(READERS)?;
            let body = input::json_object(&request.body)?;
            send_reply(&ctx, id, Reply::read(&Object::root(&body))?).await
        }
        ["api", "contacts"] => Ok(super::contacts::list(&ctx, request)?),
        ["api", "contacts", id] if request.method == Method::Get => {
            Ok(super::contacts::read(&ctx, id)?)
        }
        ["api", "contacts", id] => Ok(serve::<Contact>(&ctx, request, Some(id))?),
        ["api", "contacts", id, "timeline"] => {
            if request.method != Method::Get {
                return Ok(method_not_allowed(&["GET"]));
            }
            ctx.principal.require(super::contacts::TIMELINE_READERS)?;
            Ok(super::contacts::read_timeline(
                ports.kv,
                ctx.org(),
                request,
                id,
            )?)
        }
        _ => Err(Error::no_route(&request.path).into()),
    }
}

/// `action`, given its body as the server reads it.
fn acting<B: ActionBody>(
    action: Action<B>,
) -> impl Fn(&Ctx, &str, &Object) -> Result<Response, Error> {
    move |ctx, id, input| action(ctx, id, B::read(input)?)
}

/// An action's body: a JSON object, or nothing at all.
fn body_object(request: &Request) -> Result<Map<String, Value>, Error> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else {
        input::json_object(&request.body)
    }
}

/// `GET /api/conversations?state=&queue=&agent=`: one page, oldest first.
/// `queue` lists what is in a queue now, `agent` what an agent holds or
/// last held (`agent=me` for the caller's own).
fn list(ctx: &Ctx, request: &Request) -> Result<Response, Error> {
    ctx.principal.require(READERS)?;
    let (cursor, limit) = store::paging(request)?;
    let state = state_filter(request)?;
    let queue = request.query_param("queue");
    let agent = agent_filter(ctx, request)?;
    let org = ctx.org();
    let kv = ctx.kv();
    let readable = readable_by(ctx)?;
    let walk = walk_for(org, queue, agent)?;
    let page: Page<ConversationView> = store::scan(&walk.log, kv, cursor, limit, |entries| {
        listed(kv, org, entries, |conversation, version| {
            (walk.entry_holds)(conversation, version)
                && state.is_none_or(|s| s == conversation.state)
                && readable(conversation)
        })
    })?;
    Ok(Response::json(200, &page))
}

/// The listing's `state` filter, if any.
fn state_filter(request: &Request) -> Result<Option<State>, Error> {
    let Some(name) = request.query_param("state") else {
        return Ok(None);
    };
    let state = State::parse(&name).ok_or_else(|| {
        Error::invalid(
            "state",
            "invalid_choice",
            format!("\"state\" must be one of {}", State::NAMES.join(", ")),
        )
    })?;
    Ok(Some(state))
}

/// The listing's `agent` filter, if any, with `me` standing for the caller.
fn agent_filter(ctx: &Ctx, request: &Request) -> Result<Option<String>, Error> {
    let agent = request.query_param("agent");
    if agent.as_deref() != Some("me") {
        return Ok(agent);
    }
    let me = ctx.principal.agent_id.clone().ok_or_else(|| {
        Error::invalid("agent", "not_an_agent", "\"agent=me\" needs an agent key")
    })?;
    Ok(Some(me))
}

/// The log a listing walks, and which of its entries still count: a
/// conversation that moved on leaves its entry behind.
struct Walk {
    log: Log,
    entry_holds: EntryHolds,
}

/// The log the `queue` or `agent` filter walks; both at once are refused.
fn walk_for(org: &str, queue: Option<String>, agent: Option<String>) -> Result<Walk, Error> {
    let (log, entry_holds): (Log, EntryHolds) = match (queue, agent) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "agent",
                "conflicting_filters",
                "filter by \"queue\" or by \"agent\", not both",
            ))
        }
        (Some(queue), None) => (
            queue_log(org, &queue),
            Box::new(move |c, version| {
                c.queue_id.as_deref() == Some(queue.as_str()) && c.queued_at == version
            }),
        ),
        (None, Some(agent)) => (
            agent_log(org, &agent),
            Box::new(move |c, version| {
                c.agent_id.as_deref() == Some(agent.as_str()) && c.assigned_at == version
            }),
        ),
        (None, None) => (store::index::<Conversation>(org), Box::new(|_, _| true)),
    };
    Ok(Walk { log, entry_holds })
}

/// The conversations a page of log `entries` names that `shown` keeps
/// (given each with its entry's version), read in one round trip.
fn listed(
    kv: &dyn KeyValue,
    org: &str,
    entries: &[(i64, Vec<u8>)],
    shown: impl Fn(&Conversation, u64) -> bool,
) -> Result<Vec<ConversationView>, Error> {
    let wanted: Vec<(String, u64)> = entries
        .iter()
        .filter_map(|(_, bytes)| {
            parse_log_entry(bytes)
                .or_else(|| Some((String::from_utf8_lossy(bytes).into_owned(), 0)))
        })
        .collect();
    let mut keys = Vec::with_capacity(wanted.len() * 2);
    for (id, _) in &wanted {
        keys.push(store::document_key::<Conversation>(org, id));
        keys.push(last_customer_key(org, id));
    }
    let values = if keys.is_empty() {
        Vec::new()
    } else {
        kv.get_many(&keys)?
    };
    let mut items = Vec::new();
    for ((id, version), pair) in wanted.iter().zip(values.chunks(2)) {
        let Some(bytes) = &pair[0] else { continue };
        let conversation: Conversation =
            store::decode(&store::document_key::<Conversation>(org, id), bytes)?;
        if shown(&conversation, *version) {
            let last = pair[1]
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            items.push(ConversationView::of(&conversation, last.as_deref()));
        }
    }
    Ok(items)
}

/// `GET /api/conversations/{id}`: the conversation and a page of its
/// messages (`?cursor=` / `?limit=` page through them, oldest first).
fn read(ctx: &Ctx, request: &Request, id: &str) -> Result<Response, Error> {
    ctx.principal.require(READERS)?;
    let (cursor, limit) = store::paging(request)?;
    let (conversation, last) = conversation_for(ctx, id, Need::Read, ANY, "reading")?;
    let log = messages(ctx.org(), id);
    let page = store::scan(&log, ctx.kv(), cursor, limit, |entries| {
        entries
            .iter()
            .map(|(slot, bytes)| store::decode::<Message>(&log.slot_key(*slot), bytes))
            .collect()
    })?;
    let body = ConversationRead {
        conversation: ConversationView::of(&conversation, last.as_deref()),
        messages: page.items,
        messages_next_cursor: page.next_cursor,
    };
    Ok(Response::json(200, &body))
}

/// The conversation a request names, refused unless the caller may
/// `need` it ([`access`]) and its state is one of `states` (409).
fn conversation_for(
    ctx: &Ctx,
    id: &str,
    need: Need,
    states: &[State],
    action: &str,
) -> Result<(Conversation, Option<String>), Error> {
    let (conversation, last) = super::require(ctx.kv(), ctx.org(), id)?;
    if let Some(agent) = calling_agent(ctx) {
        access::check(agent, || queues_of(ctx, agent), &conversation, need)?;
    }
    if !states.contains(&conversation.state) {
        let allowed: Vec<&str> = states.iter().map(|s| s.name()).collect();
        return Err(Error::conflict(
            "invalid_state",
            format!(
                "the conversation is {}; {action} needs it {}",
                conversation.state.name(),
                allowed.join(" or ")
            ),
        ));
    }
    Ok((conversation, last))
}

/// The agent behind an agent key; `None` for an admin, who may do
/// anything (only admins and agents reach these routes).
fn calling_agent<'a>(ctx: &'a Ctx) -> Option<&'a str> {
    (ctx.principal.role == Role::Agent)
        .then(|| ctx.principal.agent_id.as_deref().unwrap_or_default())
}

fn queues_of(ctx: &Ctx, agent: &str) -> Result<Vec<String>, Error> {
    Ok(store::load::<Agent>(ctx.kv(), ctx.org(), agent)?
        .map(|agent| agent.queues)
        .unwrap_or_default())
}

/// Which conversations a listing shows the caller: an agent sees those
/// [`access`] lets it read.
fn readable_by<'a>(ctx: &'a Ctx) -> Result<Readable<'a>, Error> {
    let Some(agent) = calling_agent(ctx) else {
        return Ok(Box::new(|_| true));
    };
    let queues = queues_of(ctx, agent)?;
    Ok(Box::new(move |conversation| {
        access::check(agent, || Ok(queues.clone()), conversation, Need::Read).is_ok()
    }))
}

/// The agent an action is for: the caller, or for an admin the body's
/// `agent_id` (else `default`).
fn acting_agent(ctx: &Ctx, named: Option<&str>, default: Option<&str>) -> Result<Agent, Error> {
    let id = match (&ctx.principal.agent_id, named) {
        (Some(me), None) => me.clone(),
        (Some(me), Some(other)) if other == me => me.clone(),
        (Some(_), Some(_)) => {
            return Err(Error::Forbidden {
                field: Some("agent_id".into()),
                code: "forbidden",
                message: "agents act for themselves; leave \"agent_id\" out".into(),
            })
        }
        (None, Some(id)) => id.to_owned(),
        (None, None) => default
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid("agent_id", "required", "\"agent_id\" is required"))?,
    };
    store::load::<Agent>(ctx.kv(), ctx.org(), &id)?.ok_or_else(|| {
        Error::invalid(
            "agent_id",
            "unknown_agent",
            format!("no agent with id {id} in this organisation"),
        )
    })
}

fn at_capacity(agent: &Agent) -> Error {
    Error::conflict(
        "at_capacity",
        format!(
            "agent {} already holds {} conversation(s), its capacity; close or park one first",
            agent.name, agent.capacity
        ),
    )
}

/// The agent whose capacity the conversation takes, if any.
fn holder(conversation: &Conversation) -> Option<String> {
    conversation
        .agent_id
        .clone()
        .filter(|_| conversation.state == State::Active)
}

/// Commits a change that takes the conversation from `held_by`, then frees
/// that agent.
fn commit_freeing(
    ctx: &Ctx,
    conversation: &mut Conversation,
    held_by: Option<String>,
) -> Result<(), Error> {
    commit(
        ctx.kv(),
        ctx.org(),
        conversation,
        ctx.now.millis(),
        Vec::new(),
    )?;
    if let Some(agent) = held_by {
        free_agent(ctx.kv(), ctx.org(), &agent, ctx.now.millis());
    }
    Ok(())
}

/// Frees an agent's capacity and lets it take what waits in its queues.
/// Runs after a committed change, so it is best effort: a capacity unit
/// not given back is recovered by the agent's next recount
/// ([`super::routing::reconcile`]), a waiting conversation by the next
/// agent that frees up.
fn free_agent(kv: &dyn KeyValue, org: &str, agent_id: &str, now: UnixMillis) {
    if release(kv, org, agent_id).is_err() {
        return;
    }
    if let Ok(Some(agent)) = store::load::<Agent>(kv, org, agent_id) {
        let _ = pull_waiting(kv, org, &agent, now);
    }
}

fn answer(conversation: &Conversation, last: Option<&str>) -> Result<Response, Error> {
    Ok(Response::json(
        200,
        &ConversationView::of(conversation, last),
    ))
}

/// Gives the conversation to `agent`, taking its capacity.
fn give(ctx: &Ctx, conversation: &mut Conversation, agent: &Agent) -> Result<(), Error> {
    if !reserve(ctx.kv(), ctx.org(), agent, Recount::Always)? {
        return Err(at_capacity(agent));
    }
    if !assign(ctx.kv(), ctx.org(), conversation, agent, ctx.now.millis())? {
        return Err(Error::ConversationChanged);
    }
    Ok(())
}

/// `accept`: an agent takes an open conversation from the queue.
fn accept(ctx: &Ctx, id: &str, body: Accept) -> Result<Response, Error> {
    let (mut conversation, last) =
        conversation_for(ctx, id, Need::Accept, &[State::Open], "accept")?;
    let agent = acting_agent(ctx, body.agent_id.as_deref(), None)?;
    give(ctx, &mut conversation, &agent)?;
    answer(&conversation, last.as_deref())
}

/// `transfer`: to another queue (routed there afresh) or another agent.
fn transfer(ctx: &Ctx, id: &str, body: Transfer) -> Result<Response, Error> {
    let (mut conversation, last) = conversation_for(ctx, id, Need::Work, LIVE, "a transfer")?;
    let held_by = holder(&conversation);
    match (body.queue_id.as_deref(), body.agent_id.as_deref()) {
        (Some(queue), None) => {
            store::load::<Queue>(ctx.kv(), ctx.org(), queue)?.ok_or_else(|| {
                Error::invalid(
                    "queue_id",
                    "unknown_queue",
                    format!("no queue with id {queue} in this organisation"),
                )
            })?;
            let workstream: Option<Workstream> =
                store::load(ctx.kv(), ctx.org(), &conversation.workstream_id)?;
            let distribution = workstream.map(|w| w.distribution).unwrap_or_default();
            conversation.routed_by = Some("transfer".to_owned());
            route_to_queue(
                ctx.kv(),
                ctx.org(),
                &mut conversation,
                queue,
                distribution,
                ctx.now.millis(),
                Vec::new(),
            )?;
        }
        (None, Some(agent_id)) => {
            let agent = store::load::<Agent>(ctx.kv(), ctx.org(), agent_id)?.ok_or_else(|| {
                Error::invalid(
                    "agent_id",
                    "unknown_agent",
                    format!("no agent with id {agent_id} in this organisation"),
                )
            })?;
            if held_by.as_deref() == Some(agent_id) {
                return Err(Error::invalid(
                    "agent_id",
                    "same_agent",
                    "the conversation is already with this agent",
                ));
            }
            give(ctx, &mut conversation, &agent)?;
        }
        _ => {
            return Err(Error::invalid(
                "queue_id",
                "missing_target",
                "give either \"queue_id\" or \"agent_id\" to transfer to",
            ))
        }
    }
    if let Some(previous) = held_by {
        free_agent(ctx.kv(), ctx.org(), &previous, ctx.now.millis());
    }
    answer(&conversation, last.as_deref())
}

/// `wait`: the agent parks the conversation until the customer writes.
fn wait(ctx: &Ctx, id: &str, _: Wait) -> Result<Response, Error> {
    let (mut conversation, last) = conversation_for(ctx, id, Need::Work, &[State::Active], "wait")?;
    let held_by = holder(&conversation);
    conversation.state = State::Waiting;
    conversation.updated_at = ctx.now;
    commit_freeing(ctx, &mut conversation, held_by)?;
    answer(&conversation, last.as_deref())
}

/// `resume`: an agent takes back a waiting or closed conversation.
fn resume(ctx: &Ctx, id: &str, body: Resume) -> Result<Response, Error> {
    let states = [State::Waiting, State::Closed];
    let (mut conversation, last) = conversation_for(ctx, id, Need::Work, &states, "resume")?;
    let agent = acting_agent(
        ctx,
        body.agent_id.as_deref(),
        conversation.agent_id.as_deref(),
    )?;
    conversation.closed_at = None;
    give(ctx, &mut conversation, &agent)?;
    answer(&conversation, last.as_deref())
}

/// `close`: resolved. A later customer message reopens it.
fn close(ctx: &Ctx, id: &str, _: Close) -> Result<Response, Error> {
    let (mut conversation, last) = conversation_for(ctx, id, Need::Work, LIVE, "close")?;
    let held_by = holder(&conversation);
    conversation.state = State::Closed;
    conversation.with_bot = false;
    conversation.closed_at = Some(ctx.now);
    conversation.updated_at = ctx.now;
    commit_freeing(ctx, &mut conversation, held_by)?;
    answer(&conversation, last.as_deref())
}

/// `link`: the customer is a known contact (R-CONV-2). The address moves
/// to that contact, so later conversations from it attach there too.
fn link(ctx: &Ctx, id: &str, body: Link) -> Result<Response, Error> {
    let target_id = body.contact_id.as_str();
    let (mut conversation, last) = conversation_for(ctx, id, Need::Work, ANY, "link")?;
    let mut target: Contact = store::load(ctx.kv(), ctx.org(), target_id)?.ok_or_else(|| {
        Error::invalid("contact_id", "unknown_contact", format!("no contact with id {target_id} in this organisation (POST /api/contacts creates one)"))
    })?;
    if conversation.contact_id == target.id {
        return answer(&conversation, last.as_deref());
    }
    let address = ContactAddress {
        channel: conversation.channel,
        address: conversation.customer_address.clone(),
    };
    let mut writes = vec![(
        address_key(ctx.org(), address.channel.as_str(), &address.address),
        target.id.as_bytes().to_vec(),
    )];
    if let Some(mut previous) =
        store::load::<Contact>(ctx.kv(), ctx.org(), &conversation.contact_id)?
    {
        // The address's opt-out stays with it; a legacy one is copied there.
        super::consent::keep_legacy(ctx.kv(), ctx.org(), &previous)?;
        previous.addresses.retain(|a| *a != address);
        previous.updated_at = ctx.now;
        writes.push((
            store::document_key::<Contact>(ctx.org(), &previous.id),
            store::encode(&previous),
        ));
    }
    if !target.addresses.contains(&address) {
        target.addresses.push(address);
    }
    target.updated_at = ctx.now;
    writes.push((
        store::document_key::<Contact>(ctx.org(), &target.id),
        store::encode(&target),
    ));
    conversation.contact_id = target.id.clone();
    conversation.updated_at = ctx.now;
    commit(
        ctx.kv(),
        ctx.org(),
        &mut conversation,
        ctx.now.millis(),
        writes,
    )?;
    answer(&conversation, last.as_deref())
}

/// `POST /api/conversations/{id}/messages`: free-form text (with
/// attachments where the channel allows them) or a template.
async fn send_reply(ctx: &Ctx<'_>, id: &str, reply: Reply) -> Result<Response, Undelivered> {
    let (conversation, last) = conversation_for(ctx, id, Need::Work, LIVE, "a reply")?;
    let kv = ctx.kv();
    let workstream: Workstream = store::require(kv, ctx.org(), &conversation.workstream_id)?;
    let instance = replying_channel(&workstream, &conversation)?;
    let account: Account = store::require(kv, ctx.org(), &conversation.account_id)?;
    let content = reply_content(ctx, reply, &conversation, instance)?;
    let window = reply_window(ctx, &content, &conversation, instance, last.as_deref())?;
    let message = agent_message(ctx, &content);
    send_recorded(ctx, &account, &conversation, &content, window, message).await
}

/// The workstream's channel the conversation is on; a reply has nothing to
/// go out from once the channel is removed.
fn replying_channel<'a>(
    workstream: &'a Workstream,
    conversation: &Conversation,
) -> Result<&'a ChannelInstance, Error> {
    workstream
        .channels
        .iter()
        .find(|c| {
            c.account_id == conversation.account_id && c.address == conversation.channel_address
        })
        .ok_or_else(|| {
            Error::conflict(
                "channel_removed",
                format!(
                    "{} is no longer a channel of workstream {}; replies cannot be sent from it",
                    conversation.channel_address, workstream.id
                ),
            )
        })
}

/// What the reply sends: a rendered template or the body's text and
/// attachments, refused before anything is recorded if the channel cannot
/// carry it.
fn reply_content(
    ctx: &Ctx,
    reply: Reply,
    conversation: &Conversation,
    instance: &ChannelInstance,
) -> Result<Content, Error> {
    let content = match &reply.template_id {
        Some(template_id) => {
            if reply.text.is_some() || reply.attachments.is_some() {
                return Err(Error::invalid(
                    "text",
                    "conflicting_fields",
                    "send either \"text\" or \"template_id\", not both",
                ));
            }
            render_template(ctx, &reply, template_id, conversation)?
        }
        None => text_content(reply, conversation, instance)?,
    };
    let characters = content.text().chars().count();
    if characters > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            "text",
            "text_too_long",
            format!("the message has {characters} characters; the limit is {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(content)
}

/// A free-form reply: text, attachments, or both, where the channel sends
/// agents' attachments.
fn text_content(
    reply: Reply,
    conversation: &Conversation,
    instance: &ChannelInstance,
) -> Result<Content, Error> {
    let text = reply.text.unwrap_or_default();
    let attachments = reply.attachments.unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        return Err(Error::invalid("text", "required", "\"text\" is required"));
    }
    if !attachments.is_empty() && conversation.channel == Channel::Sms {
        return Err(Error::invalid(
            "attachments",
            "attachments_not_supported",
            "SMS carries text only; send the attachment's link in \"text\" instead",
        ));
    }
    if !attachments.is_empty() && !instance.agent_attachments {
        return Err(Error::invalid("attachments", "attachments_not_allowed", "this channel does not send agents' attachments (the channel's agent_attachments is off)"));
    }
    Ok(Content::Text { text, attachments })
}

/// Whether the reply may go out now: the channel's free-form window since
/// the customer's last message, `last_customer`.
fn reply_window(
    ctx: &Ctx,
    content: &Content,
    conversation: &Conversation,
    instance: &ChannelInstance,
    last_customer: Option<&str>,
) -> Result<Window, Undelivered> {
    match content {
        // Approved WhatsApp templates are what goes out after the window.
        Content::Template { .. } if conversation.channel == Channel::Whatsapp => Ok(Window::Open),
        _ => free_form_window(
            conversation.channel,
            instance.human_agent_tag,
            true,
            last_customer.and_then(|at| crate::time::parse_rfc3339(at).ok()),
            ctx.ports.clock.now_millis(),
        ),
    }
}

/// The reply as the conversation shows it, by the calling agent.
fn agent_message(ctx: &Ctx, content: &Content) -> Message {
    let mut message = Message::new(Author::Agent, content.text(), ctx.now);
    message.agent_id = ctx.principal.agent_id.clone();
    match content {
        Content::Text { attachments, .. } => message.attachments = attachments.clone(),
        Content::Template { template_id, .. } => message.template_id = Some(template_id.clone()),
    }
    message
}

/// Sends the reply, recorded before it goes and settled after: a failure
/// that may have reached the customer stays shown as `unknown`, so the
/// agent checks before sending again; one that surely did not is withdrawn.
async fn send_recorded(
    ctx: &Ctx<'_>,
    account: &Account,
    conversation: &Conversation,
    content: &Content,
    window: Window,
    mut message: Message,
) -> Result<Response, Undelivered> {
    let kv = ctx.kv();
    // At most once: shown before it goes, so a reply cut off mid-send is
    // seen as `unknown` in the conversation instead of being sent again.
    record_intent(kv, ctx.org(), &conversation.id, &mut message)?;
    let sent = deliver(
        ctx.ports,
        account,
        conversation.thread(),
        content,
        Author::Agent,
        window,
    )
    .await;
    let provider = account.settings.provider();
    match sent {
        Ok(sent) => {
            message.provider_message_id = Some(sent.provider_message_id);
            message.status = Some(sent.status);
            // Sent: the answer says so even if the record of it lags
            // (the conversation then shows it as unknown).
            let _ = record_outcome(kv, ctx.org(), &conversation.id, provider, &message);
            Ok(Response::json(201, &message))
        }
        Err(undelivered) if may_have_been_sent(&undelivered.error) => {
            message.error_code = Some(OUTCOME_UNKNOWN.to_owned());
            let _ = record_outcome(kv, ctx.org(), &conversation.id, provider, &message);
            Err(Error::Provider(ProviderFailure::OutcomeUnknown(format!(
                    "{} The reply is in the conversation with status \"unknown\" (message {}): it may have reached the customer, so check before sending it again.",
                    undelivered.error.message(), message.position
                )))
            .into())
        }
        Err(undelivered) => {
            withdraw(kv, ctx.org(), &conversation.id, &message);
            Err(undelivered)
        }
    }
}

/// A template rendered for the conversation's channel and customer: the
/// reply gives `CaseName`, `context_items` and, if the contact's name will
/// not do, `CustomerName`.
fn render_template(
    ctx: &Ctx,
    reply: &Reply,
    template_id: &str,
    conversation: &Conversation,
) -> Result<Content, Error> {
    let template: Template = store::load(ctx.kv(), ctx.org(), template_id)?.ok_or_else(|| {
        Error::invalid(
            "template_id",
            "unknown_template",
            format!("no template with id {template_id} in this organisation"),
        )
    })?;
    let locale = reply
        .locale
        .clone()
        .unwrap_or_else(|| conversation.language.clone());
    let contact: Option<Contact> = store::load(ctx.kv(), ctx.org(), &conversation.contact_id)?;
    let customer_name = match &reply.customer_name {
        Some(name) => Some(name.clone()),
        None => contact
            .map(|c| c.name)
            .or_else(|| conversation.profile_name.clone()),
    };
    let context = RenderContext {
        customer_name: customer_name.as_deref(),
        case_name: reply.case_name.as_deref(),
        context_items: reply.context_items.as_ref(),
    };
    let rendered = template
        .render(conversation.channel, Some(&locale), &context)
        .map_err(|failure| reply_render_error(&failure))?;
    if conversation.channel == Channel::Whatsapp && rendered.content_sid.is_none() {
        return Err(Error::invalid(
            "template_id",
            "no_approved_version",
            "WhatsApp templates go out by their approved Content SID; approve a version of this template (with its content_sid) first",
        ));
    }
    Ok(Content::Template {
        template_id: template_id.to_owned(),
        rendered,
    })
}

/// A template that does not render for a reply, said in the reply's terms:
/// a missing value names the body field that gives it.
fn reply_render_error(failure: &RenderFailure) -> Error {
    let RenderFailure::Placeholder(error) = failure else {
        return Error::invalid("template_id", failure.code(), failure.to_string());
    };
    let placeholder = error.placeholder();
    let key = placeholder
        .strip_prefix("contextitems.")
        .unwrap_or(placeholder);
    let (field, message) = match (error, placeholder) {
        (RenderError::Missing { .. }, "CustomerName" | "CaseName") => (
            placeholder.to_owned(),
            format!("no value for {{{{{placeholder}}}}}: give \"{placeholder}\" in the reply, next to \"template_id\""),
        ),
        (RenderError::Missing { .. }, _) => (
            format!("context_items.{key}"),
            format!("no value for {{{{{placeholder}}}}}: give \"{key}\" in the reply's \"context_items\""),
        ),
        (RenderError::NotText { .. }, _) => (
            format!("context_items.{key}"),
            format!("\"context_items.{key}\" is an object or array: give {{{{{placeholder}}}}} a text, number or true/false value"),
        ),
    };
    Error::invalid(field, failure.code(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_missing_from_a_reply_names_the_reply_field_that_gives_it() {
        for (placeholder, field, hint) in [
            ("CaseName", "CaseName", "give \"CaseName\" in the reply"),
            (
                "CustomerName",
                "CustomerName",
                "give \"CustomerName\" in the reply",
            ),
            (
                "contextitems.OrderId",
                "context_items.OrderId",
                "give \"OrderId\" in the reply's \"context_items\"",
            ),
            (
                "OrderId",
                "context_items.OrderId",
                "give \"OrderId\" in the reply's \"context_items\"",
            ),
        ] {
            let missing = RenderFailure::Placeholder(RenderError::Missing {
                placeholder: placeholder.into(),
            });
            let error = reply_render_error(&missing);
            assert_eq!(
                (error.status(), error.code(), error.field()),
                (422, "missing_placeholder", Some(field))
            );
            assert!(error.message().contains(hint), "{}", error.message());
        }
        let list = RenderFailure::Placeholder(RenderError::NotText {
            placeholder: "Items".into(),
        });
        let error = reply_render_error(&list);
        assert_eq!(error.field(), Some("context_items.Items"));
        let too_long = RenderFailure::SmsTooLong { characters: 1700 };
        let error = reply_render_error(&too_long);
        assert_eq!(
            (error.code(), error.field()),
            ("sms_too_long", Some("template_id"))
        );
    }
}
