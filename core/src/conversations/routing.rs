//! Routing (R-CONV-3): classification to a queue, distribution to agents.
//!
//! Classification tries the workstream's rules in order; the first whose
//! conditions all hold names the queue, else the fallback queue does. The
//! message is split into words once per decision ([`Words`]), so a
//! workstream's many keywords cost a lookup each, not a pass over the text
//! each.
//!
//! Distribution gives a conversation to an available agent of its queue
//! with free capacity. Capacity is a counter per agent (`agent/{a}/load`):
//! taking a conversation is `increment(+1)`, and a result over the agent's
//! capacity is given straight back, so concurrent conversations can never
//! overfill an agent, on one instance or many (principle 4). Which agent is
//! asked first is the workstream's choice: `round_robin` rotates through the
//! queue's agents, one further for each conversation the queue's log takes
//! (its slot there is the turn, so the rotation costs no counter of its
//! own), `least_active` asks the agent with the fewest active conversations
//! first. The queue's members are read from one key ([`KnownMembers`]),
//! whatever the queue's size.
//!
//! A conversation no agent can take waits in its queue. The queue's log of
//! entries is the waiting line: when an agent frees up or becomes available
//! it walks its queues' logs from the oldest entry still waiting
//! (`queue/{q}/head`) and takes what it has room for.

use super::{agent_log, commit, log_entry, parse_log_entry, queue_log, Conversation, State};
use crate::entities::agent::{Agent, Presence};
use crate::entities::contact::Contact;
use crate::entities::workstream::{ChannelInstance, Conditions, Distribution, Workstream};
use crate::error::Error;
use crate::ports::{KeyValue, UnixMillis};
use crate::store::{self, Log};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where classification sent a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub queue_id: String,
    /// The rule's name (or its position, `rule 2`), or `fallback`.
    pub routed_by: String,
}

pub fn classify(
    workstream: &Workstream,
    instance: &ChannelInstance,
    text: &str,
    contact: &Contact,
) -> Classified {
    let words = Words::of(text);
    workstream
        .routing_rules
        .iter()
        .enumerate()
        .find(|(_, rule)| matches(&rule.conditions, instance, &words, contact))
        .map(|(index, rule)| Classified {
            queue_id: rule.queue.clone(),
            routed_by: if rule.name.is_empty() {
                format!("rule {}", index + 1)
            } else {
                rule.name.clone()
            },
        })
        .unwrap_or_else(|| Classified {
            queue_id: workstream.fallback_queue.clone(),
            routed_by: "fallback".to_owned(),
        })
}

fn matches(
    conditions: &Conditions,
    instance: &ChannelInstance,
    words: &Words,
    contact: &Contact,
) -> bool {
    let channel = conditions
        .channel
        .as_ref()
        .is_none_or(|address| *address == instance.address);
    let language = conditions.language.as_ref().is_none_or(|wanted| {
        *wanted == instance.language
            || (*wanted == wanted.language() && *wanted == instance.language.language())
    });
    let keywords = conditions.keywords.is_empty()
        || conditions
            .keywords
            .iter()
            .any(|keyword| words.contain(keyword));
    let field = conditions.contact_field.as_ref().is_none_or(|field| {
        contact
            .fields
            .get(&field.name)
            .is_some_and(|value| value.eq_ignore_ascii_case(&field.equals))
    });
    channel && language && keywords && field
}

/// A message's words, lowercased, with where each occurs.
struct Words {
    words: Vec<String>,
    starts: HashMap<String, Vec<usize>>,
}

/// The words of `text`: runs of letters and digits, lowercased.
fn split_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

impl Words {
    fn of(text: &str) -> Words {
        let words: Vec<String> = split_words(text).collect();
        let mut starts: HashMap<String, Vec<usize>> = HashMap::new();
        for (at, word) in words.iter().enumerate() {
            starts.entry(word.clone()).or_default().push(at);
        }
        Words { words, starts }
    }

    /// Whether `keyword` (maybe several words) occurs as whole words, in
    /// sequence, whatever the case: "refund" matches "Refund please!" but
    /// not "refunded"; "my order" matches "where is MY order?".
    fn contain(&self, keyword: &str) -> bool {
        let keyword: Vec<String> = split_words(keyword).collect();
        let Some(first) = keyword.first() else {
            return false;
        };
        self.starts.get(first).is_some_and(|starts| {
            starts
                .iter()
                .any(|&at| self.words.get(at..at + keyword.len()) == Some(&keyword[..]))
        })
    }
}

fn load_key(org: &str, agent: &str) -> String {
    format!("org/{org}/agent/{agent}/load")
}

/// The agents who ever joined a queue; an agent's own `queues` say whether
/// it still serves it.
pub fn queue_members(org: &str, queue: &str) -> Log {
    Log::new(format!("org/{org}/queue/{queue}/agents"))
}

fn queue_head_key(org: &str, queue: &str) -> String {
    format!("org/{org}/queue/{queue}/head")
}

fn agent_head_key(org: &str, agent: &str) -> String {
    format!("org/{org}/agent/{agent}/head")
}

/// Active conversations an agent holds, as its capacity counter says.
pub fn load_of(kv: &dyn KeyValue, org: &str, agent: &str) -> Result<i64, Error> {
    Ok(kv.increment(&load_key(org, agent), 0)?)
}

/// How often routing recounts an agent that looks full, at most: once per
/// agent in each window of this length.
pub const RECOUNT_MILLIS: i64 = 30_000;

/// When an agent that looks full is recounted ([`reconcile`]) before it is
/// refused: its counter may hold units of requests that died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recount {
    /// Every time: someone asked for this agent by name and waits for the
    /// answer.
    Always,
    /// Once per agent in each [`RECOUNT_MILLIS`] window (of this time), by
    /// the first request that finds it full. Routing asks full agents on
    /// every new conversation, and a recount reads the agent's assignments
    /// and their conversations: at a busy hour, when every agent is full,
    /// recounting each time made a new conversation cost hundreds of reads.
    /// A unit a dead request left taken is still given back, within a window.
    Throttled(UnixMillis),
}

/// Takes one unit of the agent's capacity; `false`, holding nothing, when
/// the agent is full, recounted as `recount` says.
pub fn reserve(
    kv: &dyn KeyValue,
    org: &str,
    agent: &Agent,
    recount: Recount,
) -> Result<bool, Error> {
    let key = load_key(org, &agent.id);
    let take = || -> Result<bool, Error> {
        if kv.increment(&key, 1)? <= agent.capacity {
            return Ok(true);
        }
        kv.increment(&key, -1)?;
        Ok(false)
    };
    if take()? {
        return Ok(true);
    }
    let due = match recount {
        Recount::Always => true,
        Recount::Throttled(now) => recount_due(kv, org, &agent.id, now)?,
    };
    Ok(due && reconcile(kv, org, &agent.id)? < agent.capacity && take()?)
}

fn recount_marker(org: &str, agent: &str, window: i64) -> String {
    format!("org/{org}/agent/{agent}/recounted/{window}")
}

/// Whether this request is the first of the window to find the agent full,
/// and so recounts it. The window's marker is a counter; the previous
/// window's goes (best effort), so an agent keeps one at most.
fn recount_due(kv: &dyn KeyValue, org: &str, agent: &str, now: UnixMillis) -> Result<bool, Error> {
    let window = now.div_euclid(RECOUNT_MILLIS);
    let first = kv.increment(&recount_marker(org, agent, window), 1)? == 1;
    if first {
        let _ = kv.delete(&recount_marker(org, agent, window - 1));
    }
    Ok(first)
}

/// Gives back one unit of the agent's capacity.
pub fn release(kv: &dyn KeyValue, org: &str, agent: &str) -> Result<(), Error> {
    let key = load_key(org, agent);
    if kv.increment(&key, -1)? < 0 {
        kv.increment(&key, 1)?;
    }
    Ok(())
}

/// Recounts the conversations the agent holds from the durable facts — its
/// log of assignments and the conversations they name — and corrects the
/// capacity counter to that count when it drifted. Returns the count.
///
/// A counter drifts when a request dies (or the store fails) between taking
/// capacity and committing the assignment, or between committing a close,
/// wait or transfer and giving the capacity back (R-OPS-4). An assignment
/// in flight at the very moment of a recount is not in the log yet; a
/// recount then lets its agent hold one more than its capacity until the
/// next recount. Recounts run only when an agent looks full, when it
/// becomes available, and when its load is read, which keeps that window
/// rare and short.
pub fn reconcile(kv: &dyn KeyValue, org: &str, agent: &str) -> Result<i64, Error> {
    let counted = load_of(kv, org, agent)?;
    let held = held_by(kv, org, agent)?;
    if held != counted {
        kv.increment(&load_key(org, agent), held - counted)?;
    }
    Ok(held)
}

/// How many conversations the agent's assignment log says it holds now:
/// entries whose conversation is still active with it at that assignment.
/// The log's prefix of entries that no longer hold is skipped from then on
/// (`agent/{a}/head`).
fn held_by(kv: &dyn KeyValue, org: &str, agent: &str) -> Result<i64, Error> {
    const CHUNK: i64 = 100;
    let log = agent_log(org, agent);
    let head_key = agent_head_key(org, agent);
    let head = read_head(kv, &head_key)?;
    let count = log.len(kv)?;
    let (mut position, mut new_head, mut held) = (head, head, 0);
    while position < count {
        let end = (position + CHUNK).min(count);
        let (entries, conversations) = entries_between(kv, org, &log, position + 1, end)?;
        for Entry { slot, id, version } in &entries {
            let holds = conversations.iter().any(|c| {
                c.id == *id
                    && c.state == State::Active
                    && c.agent_id.as_deref() == Some(agent)
                    && c.assigned_at == *version
            });
            if holds {
                held += 1;
            }
            // Only a gapless prefix of entries that hold nothing is
            // skipped: an empty slot may be an assignment being written.
            if !holds && held == 0 && *slot == new_head + 1 {
                new_head = *slot;
            }
        }
        position = end;
    }
    if new_head > head {
        // Best effort: a stale head only costs a longer scan.
        let _ = kv.set(&head_key, new_head.to_string().as_bytes());
    }
    Ok(held)
}

/// Where a log of `{conversation}:{version}` entries (a queue's waiting
/// line, an agent's assignments) starts to matter: the entries before it
/// no longer stand for anything.
fn read_head(kv: &dyn KeyValue, head_key: &str) -> Result<i64, Error> {
    Ok(kv
        .get(head_key)?
        .and_then(|bytes| String::from_utf8_lossy(&bytes).parse().ok())
        .unwrap_or(0))
}

/// An entry of such a log: a conversation at a version, in its slot.
struct Entry {
    slot: i64,
    id: String,
    version: u64,
}

/// A log's entries in `from..=to`, and the conversations they name, in two
/// reads.
fn entries_between(
    kv: &dyn KeyValue,
    org: &str,
    log: &Log,
    from: i64,
    to: i64,
) -> Result<(Vec<Entry>, Vec<Conversation>), Error> {
    let entries: Vec<Entry> = log
        .read(kv, from, to)?
        .into_iter()
        .filter_map(|(slot, bytes)| {
            parse_log_entry(&bytes).map(|(id, version)| Entry { slot, id, version })
        })
        .collect();
    let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
    let conversations = store::load_many(kv, org, &ids)?;
    Ok((entries, conversations))
}

fn serves(agent: &Agent, queue: &str) -> bool {
    agent.queues.iter().any(|q| q == queue)
}

/// What has been read of a queue's member log, kept so that routing reads
/// one key instead of every slot: on a store that reads key by key, a queue
/// of `n` agents cost `n` round trips more per new conversation. The agents
/// of slots `1..=through`, in the order they joined.
///
/// The log stays the one record of who joined; this is a cache of it, and
/// every version any request writes is true of a prefix of the log, so
/// requests may overwrite each other's (the shorter one only costs the
/// next reader a few slots). It never passes an empty slot, whose agent
/// may still be being saved: the slots from there on are read each time
/// until it is filled. A slot left empty by a save that died stays empty,
/// and the slots after it are then read every time: slower, never wrong.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownMembers {
    through: i64,
    ids: Vec<String>,
}

fn known_members_key(org: &str, queue: &str) -> String {
    format!("org/{org}/queue/{queue}/agents/known")
}

/// A queue's members as [`member_ids`] found them.
struct Members {
    /// Every agent that ever joined, in id order.
    ids: Vec<String>,
    /// The write that extends the kept [`KnownMembers`], when the log has
    /// grown past them.
    extended: Option<(String, Vec<u8>)>,
}

/// The queue's members; `joining` is the slot an agent's save took, which
/// counts as filled as the save writes it.
fn member_ids(
    kv: &dyn KeyValue,
    org: &str,
    queue: &str,
    joining: Option<(i64, &str)>,
) -> Result<Members, Error> {
    let (known, mut filled) = read_members(kv, org, queue)?;
    filled.extend(joining.map(|(slot, id)| (slot, id.to_owned())));
    filled.sort_by_key(|(slot, _)| *slot);
    let (mut through, mut kept) = (known.through, known.ids);
    let mut past_a_gap = Vec::new();
    for (slot, id) in filled {
        if slot != through + 1 {
            past_a_gap.push(id);
            continue;
        }
        through = slot;
        if !kept.contains(&id) {
            kept.push(id);
        }
    }
    let extended = (through > known.through).then(|| {
        let cached = KnownMembers {
            through,
            ids: kept.clone(),
        };
        (known_members_key(org, queue), store::encode(&cached))
    });
    let mut ids: Vec<String> = kept.into_iter().chain(past_a_gap).collect();
    ids.sort();
    ids.dedup();
    Ok(Members { ids, extended })
}

/// [`member_ids`] for routing, which keeps what it read (best effort: it
/// is only a cache).
fn members_for_routing(kv: &dyn KeyValue, org: &str, queue: &str) -> Result<Vec<String>, Error> {
    let members = member_ids(kv, org, queue, None)?;
    if let Some((key, value)) = members.extended {
        let _ = kv.set(&key, &value);
    }
    Ok(members.ids)
}

/// The kept members, and the filled slots of the log past them.
fn read_members(
    kv: &dyn KeyValue,
    org: &str,
    queue: &str,
) -> Result<(KnownMembers, Vec<(i64, String)>), Error> {
    let log = queue_members(org, queue);
    let count = log.len(kv)?;
    let key = known_members_key(org, queue);
    let mut known: KnownMembers = kv
        .get(&key)?
        .and_then(|bytes| store::decode(&key, &bytes).ok())
        .unwrap_or_default();
    if known.through > count {
        known = KnownMembers::default();
    }
    let tail = log.read(kv, known.through + 1, count)?;
    let tail = tail
        .into_iter()
        .map(|(slot, id)| (slot, String::from_utf8_lossy(&id).into_owned()))
        .collect();
    Ok((known, tail))
}

/// The write that keeps the queue's [`KnownMembers`] up to date as an
/// agent joins it at `slot`, for the agent's save to make with the slot, so
/// that routing after the join reads the one key.
pub fn joined(
    kv: &dyn KeyValue,
    org: &str,
    queue: &str,
    (slot, agent): (i64, &str),
) -> Result<Option<(String, Vec<u8>)>, Error> {
    Ok(member_ids(kv, org, queue, Some((slot, agent)))?.extended)
}

/// An available agent of `queue` with room, its capacity already taken.
/// `turn` is where round robin starts: the slot of the conversation's entry
/// in the queue's log, which counts the conversations the queue was given.
pub fn pick_agent(
    kv: &dyn KeyValue,
    org: &str,
    queue: &str,
    (distribution, turn): (Distribution, i64),
    now: UnixMillis,
) -> Result<Option<Agent>, Error> {
    let askable = |agent: &Agent| serves(agent, queue) && agent.presence == Presence::Available;
    let load_askable = |ids: &[String]| -> Result<Vec<Agent>, Error> {
        let agents: Vec<Agent> = store::load_many(kv, org, ids)?;
        Ok(agents.into_iter().filter(|agent| askable(agent)).collect())
    };
    let mut ids = members_for_routing(kv, org, queue)?;
    if ids.is_empty() {
        return Ok(None);
    }
    let candidates: Vec<Agent> = match distribution {
        // The rotation is over the queue's members, away ones included, so
        // that the one whose turn it is can be read first: where reads do
        // not batch, a conversation costs the agents asked, not the queue.
        Distribution::RoundRobin => {
            let start = (turn - 1).rem_euclid(ids.len() as i64) as usize;
            ids.rotate_left(start);
            if !kv.batches_reads() {
                return ask_one_by_one(kv, org, &ids, askable, now);
            }
            load_askable(&ids)?
        }
        Distribution::LeastActive => {
            let mut loaded = Vec::new();
            for agent in load_askable(&ids)? {
                let load = load_of(kv, org, &agent.id)?;
                loaded.push((load.min(agent.capacity), agent));
            }
            // Full-looking agents last: `reserve` recounts them.
            loaded.sort_by_key(|(load, agent)| (*load >= agent.capacity, *load));
            loaded.into_iter().map(|(_, agent)| agent).collect()
        }
    };
    for agent in candidates {
        if reserve(kv, org, &agent, Recount::Throttled(now))? {
            return Ok(Some(agent));
        }
    }
    Ok(None)
}

/// Round robin where reads do not batch: each agent read when its turn
/// comes, until one takes the conversation.
fn ask_one_by_one(
    kv: &dyn KeyValue,
    org: &str,
    ids: &[String],
    askable: impl Fn(&Agent) -> bool,
    now: UnixMillis,
) -> Result<Option<Agent>, Error> {
    for id in ids {
        let Some(agent) = store::load::<Agent>(kv, org, id)? else {
            continue;
        };
        if askable(&agent) && reserve(kv, org, &agent, Recount::Throttled(now))? {
            return Ok(Some(agent));
        }
    }
    Ok(None)
}

/// Puts the conversation into `queue` — straight to an agent when one has
/// room, else waiting — and commits it with `extra` keys. A conversation
/// left waiting is offered once more after the commit, in case an agent
/// freed up while it was being written; that offer is best effort, as the
/// conversation is routed either way.
pub fn route_to_queue(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &mut Conversation,
    queue: &str,
    distribution: Distribution,
    now: UnixMillis,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let log = queue_log(org, queue);
    let slot = log.reserve(kv)?;
    let agent = pick_agent(kv, org, queue, (distribution, slot), now)?;
    let entry = (
        log.slot_key(slot),
        log_entry(&conversation.id, conversation.version + 1),
    );
    if let Err(error) = enqueue(
        kv,
        org,
        conversation,
        (queue, entry),
        agent.as_ref(),
        now,
        extra,
    ) {
        if let Some(agent) = &agent {
            let _ = release(kv, org, &agent.id);
        }
        return Err(error);
    }
    if agent.is_none() {
        if let Ok(Some(agent)) = pick_agent(kv, org, queue, (distribution, slot), now) {
            let _ = assign(kv, org, conversation, &agent, now);
        }
    }
    Ok(())
}

/// Commits the conversation into `queue`, its `entry` in the queue's log
/// written with it, with `agent` (whose capacity is taken) or waiting.
fn enqueue(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &mut Conversation,
    (queue, entry): (&str, (String, Vec<u8>)),
    agent: Option<&Agent>,
    now: UnixMillis,
    mut extra: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let version = conversation.version + 1;
    extra.push(entry);
    match agent {
        Some(agent) => extra.push(assignment_entry(kv, org, conversation, agent)?),
        None => {
            conversation.state = State::Open;
            conversation.agent_id = None;
        }
    }
    conversation.queue_id = Some(queue.to_owned());
    conversation.queued_at = version;
    conversation.with_bot = false;
    conversation.closed_at = None;
    conversation.updated_at = crate::time::Timestamp::from_millis(now);
    commit(kv, org, conversation, now, extra)
}

/// Makes `agent` the conversation's owner at the next version; returns the
/// agent-log entry to write with it.
pub(super) fn assignment_entry(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &mut Conversation,
    agent: &Agent,
) -> Result<(String, Vec<u8>), Error> {
    let version = conversation.version + 1;
    let log = agent_log(org, &agent.id);
    let slot = log.reserve(kv)?;
    conversation.state = State::Active;
    conversation.with_bot = false;
    conversation.agent_id = Some(agent.id.clone());
    conversation.assigned_at = version;
    Ok((log.slot_key(slot), log_entry(&conversation.id, version)))
}

/// Gives a stored conversation to `agent`, whose capacity the caller has
/// already taken; on any failure the capacity is given back (best effort:
/// a recount corrects it otherwise). `Ok(false)` when someone else changed
/// the conversation first.
pub fn assign(
    kv: &dyn KeyValue,
    org: &str,
    conversation: &mut Conversation,
    agent: &Agent,
    now: UnixMillis,
) -> Result<bool, Error> {
    let before = conversation.clone();
    let result = assignment_entry(kv, org, conversation, agent).and_then(|entry| {
        conversation.updated_at = crate::time::Timestamp::from_millis(now);
        commit(kv, org, conversation, now, vec![entry])
    });
    match result {
        Ok(()) => Ok(true),
        Err(error) => {
            *conversation = before;
            let _ = release(kv, org, &agent.id);
            match error {
                Error::ConversationChanged => Ok(false),
                error => Err(error),
            }
        }
    }
}

/// Whether the conversation waits in `queue` since the log entry made at
/// `version`.
fn waits_in(conversation: &Conversation, queue: &str, version: u64) -> bool {
    conversation.state == State::Open
        && !conversation.with_bot
        && conversation.queue_id.as_deref() == Some(queue)
        && conversation.queued_at == version
}

/// What [`pull_waiting`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pulled {
    pub taken: usize,
    /// Waiting conversations another request was changing (or died
    /// changing, until its lease ends): a later pull may take them.
    pub passed_over: usize,
}

/// Slots this near the end of a queue's log may be empty because their
/// entry is being written, with its conversation, by a request that took
/// the slot moments ago: a pull must not move the queue's head past them,
/// or that conversation, once written, would wait where no pull looks.
/// Further back, an empty slot is one whose request died.
const SLOTS_IN_FLIGHT: i64 = 20;

/// The first of `slots` near the end of a log of `count` slots that has no
/// entry among `entries` yet (see [`SLOTS_IN_FLIGHT`]).
fn first_being_written(
    entries: &[Entry],
    slots: std::ops::RangeInclusive<i64>,
    count: i64,
) -> Option<i64> {
    slots
        .filter(|slot| count - slot < SLOTS_IN_FLIGHT)
        .find(|&slot| !entries.iter().any(|entry| entry.slot == slot))
}

/// Lets an agent who freed up or became available take waiting
/// conversations from its queues, oldest first, while it has room.
pub fn pull_waiting(
    kv: &dyn KeyValue,
    org: &str,
    agent: &Agent,
    now: UnixMillis,
) -> Result<Pulled, Error> {
    const CHUNK: i64 = 50;
    let mut pulled = Pulled::default();
    if agent.presence != Presence::Available {
        return Ok(pulled);
    }
    for queue in &agent.queues {
        let log = queue_log(org, queue);
        let head_key = queue_head_key(org, queue);
        let head = read_head(kv, &head_key)?;
        let count = log.len(kv)?;
        let (mut position, mut new_head, mut all_stale) = (head, head, true);
        'scan: while position < count {
            let end = (position + CHUNK).min(count);
            let (entries, mut conversations) = entries_between(kv, org, &log, position + 1, end)?;
            let being_written = first_being_written(&entries, position + 1..=end, count);
            for Entry { slot, id, version } in &entries {
                let Some(conversation) = conversations
                    .iter_mut()
                    .find(|c| c.id == *id && waits_in(c, queue, *version))
                else {
                    if all_stale {
                        new_head = *slot;
                    }
                    continue;
                };
                if !reserve(kv, org, agent, Recount::Throttled(now))? {
                    break 'scan;
                }
                if assign(kv, org, conversation, agent, now)? {
                    pulled.taken += 1;
                    if all_stale {
                        new_head = *slot;
                    }
                } else {
                    pulled.passed_over += 1;
                    all_stale = false;
                }
            }
            if all_stale {
                new_head = end;
            }
            if let Some(slot) = being_written {
                new_head = new_head.min(slot - 1);
                all_stale = false;
            }
            position = end;
        }
        if new_head > head {
            kv.set(&head_key, new_head.to_string().as_bytes())?;
        }
    }
    Ok(pulled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;
    use crate::entities::workstream::{ContactField, RoutingRule};
    use crate::locale::Locale;
    use crate::memory::MemoryKeyValue;

    const ORG: &str = "00000000000000000000000000000000";

    fn instance(language: &str) -> ChannelInstance {
        ChannelInstance {
            account_id: "a".into(),
            address: "+4712345678".into(),
            language: Locale::parse(language).unwrap(),
            customer_attachments: false,
            agent_attachments: false,
            human_agent_tag: false,
        }
    }

    fn rule(name: &str, queue: &str, conditions: Conditions) -> RoutingRule {
        RoutingRule {
            name: name.into(),
            queue: queue.into(),
            conditions,
        }
    }

    fn none() -> Conditions {
        Conditions {
            channel: None,
            language: None,
            keywords: Vec::new(),
            contact_field: None,
        }
    }

    fn workstream(rules: Vec<RoutingRule>) -> Workstream {
        Workstream {
            id: "w".into(),
            name: "w".into(),
            channel: Channel::Whatsapp,
            fallback_queue: "fallback".into(),
            distribution: Distribution::RoundRobin,
            bot: None,
            routing_rules: rules,
            channels: vec![instance("nb-NO")],
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        }
    }

    #[test]
    fn the_first_rule_whose_conditions_all_hold_names_the_queue() {
        let mut gold = Contact::for_sender(
            ORG,
            Channel::Whatsapp,
            "+1",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        gold.fields.insert("tier".into(), "Gold".into());
        let plain = Contact::for_sender(
            ORG,
            Channel::Whatsapp,
            "+2",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        let norwegian = Conditions {
            language: Some(Locale::parse("nb").unwrap()),
            keywords: vec!["faktura".into()],
            ..none()
        };
        let vip = Conditions {
            contact_field: Some(ContactField {
                name: "tier".into(),
                equals: "gold".into(),
            }),
            ..none()
        };
        let ws = workstream(vec![
            rule("invoices", "billing", norwegian),
            rule("", "vip", vip),
        ]);
        let route = |text: &str, contact: &Contact, language: &str| {
            classify(&ws, &instance(language), text, contact)
        };
        assert_eq!(
            route("Hvor er fakturaen? faktura!", &plain, "nb-NO").queue_id,
            "billing"
        );
        assert_eq!(
            route("faktura", &plain, "sv-SE").queue_id,
            "fallback",
            "language must hold too"
        );
        let vip = route("hello", &gold, "nb-NO");
        assert_eq!(
            (vip.queue_id.as_str(), vip.routed_by.as_str()),
            ("vip", "rule 2")
        );
        let fallback = route("hello", &plain, "nb-NO");
        assert_eq!(
            (fallback.queue_id.as_str(), fallback.routed_by.as_str()),
            ("fallback", "fallback")
        );
    }

    fn agent(kv: &MemoryKeyValue, n: u8, capacity: i64, presence: Presence) -> Agent {
        let agent = Agent {
            id: format!("{n:032x}"),
            name: format!("agent {n}"),
            capacity,
            presence,
            queues: vec!["q".into()],
            languages: Vec::new(),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        };
        let members = queue_members(ORG, "q");
        let slot = members.reserve(kv).unwrap();
        store::save(
            kv,
            ORG,
            &agent,
            vec![(members.slot_key(slot), agent.id.clone().into_bytes())],
        )
        .unwrap();
        agent
    }

    const NOW: UnixMillis = 1_767_225_600_000;

    fn conversation(n: u8) -> Conversation {
        Conversation {
            id: format!("c{n:031x}"),
            state: State::Open,
            channel: crate::channel::Channel::Whatsapp,
            workstream_id: "w".into(),
            account_id: "a".into(),
            channel_address: "+4712345678".into(),
            customer_address: format!("+47900000{n:02}"),
            contact_id: "k".into(),
            profile_name: None,
            language: Locale::parse("nb-NO").unwrap(),
            queue_id: None,
            agent_id: None,
            routed_by: None,
            with_bot: false,
            version: 0,
            queued_at: 0,
            assigned_at: 0,
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
            closed_at: None,
        }
    }

    /// Routes a new conversation to `q`; the agent it went to.
    fn route(kv: &MemoryKeyValue, n: u8) -> Option<String> {
        route_at(kv, n, NOW)
    }

    fn route_at(kv: &MemoryKeyValue, n: u8, now: UnixMillis) -> Option<String> {
        let mut conversation = conversation(n);
        route_to_queue(
            kv,
            ORG,
            &mut conversation,
            "q",
            Distribution::RoundRobin,
            now,
            Vec::new(),
        )
        .unwrap();
        conversation.agent_id
    }

    #[test]
    fn distribution_never_exceeds_capacity_and_skips_unavailable_agents() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 2, Presence::Available);
        let b = agent(&kv, 2, 1, Presence::Available);
        agent(&kv, 3, 5, Presence::Away);
        let picked: Vec<Option<String>> = (0..5).map(|n| route(&kv, n)).collect();
        assert_eq!(
            picked[..3],
            [Some(a.id.clone()), Some(b.id.clone()), Some(a.id.clone())],
            "round robin alternates, 2 + 1 places"
        );
        assert_eq!(picked[3..], [None, None], "the rest wait");
        assert_eq!(
            (
                load_of(&kv, ORG, &a.id).unwrap(),
                load_of(&kv, ORG, &b.id).unwrap()
            ),
            (2, 1)
        );
        release(&kv, ORG, &b.id).unwrap();
        release(&kv, ORG, &b.id).unwrap();
        assert_eq!(load_of(&kv, ORG, &b.id).unwrap(), 0, "never below zero");
    }

    #[test]
    fn an_agent_whose_join_is_being_saved_is_found_once_saved() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 2, Presence::Available);
        // Agent 2's save took slot 2 and has not written it yet; agent 3
        // joined after it.
        let members = queue_members(ORG, "q");
        let in_flight = members.reserve(&kv).unwrap();
        let c = agent(&kv, 3, 2, Presence::Available);
        let ids = |kv: &MemoryKeyValue| members_for_routing(kv, ORG, "q").unwrap();
        assert_eq!(ids(&kv), [a.id.clone(), c.id.clone()]);
        let known: KnownMembers = store::decode(
            "known",
            &kv.get(&known_members_key(ORG, "q")).unwrap().unwrap(),
        )
        .unwrap();
        assert_eq!(known.through, 1, "kept up to the slot being written");
        // The save lands: routing finds the agent.
        let b = Agent {
            id: format!("{:032x}", 2),
            ..a.clone()
        };
        store::save(
            &kv,
            ORG,
            &b,
            vec![(members.slot_key(in_flight), b.id.clone().into_bytes())],
        )
        .unwrap();
        assert_eq!(ids(&kv), [a.id.clone(), b.id.clone(), c.id.clone()]);
        let known: KnownMembers = store::decode(
            "known",
            &kv.get(&known_members_key(ORG, "q")).unwrap().unwrap(),
        )
        .unwrap();
        assert_eq!((known.through, known.ids.len()), (3, 3));
    }

    #[test]
    fn capacity_a_dead_request_left_taken_is_recounted_from_the_conversations() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 2, Presence::Available);
        assert_eq!(route(&kv, 0), Some(a.id.clone()));
        // Two requests died after taking capacity: the agent looks full…
        assert!(reserve(&kv, ORG, &a, Recount::Always).unwrap());
        assert_eq!(load_of(&kv, ORG, &a.id).unwrap(), 2);
        // …but holds one conversation, so the next one still goes to it.
        assert_eq!(route(&kv, 1), Some(a.id.clone()));
        assert_eq!(reconcile(&kv, ORG, &a.id).unwrap(), 2);
        assert_eq!(route(&kv, 2), None, "now it is full");
        assert_eq!(load_of(&kv, ORG, &a.id).unwrap(), 2);
    }

    /// Closes conversation `n` as a request that died before giving its
    /// agent's capacity back would leave it.
    fn close_unreleased(kv: &MemoryKeyValue, n: u8) {
        let mut held: Conversation = store::load(kv, ORG, &conversation(n).id).unwrap().unwrap();
        held.state = State::Closed;
        commit(kv, ORG, &mut held, NOW, Vec::new()).unwrap();
    }

    #[test]
    fn routing_recounts_a_full_looking_agent_once_per_window() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 1, Presence::Available);
        assert_eq!(route(&kv, 0), Some(a.id.clone()));
        assert_eq!(route(&kv, 1), None, "full, as its recount says");
        // Its conversation closes, but the request dies before giving the
        // unit back: the agent looks full while it holds nothing.
        close_unreleased(&kv, 0);
        // Routing recounted it already in this window, so it trusts the
        // counter…
        assert_eq!(route(&kv, 2), None);
        assert_eq!(load_of(&kv, ORG, &a.id).unwrap(), 1);
        // …until the next window's first request recounts it.
        let later = NOW + RECOUNT_MILLIS;
        assert_eq!(route_at(&kv, 3, later), Some(a.id.clone()));
        assert_eq!(load_of(&kv, ORG, &a.id).unwrap(), 1);
    }

    #[test]
    fn a_pull_leaves_the_head_before_a_slot_whose_conversation_is_being_written() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 1, Presence::Available);
        assert_eq!(route(&kv, 0), Some(a.id.clone()));
        // A request takes the queue's next slot for conversation 1 and is
        // still writing it; conversation 2 arrives after it and waits.
        let log = queue_log(ORG, "q");
        let in_flight = log.reserve(&kv).unwrap();
        assert_eq!(route(&kv, 2), None);
        // The agent frees up and takes what is written: conversation 2.
        let close = |n: u8| {
            close_unreleased(&kv, n);
            release(&kv, ORG, &a.id).unwrap();
            pull_waiting(&kv, ORG, &a, NOW).unwrap()
        };
        assert_eq!(close(0).taken, 1);
        // Conversation 1 is written now, waiting in its slot…
        let mut late = conversation(1);
        late.queue_id = Some("q".into());
        late.queued_at = 1;
        let entry = (log.slot_key(in_flight), log_entry(&late.id, 1));
        commit(&kv, ORG, &mut late, NOW, vec![entry]).unwrap();
        // …and the next pull still finds it.
        assert_eq!(close(2).taken, 1);
        let taken: Conversation = store::load(&kv, ORG, &late.id).unwrap().unwrap();
        assert_eq!(taken.agent_id, Some(a.id.clone()));
    }

    #[test]
    fn least_active_asks_the_agent_holding_fewest_first() {
        let kv = MemoryKeyValue::default();
        let a = agent(&kv, 1, 5, Presence::Available);
        let b = agent(&kv, 2, 5, Presence::Available);
        assert!(reserve(&kv, ORG, &a, Recount::Always).unwrap());
        assert!(reserve(&kv, ORG, &a, Recount::Always).unwrap());
        assert_eq!(load_of(&kv, ORG, &a.id).unwrap(), 2);
        let first = pick_agent(&kv, ORG, "q", (Distribution::LeastActive, 1), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(first.id, b.id);
    }

    fn contains_words(text: &str, keyword: &str) -> bool {
        Words::of(text).contain(keyword)
    }

    #[test]
    fn keywords_match_whole_words() {
        assert!(contains_words("I want a REFUND, please", "refund"));
        assert!(!contains_words("refunded already", "refund"));
        assert!(contains_words("where is my order?", "my order"));
        assert!(!contains_words("order my", "my order"));
        assert!(contains_words("Zwrot pieniędzy", "pieniędzy"));
        assert!(contains_words("my my order", "my order"));
        assert!(contains_words("ORDER-status: late", "order status"));
        assert!(!contains_words("my", "my order"));
        assert!(!contains_words("anything at all", "?!"));
        assert!(!contains_words("", "refund"));
    }

    /// Today's rule, as it was written before words were split once: the
    /// keyword's words appear as a window of the text's words.
    fn window_of_words(text: &str, keyword: &str) -> bool {
        let text: Vec<String> = split_words(text).collect();
        let keyword: Vec<String> = split_words(keyword).collect();
        !keyword.is_empty() && text.windows(keyword.len()).any(|window| window == keyword)
    }

    proptest::proptest! {
        #[test]
        fn splitting_once_matches_as_windows_of_words_did(
            text in "[aAbBß .,!-]{0,40}",
            keyword in "[aAbß -]{0,8}",
        ) {
            proptest::prop_assert_eq!(
                contains_words(&text, &keyword),
                window_of_words(&text, &keyword)
            );
        }
    }

    #[test]
    fn many_rules_of_many_keywords_route_a_long_message_by_its_words() {
        let rules = (0..300)
            .map(|r| {
                let keywords = (0..50).map(|k| format!("topic{r}x{k} now")).collect();
                let conditions = Conditions { keywords, ..none() };
                rule(&format!("r{r}"), &format!("q{r}"), conditions)
            })
            .collect();
        let ws = workstream(rules);
        let contact = Contact::for_sender(
            ORG,
            Channel::Whatsapp,
            "+1",
            None,
            crate::time::Timestamp::from_millis(0),
        );
        let long = format!(
            "{} Topic299x49 NOW {}",
            "blah ".repeat(10_000),
            "x".repeat(50_000)
        );
        let routed = classify(&ws, &instance("nb-NO"), &long, &contact);
        assert_eq!(
            (routed.queue_id.as_str(), routed.routed_by.as_str()),
            ("q299", "r299")
        );
        let unmatched = classify(
            &ws,
            &instance("nb-NO"),
            &"topic1x1 ".repeat(1_000),
            &contact,
        );
        assert_eq!(
            unmatched.routed_by, "fallback",
            "half a keyword is not the keyword"
        );
    }
}
