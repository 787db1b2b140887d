//! Recovery sweeps (issue 13 point 3, SPEC.md R-OPS-4, ARCHITECTURE.md
//! principle 7), through the real `.wasm` on the dev host with its fault
//! injection: for each request that writes, a fault-free run on a fresh
//! site counts its steps `n` (key-value operations) and provider requests
//! `m`; then, for every step and fault kind, a fresh site runs the request
//! with the fault, recovers as the provider or the flow would (the same
//! webhook redelivered, the same call retried with the same
//! `Idempotency-Key`, dispatch called again; at once, then after moving the
//! clock past the leases, up to three times), and checks what a user would
//! see through the API and the provider simulators:
//!
//! - a customer's message is stored exactly once and shows in its one
//!   conversation; a status report lands;
//! - the conversation still accepts changes (an agent or admin acts on it,
//!   the customer writes again);
//! - agents' capacity holds as routing sees it (an agent with room gets
//!   new customers, a full one does not: a probe run before anything reads
//!   the agent, since reading `GET /api/agents/{id}` recounts), and its
//!   `load` equals the conversations it holds active;
//! - nobody is sent a message twice; what the app reports as sent reached
//!   the provider once; what it could not know is `unknown`; every contact
//!   of a call or job has a result, and the job finishes;
//! - a configuration save either holds its unique name or left it free;
//! - a new Messenger customer's conversation and contact both carry the
//!   name Graph has for them, or (when the fault cut naming off after the
//!   message was stored) neither does; Graph is asked once;
//! - a customer's STOP, once accepted, keeps outbound messages from them;
//! - a Facebook page ends up connected to the account that saved it, once.
//!
//! Un-keyed outbound calls are not retried: without an `Idempotency-Key`
//! (R-OUT-6) a retry is a new send; their sweep checks that the one call
//! sends nobody twice, reports truthfully, and leaves nothing stuck.
//!
//! Agent replies are retried as the agent's console would: only while the
//! conversation does not show the reply (a reply shown as `unknown` is not
//! sent again; replies take no `Idempotency-Key`).
//!
//! Each test prints `recovery sweep <request>: <cases> cases (...)` per
//! request and a total, and fails listing the broken cases grouped by
//! request and cause. To look at cases: `RECOVERY_ONLY=crash@3,store-error@7`
//! runs only those faults of each sweep, `RECOVERY_VERBOSE=1` shows whole
//! answers; `RECOVERY_CONCURRENCY` (4) and `RECOVERY_REQUEST_TIMEOUT_SECS`
//! (30) tune the run.

use devhost::Fault;
use e2e::channels::{sms_flow_of, APP_SECRET, PLAIN_PAGE, PLAIN_TOKEN, TAGGED_PAGE};
use e2e::desk::AgentKey;
use e2e::recovery::{
    clip, conclude, dispatch_call, json_difference, retry, run_sweep, Answer, Call, Kind, Outcome,
    Provider, Site, SweepReport, SPARE_NUMBER,
};
use e2e::whatsapp::{message_params, BUSINESS_NUMBER};
use serde_json::{json, Value};
use std::time::Duration;

const STORE: &[Kind] = &Kind::STORE;
const ALL: &[Kind] = &[
    Kind::StoreError,
    Kind::Crash,
    Kind::HttpError,
    Kind::HttpTimeout,
];

fn messages(conversation: &Value) -> Vec<Value> {
    conversation["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn with_pmid(conversation: &Value, pmid: &str) -> usize {
    messages(conversation)
        .iter()
        .filter(|m| m["provider_message_id"] == pmid)
        .count()
}

/// The customer's one conversation on `provider`, or the problem.
async fn the_conversation(
    site: &Site,
    provider: Provider,
    customer: &str,
    out: &mut Outcome,
) -> Option<Value> {
    match site.conversations_of(provider, customer).await {
        Ok(found) if found.len() == 1 => found.into_iter().next(),
        Ok(found) if found.is_empty() => {
            out.problem(
                "lost",
                format!("no conversation with {customer} on {}", provider.channel()),
            );
            None
        }
        Ok(found) => {
            out.problem(
                "duplicate-conversation",
                format!(
                    "{} conversations with {customer} on {}",
                    found.len(),
                    provider.channel()
                ),
            );
            found.into_iter().next()
        }
        Err(error) => {
            out.problem("unreadable", error);
            None
        }
    }
}

/// The conversation still accepts changes once the leases are past: what
/// its state allows is done by `agent` (accept an open one, close an active
/// one, resume a parked one) and answers 200; then, with `next_message`,
/// the customer writes again and that message is stored once.
async fn still_changes(
    site: &Site,
    provider: Provider,
    conversation_id: &str,
    agent: &AgentKey,
    next_message: Option<(&str, &str)>,
    out: &mut Outcome,
) {
    site.past_leases();
    let path = format!("/api/conversations/{conversation_id}");
    let current = match site.read(site.admin(), &path).await {
        Ok(current) => current,
        Err(error) => return out.problem("unreadable", error),
    };
    let state = current["state"].as_str().unwrap_or_default().to_owned();
    let holder = current["agent_id"].as_str().unwrap_or_default().to_owned();
    // The holder acts on its own conversation; anything else is the admin's
    // (for `agent`), so that queue membership does not get in the way.
    let (action, key, body) = match state.as_str() {
        "active" if holder == agent.id => ("close", agent.key.as_str(), json!({})),
        "active" => ("close", site.admin(), json!({})),
        "open" => ("accept", site.admin(), json!({"agent_id": agent.id})),
        _ => ("resume", site.admin(), json!({"agent_id": agent.id})),
    };
    let change = Call::new("POST", &format!("{path}/{action}"))
        .bearer(key)
        .json(&body);
    let changed = site.send(&change, None).await;
    if changed.status != 200 {
        out.problem(
            "conversation-stuck",
            format!(
                "after the leases, {action} of the {state} conversation answered {} ({})",
                changed.brief(),
                clip(&changed.body, 200)
            ),
        );
    }
    if let Some((message_id, customer)) = next_message {
        let again = site.inbound(provider, customer, message_id, "One more thing");
        let answer = site.send(&again, None).await;
        if !answer.ok() {
            out.problem(
                "customer-cut-off",
                format!("the customer's next message answered {}", answer.brief()),
            );
        } else if let Ok(read) = site.read(site.admin(), &path).await {
            if with_pmid(&read, message_id) != 1 {
                out.problem(
                    "customer-cut-off",
                    format!(
                        "the customer's next message shows {} time(s) in the conversation",
                        with_pmid(&read, message_id)
                    ),
                );
            }
        }
    }
}

/// Capacity as routing sees it, before anything recounts it: with `active`
/// conversations of its `capacity`, the agent (alone in the fallback queue,
/// and available) gets exactly `capacity - active` of as many new customers
/// plus one, the last waits in the queue. Then the admin closes them all
/// again (two passes: a close lets the agent pull the waiting one), so the
/// checks that follow see the site as the case left it.
async fn capacity_probe(
    site: &Site,
    provider: Provider,
    agent: &AgentKey,
    capacity: usize,
    out: &mut Outcome,
) {
    let active = match site
        .read(
            site.admin(),
            &format!(
                "/api/conversations?agent={}&state=active&limit=200",
                agent.id
            ),
        )
        .await
    {
        Ok(page) => page["items"].as_array().map_or(0, Vec::len),
        Err(error) => return out.problem("unreadable", error),
    };
    if active > capacity {
        out.problem(
            "over-capacity",
            format!("the agent holds {active} active conversations, capacity {capacity}"),
        );
        return;
    }
    let free = capacity - active;
    let mut probes = Vec::new();
    for i in 0..=free {
        let n = 500 + i as u32;
        let customer = provider.customer(n);
        let hello = site.inbound(provider, &customer, &provider.message_id(n), "Hi there");
        let answer = site.send(&hello, None).await;
        if !answer.ok() {
            return out.problem(
                "customer-cut-off",
                format!("a new customer's first message answered {}", answer.brief()),
            );
        }
        let Ok(found) = site.conversations_of(provider, &customer).await else {
            return out.problem("unreadable", "a new customer's conversation");
        };
        let Some(conversation) = found.into_iter().next() else {
            return out.problem("lost", "a new customer's conversation is missing");
        };
        let assigned =
            conversation["state"] == "active" && conversation["agent_id"] == agent.id.as_str();
        if i < free && !assigned {
            out.problem(
                "load-too-high",
                format!(
                    "with {active} of {capacity} conversations the agent did not get new customer {} of {free} (the conversation is {} with agent {})",
                    i + 1,
                    conversation["state"],
                    conversation["agent_id"]
                ),
            );
        }
        if i == free && assigned {
            out.problem(
                "over-capacity",
                format!(
                    "the agent already held {active} of {capacity} conversations and got {} more",
                    free + 1
                ),
            );
        }
        probes.push(conversation["id"].as_str().unwrap_or_default().to_owned());
    }
    for _ in 0..2 {
        for id in &probes {
            let close = Call::new("POST", &format!("/api/conversations/{id}/close"))
                .bearer(site.admin())
                .json(&json!({}));
            site.send(&close, None).await;
        }
    }
}

async fn loads(site: &Site, agents: &[&AgentKey], when: &str, out: &mut Outcome) {
    for mut problem in site.load_problems(agents).await {
        problem.detail = format!("{when}: {}", problem.detail);
        out.problems.push(problem);
    }
}

// ================================================================ inbound

/// A new Messenger customer is named (issue 15): after recovery the
/// conversation's `profile_name` and the contact's `name` are both Graph's
/// name for them (`name`), or neither is and the contact keeps the address.
/// Neither only when the fault may have cut naming off: `may_be_unnamed`
/// says the faulted request stored the message (no later request asked
/// Graph). Graph is asked once.
async fn named_once(
    site: &Site,
    customer: &str,
    name: &str,
    conversation: &Value,
    may_be_unnamed: bool,
    out: &mut Outcome,
) {
    let reads = site.profile_reads(customer);
    if reads > 1 {
        out.problem(
            "asked-twice",
            format!("Graph was asked {reads} times for {customer}'s profile"),
        );
    }
    let path = format!(
        "/api/contacts/{}",
        conversation["contact_id"].as_str().unwrap_or_default()
    );
    let contact = match site.read(site.admin(), &path).await {
        Ok(contact) => contact,
        Err(error) => return out.problem("unreadable", error),
    };
    let seen = (&conversation["profile_name"], &contact["name"]);
    let named = *seen.0 == name && *seen.1 == name;
    let unnamed = seen.0.is_null() && *seen.1 == customer;
    if named || (unnamed && may_be_unnamed) {
        return;
    }
    let (cause, expected) = if unnamed {
        ("unnamed", format!("both {name:?}"))
    } else {
        (
            "misnamed",
            format!("both {name:?}, or none and the contact {customer:?}"),
        )
    };
    out.problem(
        cause,
        format!(
            "{customer}: the conversation's profile_name is {}, the contact's name {} ({} profile read(s)); expected {expected}",
            seen.0, seen.1, reads
        ),
    );
}

/// A customer's message on `provider`, opening a conversation or (with
/// `existing`) on one the customer opened before.
async fn inbound_case(provider: Provider, existing: bool, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let ann = site
        .agent(
            "Ann",
            2,
            &["general", "billing", "escalations"],
            "available",
        )
        .await;
    let customer = provider.customer(1);
    let first_id = provider.message_id(1);
    if existing {
        let first = site.inbound(provider, &customer, &first_id, "Hello");
        let answer = site.send(&first, None).await;
        if !answer.ok() {
            out.problem("setup", format!("first message: {}", answer.brief()));
            return out;
        }
    }
    let message_id = provider.message_id(2);
    let call = site.inbound(provider, &customer, &message_id, "My parcel never arrived");
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    let asked = site.profile_reads(&customer);
    redeliver_until_stored(&site, &call, &answer, "message", &mut out).await;
    let Some(conversation) = the_conversation(&site, provider, &customer, &mut out).await else {
        return out;
    };
    if let Some(name) = provider.customer_name(1) {
        let cut_off = !existing && fault.is_some() && site.profile_reads(&customer) == asked;
        named_once(&site, &customer, &name, &conversation, cut_off, &mut out).await;
    }
    match with_pmid(&conversation, &message_id) {
        1 => {}
        0 => out.problem("lost", "the message is not in the conversation"),
        n => out.problem("duplicate", format!("the message is stored {n} times")),
    }
    if existing && with_pmid(&conversation, &first_id) != 1 {
        out.problem(
            "duplicate",
            format!(
                "the earlier message shows {} time(s)",
                with_pmid(&conversation, &first_id)
            ),
        );
    }
    capacity_probe(&site, provider, &ann, 2, &mut out).await;
    loads(&site, &[&ann], "after recovery", &mut out).await;
    let id = conversation["id"].as_str().unwrap_or_default().to_owned();
    let next = provider.message_id(3);
    still_changes(
        &site,
        provider,
        &id,
        &ann,
        Some((&next, &customer)),
        &mut out,
    )
    .await;
    loads(&site, &[&ann], "after a later change", &mut out).await;
    out
}

/// One Messenger delivery with two customers' messages: a fault may stop it
/// between the two, and the redelivery stores the rest, each once.
async fn messenger_batch_case(fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let provider = Provider::Facebook;
    let site = Site::open().await;
    let ann = site
        .agent(
            "Ann",
            3,
            &["general", "billing", "escalations"],
            "available",
        )
        .await;
    let customers = [provider.customer(1), provider.customer(2)];
    let ids = [provider.message_id(2), provider.message_id(4)];
    let call = site.messenger_batch(&[
        (&customers[0], &ids[0], "My parcel never arrived"),
        (&customers[1], &ids[1], "Where is my refund?"),
    ]);
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    let asked: Vec<usize> = customers.iter().map(|c| site.profile_reads(c)).collect();
    redeliver_until_stored(&site, &call, &answer, "batch", &mut out).await;
    let mut conversations = Vec::new();
    for (n, (customer, id)) in customers.iter().zip(&ids).enumerate() {
        let Some(conversation) = the_conversation(&site, provider, customer, &mut out).await else {
            continue;
        };
        let name = provider.customer_name(n as u32 + 1).unwrap_or_default();
        let cut_off = fault.is_some() && site.profile_reads(customer) == asked[n];
        named_once(&site, customer, &name, &conversation, cut_off, &mut out).await;
        match with_pmid(&conversation, id) {
            1 => {}
            0 => out.problem(
                "lost",
                format!("{customer}'s message is not in the conversation"),
            ),
            n => out.problem(
                "duplicate",
                format!("{customer}'s message is stored {n} times"),
            ),
        }
        conversations.push(conversation["id"].as_str().unwrap_or_default().to_owned());
    }
    capacity_probe(&site, provider, &ann, 3, &mut out).await;
    loads(&site, &[&ann], "after recovery", &mut out).await;
    for (n, id) in conversations.iter().enumerate() {
        let next = provider.message_id(10 + n as u32);
        still_changes(
            &site,
            provider,
            id,
            &ann,
            Some((&next, &customers[n])),
            &mut out,
        )
        .await;
    }
    loads(&site, &[&ann], "after a later change", &mut out).await;
    out
}

#[tokio::test]
async fn inbound_messages_survive_a_fault_at_any_step() {
    let mut reports: Vec<SweepReport> = Vec::new();
    for provider in Provider::ALL {
        for existing in [false, true] {
            let name = format!(
                "inbound {} ({} conversation)",
                provider.name(),
                if existing { "existing" } else { "new" }
            );
            reports.push(
                run_sweep(&name, STORE, |fault| {
                    inbound_case(provider, existing, fault)
                })
                .await,
            );
        }
    }
    reports.push(
        run_sweep(
            "inbound facebook (one delivery, two customers)",
            STORE,
            messenger_batch_case,
        )
        .await,
    );
    conclude("inbound", &reports);
}

/// A customer's STOP on SMS, opening a conversation or on one the customer
/// opened before: once the provider's delivery is accepted, the message
/// shows once and outbound messages skip the address (R-IN-8).
async fn stop_case(existing: bool, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let provider = Provider::Telesign;
    let site = Site::open().await;
    let customer = provider.customer(1);
    if existing {
        let hello = site.inbound(provider, &customer, &provider.message_id(1), "Hello");
        let answer = site.send(&hello, None).await;
        if !answer.ok() {
            out.problem("setup", format!("first message: {}", answer.brief()));
            return out;
        }
    }
    let stop_id = provider.message_id(2);
    let call = site.inbound(provider, &customer, &stop_id, "STOP");
    deliver_until_stored(&site, &call, fault, "STOP", &mut out).await;
    if let Some(conversation) = the_conversation(&site, provider, &customer, &mut out).await {
        match with_pmid(&conversation, &stop_id) {
            1 => {}
            0 => out.problem("lost", "the STOP is not in the conversation"),
            n => out.problem("duplicate", format!("the STOP is stored {n} times")),
        }
    }
    let (config, flow) = sms_flow_of(&site.gateway, site.admin(), false).await;
    let mut to_customer = contact(1);
    to_customer["tocontactid"] = json!(customer);
    let sent = site
        .send(
            &Call::new("POST", &format!("/api/outbound/{config}/send"))
                .bearer(&flow)
                .json(&json!({"ContactList": [to_customer]})),
            None,
        )
        .await;
    let result = sent.json()["results"][0].clone();
    if sent.status != 200
        || result["status"] != "skipped"
        || result["reason"]["code"] != "opted_out"
    {
        out.problem(
            "stop-lost",
            format!(
                "an outbound message after the accepted STOP answered {}: {}",
                sent.brief(),
                clip(&result.to_string(), 300)
            ),
        );
    }
    out
}

#[tokio::test]
async fn a_stop_is_kept_whatever_fails() {
    let mut reports = Vec::new();
    for existing in [false, true] {
        let name = format!(
            "STOP on sms ({} conversation)",
            if existing { "existing" } else { "new" }
        );
        reports.push(run_sweep(&name, STORE, |fault| stop_case(existing, fault)).await);
    }
    conclude("STOP", &reports);
}

// ================================================================ status

/// Sends a provider's callback with `fault`, then redelivers it as the
/// provider would until it is accepted; a callback never accepted is a
/// problem (`what` names it).
async fn deliver_until_stored(
    site: &Site,
    call: &Call,
    fault: Option<Fault>,
    what: &str,
    out: &mut Outcome,
) {
    let answer = site.send(call, fault).await;
    out.faulted(&answer, fault);
    redeliver_until_stored(site, call, &answer, what, out).await;
}

/// [`deliver_until_stored`] after the first (faulted) `answer`.
async fn redeliver_until_stored(
    site: &Site,
    call: &Call,
    answer: &Answer,
    what: &str,
    out: &mut Outcome,
) {
    if !answer.ok() {
        let (settled, last) = retry(site, call, out, async |a: &Answer| a.ok()).await;
        if !settled {
            out.problem(
                "redelivery-refused",
                format!(
                    "every redelivery of the {what} was refused, the last with {}",
                    last.map(|a| clip(&a.body, 200)).unwrap_or_default()
                ),
            );
        }
    }
}

/// After recovery: Ann's load is right, the conversation still takes a
/// change, and her load is right after that too.
async fn still_sound(site: &Site, provider: Provider, id: &str, ann: &AgentKey, out: &mut Outcome) {
    loads(site, &[ann], "after recovery", out).await;
    still_changes(site, provider, id, ann, None, out).await;
    loads(site, &[ann], "after a later change", out).await;
}

/// A site where Ann is available and the customer said hello on
/// `provider`; returns Ann and the conversation id.
async fn greeted(
    site: &Site,
    provider: Provider,
    customer: &str,
    out: &mut Outcome,
) -> Option<(AgentKey, String)> {
    let ann = site
        .agent(
            "Ann",
            5,
            &["general", "billing", "escalations"],
            "available",
        )
        .await;
    let hello = site.inbound(provider, customer, &provider.message_id(1), "Hello");
    let answer = site.send(&hello, None).await;
    if !answer.ok() {
        out.problem("setup", format!("customer message: {}", answer.brief()));
        return None;
    }
    let conversation = the_conversation(site, provider, customer, out).await?;
    let id = conversation["id"].as_str().unwrap_or_default().to_owned();
    Some((ann, id))
}

/// A site where the customer wrote on `provider` and Ann replied; returns
/// Ann, the conversation id and the reply's provider message id.
async fn replied(
    site: &Site,
    provider: Provider,
    customer: &str,
    out: &mut Outcome,
) -> Option<(AgentKey, String, String)> {
    let (ann, id) = greeted(site, provider, customer, out).await?;
    let reply = Call::new("POST", &format!("/api/conversations/{id}/messages"))
        .bearer(&ann.key)
        .json(&json!({"text": "We are on it"}));
    let sent = site.send(&reply, None).await;
    if sent.status != 201 {
        out.problem("setup", format!("reply: {}", sent.brief()));
        return None;
    }
    let pmid = sent.json()["provider_message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Some((ann, id, pmid))
}

async fn status_case(provider: Provider, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let customer = provider.customer(1);
    let Some((ann, id, pmid)) = replied(&site, provider, &customer, &mut out).await else {
        return out;
    };
    let call = site.delivered(provider, &customer, &pmid);
    deliver_until_stored(&site, &call, fault, "status", &mut out).await;
    match site
        .read(site.admin(), &format!("/api/conversations/{id}"))
        .await
    {
        Ok(conversation) => {
            let ours: Vec<Value> = messages(&conversation)
                .into_iter()
                .filter(|m| m["provider_message_id"] == pmid.as_str())
                .collect();
            if ours.len() != 1 {
                out.problem(
                    "duplicate",
                    format!("the reply shows {} time(s)", ours.len()),
                );
            } else if ours[0]["status"] != "delivered" {
                out.problem(
                    "status-lost",
                    format!(
                        "the reply's status is {} after the report was accepted, not \"delivered\"",
                        ours[0]["status"]
                    ),
                );
            }
            if with_pmid(&conversation, &provider.message_id(1)) != 1 {
                out.problem("duplicate", "the customer's message does not show once");
            }
        }
        Err(error) => out.problem("unreadable", error),
    }
    still_sound(&site, provider, &id, &ann, &mut out).await;
    out
}

#[tokio::test]
async fn status_callbacks_survive_a_fault_at_any_step() {
    let mut reports = Vec::new();
    for provider in Provider::ALL {
        let name = format!("status callback {}", provider.name());
        reports.push(run_sweep(&name, STORE, |fault| status_case(provider, fault)).await);
    }
    reports.push(
        run_sweep(
            "status callback telesign (outbound activity)",
            STORE,
            activity_status_case,
        )
        .await,
    );
    conclude("status callbacks", &reports);
}

/// TeleSign's delivery report for an outbound (flow) message: it moves the
/// message's activity, not a conversation.
async fn activity_status_case(fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let (config, flow) = sms_flow_of(&site.gateway, site.admin(), false).await;
    let sent = site
        .send(
            &Call::new("POST", &format!("/api/outbound/{config}/send"))
                .bearer(&flow)
                .json(&json!({"ContactList": [contact(1)]})),
            None,
        )
        .await;
    let result = sent.json()["results"][0].clone();
    if sent.status != 200 || result["status"] != "sent" {
        out.problem("setup", format!("outbound send: {}", sent.brief()));
        return out;
    }
    let reference = result["provider_message_id"].as_str().unwrap_or_default();
    let activity = format!(
        "/api/outbound/activities/{}",
        result["activity_id"].as_str().unwrap_or_default()
    );
    let call = site.delivered(Provider::Telesign, &number(1), reference);
    deliver_until_stored(&site, &call, fault, "report", &mut out).await;
    match site.read(&flow, &activity).await {
        Ok(read) if read["status"] == "delivered" => {}
        Ok(read) => out.problem(
            "status-lost",
            format!(
                "the activity's status is {} after the report was accepted, not \"delivered\"",
                read["status"]
            ),
        ),
        Err(error) => out.problem("unreadable", error),
    }
    // The customer's answer still lands, after the outbound message.
    let reply = site.inbound(
        Provider::Telesign,
        &number(1),
        &Provider::Telesign.message_id(7),
        "Thanks",
    );
    let answered = site.send(&reply, None).await;
    if !answered.ok() {
        out.problem(
            "customer-cut-off",
            format!("the customer's answer was refused: {}", answered.brief()),
        );
    }
    out
}

// ================================================================ agents

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Accept,
    TransferToQueue,
    TransferToAgent,
    Wait,
    Close,
    Resume,
    Presence,
}

impl Action {
    const ALL: [Action; 7] = [
        Action::Accept,
        Action::TransferToQueue,
        Action::TransferToAgent,
        Action::Wait,
        Action::Close,
        Action::Resume,
        Action::Presence,
    ];

    fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::TransferToQueue => "transfer to a queue",
            Action::TransferToAgent => "transfer to an agent",
            Action::Wait => "wait",
            Action::Close => "close",
            Action::Resume => "resume",
            Action::Presence => "presence change",
        }
    }
}

/// WhatsApp: Ann (general, capacity 2) and Bob (escalations, capacity 2);
/// the action by Ann on the conversation of customer 1 (for `presence`,
/// Ann comes online while customers 1 and 2 wait).
async fn action_case(action: Action, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let provider = Provider::Twilio;
    let site = Site::open().await;
    let ann_online = !matches!(action, Action::Accept | Action::Presence);
    let ann = site
        .agent(
            "Ann",
            2,
            &["general"],
            if ann_online { "available" } else { "offline" },
        )
        .await;
    let bob = site.agent("Bob", 2, &["escalations"], "available").await;
    let customers: Vec<String> = (1..=2).map(|n| provider.customer(n)).collect();
    let waiting = if action == Action::Presence { 2 } else { 1 };
    let mut ids = Vec::new();
    for (n, customer) in customers.iter().take(waiting).enumerate() {
        let hello = site.inbound(
            provider,
            customer,
            &provider.message_id(n as u32 + 1),
            "Hello",
        );
        let answer = site.send(&hello, None).await;
        if !answer.ok() {
            out.problem("setup", format!("customer message: {}", answer.brief()));
            return out;
        }
        let Some(conversation) = the_conversation(&site, provider, customer, &mut out).await else {
            return out;
        };
        ids.push(conversation["id"].as_str().unwrap_or_default().to_owned());
    }
    let id = ids[0].clone();
    let act = |name: &str, body: Value| {
        Call::new("POST", &format!("/api/conversations/{id}/{name}"))
            .bearer(&ann.key)
            .json(&body)
    };
    if action == Action::Resume {
        let parked = site.send(&act("wait", json!({})), None).await;
        if parked.status != 200 {
            out.problem("setup", format!("wait: {}", parked.brief()));
            return out;
        }
    }
    let escalations = site.queue("escalations");
    let call = match action {
        Action::Accept => act("accept", json!({})),
        Action::TransferToQueue => act("transfer", json!({"queue_id": escalations})),
        Action::TransferToAgent => act("transfer", json!({"agent_id": bob.id})),
        Action::Wait => act("wait", json!({})),
        Action::Close => act("close", json!({})),
        Action::Resume => act("resume", json!({})),
        Action::Presence => Call::new("POST", &format!("/api/agents/{}/presence", ann.id))
            .bearer(&ann.key)
            .json(&json!({"presence": "available"})),
    };
    // Where the action leaves the conversation, as a user reads it.
    let landed = |conversation: &Value| -> bool {
        let (state, agent, queue) = (
            conversation["state"].as_str().unwrap_or_default(),
            conversation["agent_id"].as_str().unwrap_or_default(),
            conversation["queue_id"].as_str().unwrap_or_default(),
        );
        match action {
            Action::Accept | Action::Resume | Action::Presence => {
                state == "active" && agent == ann.id
            }
            Action::TransferToQueue => queue == escalations,
            Action::TransferToAgent => state == "active" && agent == bob.id,
            Action::Wait => state == "waiting",
            Action::Close => state == "closed",
        }
    };
    let path = format!("/api/conversations/{id}");
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    let is_done = async |answer: &Answer| -> bool {
        if action == Action::Presence {
            return answer.status == 200;
        }
        // A retry may find the first attempt's change landed (409
        // invalid_state, 403 now that someone else holds it): the
        // conversation tells.
        site.read(site.admin(), &path)
            .await
            .is_ok_and(|conversation| landed(&conversation))
    };
    let mut settled = is_done(&answer).await;
    if answer.status == 200 && !settled {
        out.problem(
            "answer-untrue",
            format!("{} answered 200 but the change is not there", action.name()),
        );
    }
    if !settled {
        let (done, last) = retry(&site, &call, &mut out, is_done).await;
        settled = done;
        if !done {
            out.problem(
                "action-never-lands",
                format!(
                    "{} retried {} times, the last answered {}",
                    action.name(),
                    e2e::recovery::LATE_RETRIES + 1,
                    last.map(|a| format!("{} {}", a.brief(), clip(&a.body, 160)))
                        .unwrap_or_default()
                ),
            );
        }
    }
    // Every conversation lands where the action puts it.
    if settled && action == Action::Presence {
        for (n, id) in ids.iter().enumerate() {
            match site
                .read(site.admin(), &format!("/api/conversations/{id}"))
                .await
            {
                Ok(conversation) if landed(&conversation) => {}
                Ok(conversation) => out.problem(
                    "left-waiting",
                    format!(
                        "Ann came online with capacity 2 but customer {}'s conversation is {} with agent {}",
                        n + 1,
                        conversation["state"],
                        conversation["agent_id"]
                    ),
                ),
                Err(error) => out.problem("unreadable", error),
            }
        }
    }
    for (n, id) in ids.iter().enumerate() {
        if let Ok(conversation) = site
            .read(site.admin(), &format!("/api/conversations/{id}"))
            .await
        {
            if with_pmid(&conversation, &provider.message_id(n as u32 + 1)) != 1 {
                out.problem("duplicate", "the customer's message does not show once");
            }
        }
    }
    if action != Action::Accept {
        capacity_probe(&site, provider, &ann, 2, &mut out).await;
    }
    loads(&site, &[&ann, &bob], "after recovery", &mut out).await;
    // The conversation still changes, by whoever holds it now.
    let holder = match site.read(site.admin(), &path).await {
        Ok(conversation) if conversation["agent_id"] == bob.id.as_str() => &bob,
        _ => &ann,
    };
    let next = provider.message_id(9);
    still_changes(
        &site,
        provider,
        &id,
        holder,
        Some((&next, &customers[0])),
        &mut out,
    )
    .await;
    loads(&site, &[&ann, &bob], "after a later change", &mut out).await;
    out
}

#[tokio::test]
async fn agent_actions_survive_a_fault_at_any_step() {
    let mut reports = Vec::new();
    for action in Action::ALL {
        reports.push(run_sweep(action.name(), STORE, |fault| action_case(action, fault)).await);
    }
    conclude("agent actions", &reports);
}

/// Bob (escalations) joins `general`, where Ann (capacity 1) is full, with
/// a fault at the step given; the admin retries until Bob shows the queue.
/// Then a new customer's conversation goes to Bob: whatever the join left
/// (a member slot taken and never written, the queue's kept members
/// written or not), routing finds the agent who joined.
async fn join_case(fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let provider = Provider::Twilio;
    let site = Site::open().await;
    let ann = site.agent("Ann", 1, &["general"], "available").await;
    let bob = site.agent("Bob", 2, &["escalations"], "available").await;
    let hello = |n: u32| {
        site.inbound(
            provider,
            &provider.customer(n),
            &provider.message_id(n),
            "Hello",
        )
    };
    let first = site.send(&hello(1), None).await;
    if !first.ok() {
        out.problem("setup", format!("customer message: {}", first.brief()));
        return out;
    }
    let general = site.queue("general");
    let path = format!("/api/agents/{}", bob.id);
    let call = Call::new("PATCH", &path)
        .bearer(site.admin())
        .json(&json!({"queues": [general, site.queue("escalations")]}));
    let joined = async || -> bool {
        site.read(site.admin(), &path).await.is_ok_and(|agent| {
            agent["queues"]
                .as_array()
                .is_some_and(|queues| queues.iter().any(|q| q == general.as_str()))
        })
    };
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    if answer.ok() && !joined().await {
        out.problem(
            "answer-untrue",
            format!("the join answered {} but does not show", answer.brief()),
        );
    }
    if !joined().await {
        let (done, last) = retry(&site, &call, &mut out, async |a: &Answer| {
            a.ok() && joined().await
        })
        .await;
        if !done {
            out.problem(
                "join-never-lands",
                format!(
                    "every retry failed, the last with {}",
                    last.map(|a| a.brief()).unwrap_or_default()
                ),
            );
            return out;
        }
    }
    let second = site.send(&hello(2), None).await;
    if !second.ok() {
        out.problem(
            "lost",
            format!("the next customer's message: {}", second.brief()),
        );
        return out;
    }
    if let Some(conversation) =
        the_conversation(&site, provider, &provider.customer(2), &mut out).await
    {
        if conversation["agent_id"] != bob.id.as_str() {
            out.problem(
                "member-missed",
                format!(
                    "Bob joined general with room while Ann is full, but the next conversation is {} with agent {}",
                    conversation["state"], conversation["agent_id"]
                ),
            );
        }
    }
    loads(&site, &[&ann, &bob], "after the join", &mut out).await;
    out
}

#[tokio::test]
async fn an_agent_joining_a_queue_is_routed_to_whatever_fails() {
    let report = run_sweep("agent joins a queue", STORE, join_case).await;
    conclude("queue membership", &[report]);
}

// ================================================================ replies

const REPLY: &str = "Your refund is on its way";

/// Ann's reply on `provider`, retried as her console would: only while the
/// conversation does not show it.
async fn reply_case(provider: Provider, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let customer = provider.customer(1);
    let Some((ann, id)) = greeted(&site, provider, &customer, &mut out).await else {
        return out;
    };
    let path = format!("/api/conversations/{id}");
    let call = Call::new("POST", &format!("{path}/messages"))
        .bearer(&ann.key)
        .json(&json!({"text": REPLY}));
    let shown = async || -> Vec<Value> {
        site.read(site.admin(), &path)
            .await
            .map(|conversation| {
                messages(&conversation)
                    .into_iter()
                    .filter(|m| m["author"] == "agent" && m["text"] == REPLY)
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = site.provider_requests(provider);
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    out.http = (site.provider_requests(provider) - before) as u64;
    if answer.status != 201 && shown().await.is_empty() {
        retry(&site, &call, &mut out, async |a: &Answer| {
            a.status == 201 || !shown().await.is_empty()
        })
        .await;
    }
    let sent = site.times_sent(provider, &customer, REPLY);
    let shown = shown().await;
    if sent > 1 {
        out.problem(
            "sent-twice",
            format!("the customer received the reply {sent} times"),
        );
    }
    if shown.len() > 1 {
        out.problem(
            "duplicate",
            format!("the conversation shows the reply {} times", shown.len()),
        );
    }
    match (sent, shown.first()) {
        (0, None) => out.problem(
            "reply-lost",
            "after the retries the reply was neither sent nor shown",
        ),
        (_, None) => out.problem(
            "sent-not-shown",
            "the customer received the reply but the conversation does not show it",
        ),
        (0, Some(message)) if !matches!(message["status"].as_str(), Some("failed" | "unknown")) => {
            out.problem(
                "shown-as-sent",
                format!(
                    "the reply never reached the provider but shows with status {}",
                    message["status"]
                ),
            )
        }
        (1, Some(message)) if message["status"] == "failed" => out.problem(
            "shown-as-failed",
            "the customer received the reply but it shows as failed (the agent would send it again)",
        ),
        _ => {}
    }
    still_sound(&site, provider, &id, &ann, &mut out).await;
    out
}

#[tokio::test]
async fn replies_survive_a_fault_at_any_step_and_are_sent_at_most_once() {
    let mut reports = Vec::new();
    for provider in Provider::ALL {
        let name = format!("reply {}", provider.name());
        reports.push(run_sweep(&name, ALL, |fault| reply_case(provider, fault)).await);
    }
    conclude("replies", &reports);
}

// ================================================================ outbound

fn number(n: usize) -> String {
    format!("+4790{n:06}")
}

fn contact(n: usize) -> Value {
    json!({"tocontactid": number(n), "channelid": "sms", "optin": true,
           "entityrelationshipname": "incident", "CustomerName": format!("Kari {n}"),
           "CaseName": format!("CAS-{n}")})
}

fn text_for(n: usize) -> String {
    format!("Hi Kari {n}, case CAS-{n} was updated.")
}

/// Checks per-contact results against what TeleSign received: nobody twice,
/// every contact with a result, `sent` only for what reached the provider,
/// `failed`/`skipped` only for what did not, `unknown` for the rest.
fn check_results(
    site: &Site,
    what: &str,
    numbers: &[usize],
    results: Option<&Vec<Value>>,
    out: &mut Outcome,
) {
    for (index, n) in numbers.iter().enumerate() {
        let received = site.times_sent(Provider::Telesign, &number(*n), &text_for(*n));
        if received > 1 {
            out.problem(
                "sent-twice",
                format!("{what}: contact {index} received the message {received} times"),
            );
        }
        let Some(results) = results else { continue };
        let Some(result) = results.iter().find(|r| r["index"] == index) else {
            out.problem(
                "no-result",
                format!("{what}: contact {index} has no result"),
            );
            continue;
        };
        let status = result["status"].as_str().unwrap_or_default();
        match (status, received) {
            ("sent", 1) | ("unknown", _) => {}
            ("sent", _) => out.problem(
                "reported-untrue",
                format!("{what}: contact {index} is reported sent but the provider never received it"),
            ),
            ("failed" | "skipped" | "not_attempted", 0) => {}
            (other, _) => out.problem(
                "reported-untrue",
                format!("{what}: contact {index} is reported {other:?} ({}) but the provider received it {received} time(s)",
                    result["reason"]["code"]),
            ),
        }
    }
}

/// A flow's call for `contacts` contacts (more than 100 make two batches,
/// which run at once: one's store steps fall while the other is sending).
async fn outbound_case(keyed: bool, contacts: usize, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let (config, flow) = sms_flow_of(&site.gateway, site.admin(), false).await;
    let numbers: Vec<usize> = (1..=contacts).collect();
    let body = json!({"ContactList": numbers.iter().map(|n| contact(*n)).collect::<Vec<_>>()});
    let send = |body: &Value, key: Option<&str>| {
        let call = Call::new("POST", &format!("/api/outbound/{config}/send"))
            .bearer(&flow)
            .json(body);
        match key {
            Some(key) => call.header("idempotency-key", key),
            None => call,
        }
    };
    let call = send(&body, keyed.then_some("flow-run-1"));
    let before = site.provider_requests(Provider::Telesign);
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    out.http = (site.provider_requests(Provider::Telesign) - before) as u64;
    let mut result = (answer.status == 200).then(|| answer.clone());
    if keyed && result.is_none() {
        let (_, last) = retry(&site, &call, &mut out, async |a: &Answer| a.status == 200).await;
        result = last.filter(|a| a.status == 200);
        if result.is_none() {
            out.problem(
                "key-stuck",
                format!(
                    "every retry with the same Idempotency-Key failed: {}",
                    out.answers.join(" → ")
                ),
            );
        }
    }
    // The same call again later (its answer got lost on the way, say)
    // gets the same answer.
    if keyed {
        if let Some(first) = &result {
            site.past_leases();
            let again = site.send(&call, None).await;
            if again.status != 200 {
                out.problem(
                    "replay-differs",
                    format!(
                        "a later retry with the key answered {} {}",
                        again.brief(),
                        clip(&again.body, 160)
                    ),
                );
            } else if let Some(difference) = json_difference(&first.json(), &again.json()) {
                out.problem(
                    "replay-differs",
                    format!("a later retry with the key answered otherwise than the call did, at {difference}"),
                );
            }
        }
    }
    if !keyed && !answer.ok() && answer.status >= 500 && answer.code().is_some() {
        let reached = numbers
            .iter()
            .filter(|n| site.times_sent(Provider::Telesign, &number(**n), &text_for(**n)) > 0)
            .count();
        if reached > 0 {
            out.problem(
                "unkeyed-error-after-send",
                format!(
                    "answered {} (a flow retries that) although {reached} contact(s) had been sent",
                    answer.brief()
                ),
            );
        }
    }
    let results = result.as_ref().map(|a| a.json()["results"].clone());
    check_results(
        &site,
        "the call",
        &numbers,
        results.as_ref().and_then(Value::as_array),
        &mut out,
    );
    // Nothing left stuck: a new call (new key) sends a new contact once.
    site.past_leases();
    let newcomer = contacts + 1;
    let next = json!({"ContactList": [contact(newcomer)]});
    let later = site
        .send(&send(&next, keyed.then_some("flow-run-2")), None)
        .await;
    if later.status != 200 {
        out.problem(
            "outbound-stuck",
            format!("a new call afterwards answered {}", later.brief()),
        );
    }
    check_results(
        &site,
        "a new call afterwards",
        &[newcomer],
        later.json()["results"].as_array(),
        &mut out,
    );
    out
}

#[tokio::test]
async fn outbound_sends_survive_a_fault_at_any_step_and_send_at_most_once() {
    let reports = vec![
        run_sweep("outbound send with Idempotency-Key", ALL, |fault| {
            outbound_case(true, 3, fault)
        })
        .await,
        // Store faults only: the provider faults of a batch are the
        // one-batch sweep's, a hundred times over.
        run_sweep(
            "outbound send with Idempotency-Key, two batches (101 contacts)",
            STORE,
            |fault| outbound_case(true, 101, fault),
        )
        .await,
        run_sweep("outbound send without Idempotency-Key", ALL, |fault| {
            outbound_case(false, 3, fault)
        })
        .await,
    ];
    conclude("outbound sends", &reports);
}

// ================================================================ dispatch

/// Two jobs are due (`sizes` contacts each); the dispatch runs with the
/// fault, then dispatch is called again until both are done.
async fn dispatch_case(sizes: &[usize], fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let (config, flow) = sms_flow_of(&site.gateway, site.admin(), false).await;
    let mut jobs: Vec<(String, Vec<usize>)> = Vec::new();
    let mut next = 1;
    for size in sizes {
        let numbers: Vec<usize> = (next..next + size).collect();
        next += size;
        let body = json!({"ContactList": numbers.iter().map(|n| contact(*n)).collect::<Vec<_>>(),
                          "delay_seconds": 60});
        let scheduled = site
            .send(
                &Call::new("POST", &format!("/api/outbound/{config}/send"))
                    .bearer(&flow)
                    .json(&body),
                None,
            )
            .await;
        if scheduled.status != 202 {
            out.problem("setup", format!("schedule: {}", scheduled.brief()));
            return out;
        }
        jobs.push((
            scheduled.json()["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            numbers,
        ));
    }
    site.gateway.app.clock().advance(Duration::from_secs(61));
    let before = site.provider_requests(Provider::Telesign);
    let answer = site.send(&dispatch_call(), fault).await;
    out.faulted(&answer, fault);
    out.http = (site.provider_requests(Provider::Telesign) - before) as u64;
    let read_jobs = async || -> Vec<Option<Value>> {
        let mut read = Vec::new();
        for (id, _) in &jobs {
            read.push(
                site.read(&flow, &format!("/api/outbound/jobs/{id}"))
                    .await
                    .ok(),
            );
        }
        read
    };
    let all_done = |read: &[Option<Value>]| {
        read.iter()
            .all(|job| job.as_ref().is_some_and(|job| job["state"] == "done"))
    };
    if !all_done(&read_jobs().await) {
        let mut failed_dispatches = Vec::new();
        let (settled, _) = retry(&site, &dispatch_call(), &mut out, async |a: &Answer| {
            if a.status != 200 {
                failed_dispatches.push(a.brief());
            }
            all_done(&read_jobs().await)
        })
        .await;
        if !failed_dispatches.is_empty() {
            out.problem(
                "dispatch-failed",
                format!(
                    "a fault-free dispatch answered {}",
                    failed_dispatches.join(", ")
                ),
            );
        }
        if !settled {
            let states: Vec<String> = read_jobs()
                .await
                .iter()
                .map(|job| {
                    job.as_ref().map_or("unreadable".to_owned(), |job| {
                        format!("{} {}", job["state"], job["progress"])
                    })
                })
                .collect();
            out.problem(
                "job-stuck",
                format!(
                    "after {} more dispatches the jobs are {}",
                    e2e::recovery::LATE_RETRIES + 1,
                    states.join(", ")
                ),
            );
        }
    }
    for ((_, numbers), job) in jobs.iter().zip(read_jobs().await) {
        let results = job
            .as_ref()
            .and_then(|job| job["results"].as_array().cloned());
        if let Some(job) = &job {
            if job["state"] == "done" && job["progress"]["pending"] != 0 {
                out.problem(
                    "no-result",
                    format!("a done job shows progress {}", job["progress"]),
                );
            }
        }
        check_results(&site, "the job", numbers, results.as_ref(), &mut out);
    }
    // Later jobs still run: one more, due now, is sent by the next dispatch.
    let body = json!({"ContactList": [contact(900)], "delay_seconds": 1});
    let scheduled = site
        .send(
            &Call::new("POST", &format!("/api/outbound/{config}/send"))
                .bearer(&flow)
                .json(&body),
            None,
        )
        .await;
    site.gateway.app.clock().advance(Duration::from_secs(2));
    let dispatched = site.send(&dispatch_call(), None).await;
    let later = site
        .read(
            &flow,
            &format!(
                "/api/outbound/jobs/{}",
                scheduled.json()["id"].as_str().unwrap_or_default()
            ),
        )
        .await;
    if dispatched.status != 200 || !later.as_ref().is_ok_and(|job| job["state"] == "done") {
        out.problem(
            "dispatch-stuck",
            format!(
                "a later job was not sent by the next dispatch ({}; job {})",
                dispatched.brief(),
                later.map_or_else(|e| e, |job| job["state"].to_string())
            ),
        );
    }
    out
}

#[tokio::test]
async fn scheduled_jobs_survive_a_fault_at_any_dispatch_step() {
    let reports = vec![
        run_sweep("dispatch of two jobs (3 + 2 contacts)", ALL, |fault| {
            dispatch_case(&[3, 2], fault)
        })
        .await,
        run_sweep("dispatch of a two-batch job (101 contacts)", ALL, |fault| {
            dispatch_case(&[101], fault)
        })
        .await,
    ];
    conclude("dispatch", &reports);
}

// ================================================================ configuration

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Save {
    Create,
    Update,
    Delete,
}

fn workstream_body(site: &Site, name: &str, address: &str) -> Value {
    json!({"name": name, "channel": "whatsapp", "fallback_queue": site.queue("general"),
           "channels": [{"account_id": site.twilio_account, "address": address, "language": "en-US"}]})
}

/// The workstreams serving `address` of the site's Twilio account.
async fn holders(site: &Site, address: &str) -> Result<Vec<String>, String> {
    let page = site
        .read(site.admin(), "/api/workstreams?limit=200")
        .await?;
    Ok(page["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|w| {
            w["channels"]
                .as_array()
                .is_some_and(|channels| channels.iter().any(|c| c["address"] == address))
        })
        .map(|w| w["id"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// A customer writing to `address` lands in a conversation of `workstream`.
async fn routes_to(site: &Site, address: &str, workstream: &str, n: u32, out: &mut Outcome) {
    let customer = Provider::Twilio.customer(100 + n);
    let mut params = message_params(
        &Provider::Twilio.message_id(100 + n),
        &customer,
        "Hello",
        &[],
    );
    for (name, value) in params.iter_mut() {
        if name == "To" {
            *value = format!("whatsapp:{address}");
        }
    }
    let call = site.twilio_form(&params);
    let answer = site.send(&call, None).await;
    if !answer.ok() {
        return out.problem(
            "name-orphaned",
            format!(
                "a message to {address} answered {} (its workstream should be {workstream})",
                answer.brief()
            ),
        );
    }
    match site.conversations_of(Provider::Twilio, &customer).await {
        Ok(found) if found.len() == 1 && found[0]["workstream_id"] == workstream => {}
        Ok(found) => out.problem(
            "name-orphaned",
            format!(
                "a message to {address} landed in {:?}, not in workstream {workstream}",
                found
                    .iter()
                    .map(|c| c["workstream_id"].clone())
                    .collect::<Vec<_>>()
            ),
        ),
        Err(error) => out.problem("unreadable", error),
    }
}

/// The name (number) is held by exactly `holder`: another workstream
/// claiming it is refused, and customers writing to it reach `holder`.
async fn held_by(site: &Site, address: &str, holder: &str, n: u32, out: &mut Outcome) {
    let second = Call::new("POST", "/api/workstreams")
        .bearer(site.admin())
        .json(&workstream_body(site, "Intruder", address));
    let answer = site.send(&second, None).await;
    if !matches!(answer.status, 409 | 422) {
        out.problem(
            "name-not-held",
            format!(
                "a second workstream claiming {address} answered {}",
                answer.brief()
            ),
        );
    }
    routes_to(site, address, holder, n, out).await;
}

/// The name (number) is free: a new workstream takes it, after the leases.
async fn free(site: &Site, address: &str, n: u32, out: &mut Outcome) {
    site.past_leases();
    let claim = Call::new("POST", "/api/workstreams")
        .bearer(site.admin())
        .json(&workstream_body(site, "Newcomer", address));
    let answer = site.send(&claim, None).await;
    if answer.status != 201 {
        return out.problem(
            "name-not-freed",
            format!(
                "a new workstream claiming the free {address} answered {} ({})",
                answer.brief(),
                clip(&answer.body, 160)
            ),
        );
    }
    let id = answer.json()["id"].as_str().unwrap_or_default().to_owned();
    routes_to(site, address, &id, n, out).await;
}

async fn config_case(save: Save, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let existing = site.workstreams["whatsapp"].clone();
    let existing_path = format!("/api/workstreams/{existing}");
    let call = match save {
        Save::Create => Call::new("POST", "/api/workstreams")
            .bearer(site.admin())
            .json(&workstream_body(&site, "Spare line", SPARE_NUMBER)),
        Save::Update => Call::new("PATCH", &existing_path)
            .bearer(site.admin())
            .json(&json!({"channels": [{"account_id": site.twilio_account, "address": SPARE_NUMBER, "language": "en-US"}]})),
        Save::Delete => Call::new("DELETE", &existing_path).bearer(site.admin()),
    };
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    // The admin retries until the save shows; a create whose first attempt
    // did land is refused as a duplicate, which the list explains.
    let landed = async || -> bool {
        match save {
            Save::Create => holders(&site, SPARE_NUMBER)
                .await
                .is_ok_and(|found| !found.is_empty()),
            Save::Update => site
                .read(site.admin(), &existing_path)
                .await
                .is_ok_and(|w| w["channels"][0]["address"] == SPARE_NUMBER),
            Save::Delete => {
                site.send(&Call::new("GET", &existing_path).bearer(site.admin()), None)
                    .await
                    .status
                    == 404
            }
        }
    };
    let committed = answer.ok();
    if committed && !landed().await {
        out.problem(
            "answer-untrue",
            format!("the save answered {} but does not show", answer.brief()),
        );
    }
    if !committed && !landed().await {
        let (done, last) = retry(&site, &call, &mut out, async |a: &Answer| {
            a.ok() || landed().await
        })
        .await;
        if !done {
            out.problem(
                "save-never-lands",
                format!(
                    "every retry failed, the last with {}",
                    last.map(|a| format!("{} {}", a.brief(), clip(&a.body, 160)))
                        .unwrap_or_default()
                ),
            );
        }
    }
    match save {
        Save::Create => match holders(&site, SPARE_NUMBER).await {
            Ok(found) if found.len() == 1 => {
                held_by(&site, SPARE_NUMBER, &found[0], 1, &mut out).await
            }
            Ok(found) if found.is_empty() => free(&site, SPARE_NUMBER, 1, &mut out).await,
            Ok(found) => out.problem(
                "duplicate",
                format!("{} workstreams serve {SPARE_NUMBER}", found.len()),
            ),
            Err(error) => out.problem("unreadable", error),
        },
        Save::Update => match holders(&site, SPARE_NUMBER).await {
            Ok(found) if found == [existing.clone()] => {
                held_by(&site, SPARE_NUMBER, &existing, 1, &mut out).await;
                free(&site, BUSINESS_NUMBER, 2, &mut out).await;
            }
            Ok(found) if found.is_empty() => {
                held_by(&site, BUSINESS_NUMBER, &existing, 1, &mut out).await;
                free(&site, SPARE_NUMBER, 2, &mut out).await;
            }
            Ok(found) => out.problem(
                "duplicate",
                format!("workstreams {found:?} serve {SPARE_NUMBER}"),
            ),
            Err(error) => out.problem("unreadable", error),
        },
        Save::Delete => {
            let gone = site
                .send(&Call::new("GET", &existing_path).bearer(site.admin()), None)
                .await
                .status
                == 404;
            if gone {
                free(&site, BUSINESS_NUMBER, 1, &mut out).await;
            } else {
                held_by(&site, BUSINESS_NUMBER, &existing, 1, &mut out).await;
            }
        }
    }
    out
}

#[tokio::test]
async fn configuration_saves_hold_or_free_their_unique_names_whatever_fails() {
    let mut reports = Vec::new();
    for (save, name) in [
        (Save::Create, "workstream create (unique number)"),
        (Save::Update, "workstream update (number moved)"),
        (Save::Delete, "workstream delete (number freed)"),
    ] {
        reports.push(run_sweep(name, STORE, |fault| config_case(save, fault)).await);
    }
    conclude("configuration", &reports);
}

/// A Messenger account body connecting `pages` (`(id, token)`).
fn messenger_body(name: &str, pages: &[(&str, &str)]) -> Value {
    json!({"provider": "facebook", "name": name, "app_id": "1234567890", "app_secret": APP_SECRET,
           "pages": pages.iter().map(|(id, token)| json!({"name": name, "page_id": id, "access_token": token})).collect::<Vec<_>>()})
}

/// The site's accounts connected to `page` (given its callback values).
async fn connected_to(site: &Site, page: &str) -> Result<Vec<Value>, String> {
    let listed = site.read(site.admin(), "/api/accounts?limit=200").await?;
    Ok(listed["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|account| {
            account["pages"].as_array().is_some_and(|pages| {
                pages
                    .iter()
                    .any(|p| p["page_id"] == page && p["callback_url"].is_string())
            })
        })
        .collect())
}

/// Connecting a page: a new account with it, or the site's account adding
/// it. Graph confirms its token first; then the page is claimed.
async fn page_case(create: bool, fault: Option<Fault>) -> Outcome {
    let mut out = Outcome::default();
    let site = Site::open().await;
    let account_path = format!("/api/accounts/{}", site.facebook_account);
    let call = if create {
        Call::new("POST", "/api/accounts")
            .bearer(site.admin())
            .json(&messenger_body("Outlet", &[(PLAIN_PAGE, PLAIN_TOKEN)]))
    } else {
        Call::new("PATCH", &account_path)
            .bearer(site.admin())
            .json(&json!({"pages": [{"name": "Contoso", "page_id": TAGGED_PAGE},
                                    {"name": "Outlet", "page_id": PLAIN_PAGE, "access_token": PLAIN_TOKEN}]}))
    };
    let before = site.provider_requests(Provider::Facebook);
    let answer = site.send(&call, fault).await;
    out.faulted(&answer, fault);
    out.http = (site.provider_requests(Provider::Facebook) - before) as u64;
    let landed = async || {
        connected_to(&site, PLAIN_PAGE)
            .await
            .is_ok_and(|found| !found.is_empty())
    };
    if answer.ok() && !landed().await {
        out.problem(
            "answer-untrue",
            format!(
                "the save answered {} but the page is not connected",
                answer.brief()
            ),
        );
    }
    if !answer.ok() && !landed().await {
        let (done, last) = retry(&site, &call, &mut out, async |_: &Answer| landed().await).await;
        if !done {
            out.problem(
                "save-never-lands",
                format!(
                    "every retry failed, the last with {}",
                    last.map(|a| format!("{} {}", a.brief(), clip(&a.body, 160)))
                        .unwrap_or_default()
                ),
            );
        }
    }
    let saver = (!create).then_some(site.facebook_account.as_str());
    connected_once(&site, saver, &mut out).await;
    out
}

/// The site's Messenger account and one more (`saver`: the site's account
/// when it added the page, else the new one) hold their pages once each: no
/// duplicate account, the site's page still connected, the new page held.
async fn connected_once(site: &Site, saver: Option<&str>, out: &mut Outcome) {
    let holders = match connected_to(site, PLAIN_PAGE).await {
        Ok(found) => found,
        Err(error) => return out.problem("unreadable", error),
    };
    match holders.as_slice() {
        [holder] if saver.is_none_or(|id| holder["id"] == id) => {}
        _ => out.problem(
            "duplicate",
            format!(
                "page {PLAIN_PAGE} is connected to accounts {:?}",
                holders.iter().map(|a| a["id"].clone()).collect::<Vec<_>>()
            ),
        ),
    }
    let accounts = site
        .read(site.admin(), "/api/accounts?limit=200")
        .await
        .map(|listed| listed["items"].as_array().map_or(0, Vec::len));
    if accounts != Ok(if saver.is_none() { 5 } else { 4 }) {
        out.problem("duplicate", format!("the site has {accounts:?} accounts"));
    }
    if connected_to(site, TAGGED_PAGE)
        .await
        .map(|found| found.len())
        != Ok(1)
    {
        out.problem(
            "page-lost",
            format!("page {TAGGED_PAGE} is no longer connected once"),
        );
    }
    // Held: another account naming the page gets no callback values.
    let intruder = Call::new("POST", "/api/accounts")
        .bearer(site.admin())
        .json(&messenger_body("Intruder", &[(PLAIN_PAGE, PLAIN_TOKEN)]));
    let answer = site.send(&intruder, None).await;
    if answer.status != 201 || !answer.json()["pages"][0]["callback_withheld"].is_string() {
        out.problem(
            "name-not-held",
            format!(
                "another account connecting {PLAIN_PAGE} answered {} {}",
                answer.brief(),
                clip(&answer.body, 160)
            ),
        );
    }
}

#[tokio::test]
async fn facebook_pages_are_connected_once_whatever_fails() {
    let mut reports = Vec::new();
    for (create, name) in [
        (
            true,
            "facebook account create (page confirmed, then claimed)",
        ),
        (false, "facebook account update (page added)"),
    ] {
        reports.push(run_sweep(name, ALL, |fault| page_case(create, fault)).await);
    }
    conclude("facebook pages", &reports);
}
