//! The agent's side of a conversation (R-CONV-5, R-CONV-6) and contacts
//! (R-CONV-2): the conversations component's routes.

use crate::operation::{page, string, Access, Api, Op, Resource};
use switchboard_core::conversations::api::READERS;
use switchboard_core::conversations::contacts::{self, ContactRead, TIMELINE_READERS};
use switchboard_core::conversations::wire::{
    Accept, ActionBody, Close, ConversationRead, ConversationView, Link, Reply, Resume, Transfer,
    Wait,
};
use switchboard_core::conversations::State;
use switchboard_core::entities::activity::Activity;
use switchboard_core::entities::contact::Contact;
use switchboard_core::message::Message;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

const TAG: &str = "Conversations";

/// Who may see or work a conversation, beyond the key's role.
const NOT_YOURS: &str = "The key's role may not call this operation, or the conversation is not the calling agent's: `not_your_conversation` (another agent's, or not accepted yet), `not_in_queue` (open in a queue the agent does not serve), `forbidden` (an agent's key naming another agent).";

const CHANGED: &str =
    "`conversation_changed`: another change won the race; read the conversation again and retry.";

pub fn describe(api: &mut Api) {
    let view = api.schema::<ConversationView>();
    api.add(
        Op::get("/api/conversations", "list_conversations", "List conversations")
            .tag(TAG)
            .access(Access::Key(READERS))
            .describe("Oldest first. An agent's key lists only what it may read: its own conversations and the open ones waiting in its queues. `queue` and `agent` cannot be combined.")
            .query("state", states(), "Only conversations in this state.")
            .query("queue", string(), "Only those waiting in (or last routed to) this queue now.")
            .query("agent", string(), "Only those an agent holds or last held: an agent id, or `me` with an agent's key (422 `not_an_agent` with another key).")
            .paged()
            .answers(200, "A page of conversations.", page(view.clone())),
    );
    let read = api.schema::<ConversationRead>();
    api.add(
        Op::get("/api/conversations/{id}", "read_conversation", "Read a conversation and its messages")
            .tag(TAG)
            .access(Access::Key(READERS))
            .describe("The conversation and a page of its messages, oldest first: `cursor` and `limit` page through the messages, `messages_next_cursor` gives the next page. Each message has its author, time, delivery `status` (ours only), `error_code`, and the count of attachments the channel refused (`attachments_refused`).")
            .paged()
            .answers(200, "The conversation and a page of its messages.", read)
            .fails(403, NOT_YOURS),
    );
    action::<Accept>(api, &view, "Accept a conversation from its queue", "The conversation must be `open`; it becomes `active` with the agent, taking a unit of its capacity. An admin's key names the agent in `agent_id`.", &["`invalid_state` (not open)", "`at_capacity` (the agent holds its capacity)"]);
    action::<Transfer>(api, &view, "Transfer a conversation to a queue or an agent", "Give exactly one of `queue_id` (routed there afresh, with the workstream's distribution) and `agent_id` (assigned, taking its capacity). The agent that had it is freed.", &["`invalid_state` (closed)", "`at_capacity` (the target agent holds its capacity)"]);
    action::<Wait>(api, &view, "Park a conversation until the customer writes", "An `active` conversation becomes `waiting` and frees its agent's capacity; the customer's next message brings it back. The body, if any, is `{}`.", &["`invalid_state` (not active)"]);
    action::<Resume>(api, &view, "Take back a waiting or closed conversation", "A `waiting` or `closed` conversation becomes `active` again, with the caller (an admin's key: `agent_id`, else its last agent).", &["`invalid_state` (open or active)", "`at_capacity` (the agent holds its capacity)"]);
    action::<Close>(api, &view, "Close a conversation", "Resolved: it frees its agent; a later customer message reopens it. The body, if any, is `{}`.", &["`invalid_state` (already closed)"]);
    action::<Link>(api, &view, "Link a conversation to a known contact", "The customer's address moves to `contact_id` (422 `unknown_contact` if there is none), so later conversations from it attach there too; its opt-out stays with the address.", &[]);
    reply(api);
    contacts(api);
}

/// `POST /api/conversations/{id}/{action}` for body `B`, answering the
/// conversation as changed.
fn action<B: ActionBody + ToSchema>(
    api: &mut Api,
    view: &RefOr<Schema>,
    summary: &str,
    rules: &str,
    conflicts: &[&str],
) {
    let body = api.schema::<B>();
    let path = format!("/api/conversations/{{id}}/{}", B::ACTION);
    let conflicts: Vec<&str> = conflicts.iter().copied().chain([CHANGED]).collect();
    api.add(
        Op::post(&path, &format!("{}_conversation", B::ACTION), summary)
            .tag(TAG)
            .access(Access::Key(READERS))
            .describe(&format!("{rules} Agents act for themselves; the body may be left empty when it has nothing to say."))
            .body(body)
            .answers(200, "The conversation as changed.", view.clone())
            .fails(403, NOT_YOURS)
            .fails(409, &format!("The conversation cannot take this now: {}", conflicts.join("; "))),
    );
}

fn reply(api: &mut Api) {
    let body = api.schema::<Reply>();
    let message = api.schema::<Message>();
    api.add(
        Op::post("/api/conversations/{id}/messages", "reply", "Reply to the customer")
            .tag(TAG)
            .access(Access::Key(READERS))
            .describe("Free-form `text` (up to 1,600 characters on every channel, 422 `text_too_long`) with `attachments` where the channel sends agents' attachments (never on SMS: 422 `attachments_not_supported`; 422 `attachments_not_allowed` where the channel's `agent_attachments` is off), or a `template_id` rendered for the conversation's channel (422 `missing_placeholder` names the field that gives a missing value; on WhatsApp only an approved version with a Content SID goes out). Free-form replies go out within the channel's window after the customer's last message (`reply_window_closes_at`); after it, WhatsApp takes templates only. The reply is recorded before it is sent: if the provider's answer never came it stays in the conversation with status `unknown`.")
            .body(body)
            .answers(201, "Sent: the message as the conversation shows it, with the provider's id and first status.", message)
            .fails(403, NOT_YOURS)
            .fails(409, "`reply_window_closed`: the channel's window for free-form messages closed (checked before the provider is called, or said by the provider: Twilio 63016, Graph 10/2018278); `error.window_closed_at` says when. On WhatsApp, send an approved template. Also `invalid_state` (closed: resume it first), `channel_removed` (the workstream no longer has the channel).")
            .fails(429, "`provider_rate_limited`: the provider is rate limiting the account; nothing was sent. Retry after `Retry-After` seconds.")
            .answer_header(429, "retry-after", "Seconds to wait before retrying.")
            .fails(502, "The provider refused the message (`provider_rejected`), could not be reached (`provider_unreachable`: not sent), or did not answer (`provider_outcome_unknown`: it may have reached the customer; the conversation shows it as `unknown`, check before sending again)."),
    );
}

fn contacts(api: &mut Api) {
    Resource::<Contact>::new("/api/contacts", "Contacts", "contact")
        .lists(|op| {
            let q = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(contacts::MAX_QUERY_CHARS));
            op.query("q", RefOr::T(q.into()), "Part of a contact's name or of one of its addresses, any case; a phone number matches typed with or without `+`, spaces or dashes.")
                .describe(&format!("With `q`, only the contacts matching it. A search looks at {} listed contacts per request, in creation order, and `next_cursor` goes on from where it stopped: a page may hold fewer matches than `limit`, even none, while `next_cursor` is there. Follow it to the end and no listed contact is missed. Contacts made by a customer's first message or an outbound send are in no list: `q` finds them as a whole address (a whole number, however typed), at the start of the first page. A blank or longer `q` is 422.", contacts::SEARCH_WINDOW))
        })
        .describe(api);
    let read = api.schema::<ContactRead>();
    api.add(
        Op::get("/api/contacts/{id}", "read_contact", "Read a contact and its addresses' opt-outs")
            .tag("Contacts")
            .access(Access::Key(<Contact as switchboard_core::config::Resource>::READERS))
            .describe("Each address the customer wrote from, with `opted_out_at` when they sent STOP on that channel (START or a new message in again lifts it).")
            .answers(200, "The contact.", read),
    );
    let activity = api.schema::<Activity>();
    api.add(
        Op::get(
            "/api/contacts/{id}/timeline",
            "contact_timeline",
            "A contact's timeline",
        )
        .tag("Contacts")
        .access(Access::Key(TIMELINE_READERS))
        .describe(
            "The outbound messages sent to the contact with `show_on_timeline`, newest first.",
        )
        .paged()
        .answers(
            200,
            "A page of the contact's activities, newest first.",
            page(activity),
        ),
    );
}

/// The `state` filter's values, as the core spells them.
fn states() -> RefOr<Schema> {
    RefOr::T(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(State::NAMES.iter().copied()))
            .into(),
    )
}
