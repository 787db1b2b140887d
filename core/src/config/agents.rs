//! Agents (R-CFG-5): capacity, presence, the queues they serve and the
//! languages they speak. Deleting an agent revokes the keys bound to it.
//!
//! Joining a queue appends the agent to the queue's member log, which
//! distribution reads instead of listing every agent. An agent who becomes
//! available, gains capacity or joins a queue is offered the conversations
//! waiting there (R-CONV-3); agents set their own presence with
//! `POST /api/agents/{id}/presence`.

use super::{queues::require_queue, Ctx, Effects, Resource};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{ApiKey, Role};
use crate::conversations::routing::{self, pull_waiting, queue_members, reconcile};
use crate::entities::agent::{Agent, Presence};
use crate::error::Error;
use crate::input::Object;
use crate::locale::Locale;
use crate::store;
use serde::Serialize;

/// Conversations one agent may hold at once, at most.
pub const MAX_CAPACITY: i64 = 100;

/// An agent as `POST /api/agents` takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInput {
    /// Up to 100 characters.
    pub name: String,
    /// Conversations the agent may hold at once, 1 to 100; 1 if left out.
    #[cfg_attr(
        feature = "openapi",
        schema(required = false, minimum = 1, maximum = 100)
    )]
    pub capacity: i64,
    /// `offline` if left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub presence: Presence,
    /// The ids of queues of the organisation; duplicates count once.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub queues: Vec<String>,
    /// BCP 47 tags in any case and separator (`nb_no`); stored normalized.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub languages: Vec<Locale>,
}

impl Resource for Agent {
    type Input = AgentInput;

    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> AgentInput {
        AgentInput {
            name: self.name.clone(),
            capacity: self.capacity,
            presence: self.presence,
            queues: self.queues.clone(),
            languages: self.languages.clone(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        input.only(&["name", "capacity", "presence", "queues", "languages"])?;
        let mut queues: Vec<String> = Vec::new();
        for (index, queue) in input.strings("queues")?.into_iter().enumerate() {
            require_queue(ctx, &input, &format!("queues[{index}]"), queue)?;
            if !queues.iter().any(|q| q == queue) {
                queues.push(queue.to_owned());
            }
        }
        let mut languages: Vec<Locale> = Vec::new();
        for (index, language) in input.strings("languages")?.into_iter().enumerate() {
            let locale = Locale::parse(language).map_err(|e| {
                input.error(&format!("languages[{index}]"), "invalid_locale", e.message)
            })?;
            if !languages.contains(&locale) {
                languages.push(locale);
            }
        }
        Ok(Agent {
            id,
            name: input.name("name", 100)?,
            capacity: input.integer("capacity", 1..=MAX_CAPACITY)?.unwrap_or(1),
            presence: input.one_of("presence")?.unwrap_or(Presence::Offline),
            queues,
            languages,
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        let joined = self
            .queues
            .iter()
            .filter(|queue| previous.is_none_or(|p| !p.queues.contains(queue)));
        for queue in joined {
            let members = queue_members(ctx.org(), queue);
            let slot = members.reserve(ctx.kv())?;
            effects
                .writes
                .push((members.slot_key(slot), self.id.as_bytes().to_vec()));
            effects.writes.extend(routing::joined(
                ctx.kv(),
                ctx.org(),
                queue,
                (slot, &self.id),
            )?);
        }
        Ok(())
    }

    fn after_save(&self, ctx: &Ctx) {
        // Failing here leaves conversations waiting until the next chance;
        // the agent's change itself is saved. The recount first, so that an
        // agent a dead request left looking full takes what waits.
        if reconcile(ctx.kv(), ctx.org(), &self.id).is_ok() {
            let _ = pull_waiting(ctx.kv(), ctx.org(), self, ctx.now.millis());
        }
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        Ok(store::list_all::<ApiKey>(ctx.kv(), ctx.org())?
            .into_iter()
            .filter(|key| key.agent_id.as_deref() == Some(self.id.as_str()))
            .map(|key| store::document_key::<ApiKey>(ctx.org(), &key.id))
            .collect())
    }
}

/// What `GET /api/agents/{id}` answers.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentWithLoad<'a> {
    #[serde(flatten)]
    pub agent: &'a Agent,
    /// The conversations the agent holds now.
    pub load: i64,
}

/// `GET /api/agents/{id}`: the agent and its `load`, the conversations it
/// holds, recounted from them (and the capacity counter corrected if a
/// request that died left it off).
pub fn read(ctx: &Ctx, id: &str) -> Result<Response, Error> {
    ctx.principal.require(<Agent as Resource>::READERS)?;
    let agent: Agent = store::require(ctx.kv(), ctx.org(), id)?;
    let load = reconcile(ctx.kv(), ctx.org(), id)?;
    Ok(Response::json(
        200,
        &AgentWithLoad {
            agent: &agent,
            load,
        },
    ))
}

/// `POST /api/agents/{id}/presence` `{"presence": "available"}`: agents
/// set their own, admins anyone's.
pub fn set_presence(ctx: &Ctx, request: &Request, id: &str) -> Result<Response, Error> {
    if request.method != Method::Post {
        return Ok(method_not_allowed(&["POST"]));
    }
    ctx.principal.require(&[Role::Admin, Role::Agent])?;
    if ctx.principal.role == Role::Agent && ctx.principal.agent_id.as_deref() != Some(id) {
        return Err(Error::forbidden(
            "forbidden",
            "agents set their own presence only",
        ));
    }
    let body = crate::input::json_object(&request.body)?;
    let input = Object::root(&body);
    input.only(&["presence"])?;
    let presence = input
        .one_of("presence")?
        .ok_or_else(|| input.missing("presence"))?;
    let mut agent: Agent = store::require(ctx.kv(), ctx.org(), id)?;
    agent.presence = presence;
    agent.updated_at = ctx.now;
    store::save(ctx.kv(), ctx.org(), &agent, Vec::new())?;
    offer_waiting(ctx, &agent)?;
    Ok(Response::json(200, &agent))
}

/// After a presence change (saved already): the agent's load recounted,
/// then what waits in its queues offered to it. Unlike other saves, this
/// is part of the answer: the agent (or its console) retries the same
/// request until it is done, so no conversation keeps waiting for an agent
/// with room.
fn offer_waiting(ctx: &Ctx, agent: &Agent) -> Result<(), Error> {
    let saved_but =
        |why: String| format!("the presence is saved, but {why}; send the same request again");
    let pulled = reconcile(ctx.kv(), ctx.org(), &agent.id)
        .and_then(|_| pull_waiting(ctx.kv(), ctx.org(), agent, ctx.now.millis()))
        .map_err(|error| Error::Unfinished {
            code: "offer_incomplete",
            message: saved_but(format!(
                "offering the conversations waiting in its queues failed ({})",
                error.message()
            )),
        })?;
    if pulled.passed_over > 0 {
        return Err(Error::InProgress(saved_but(format!(
            "{} waiting conversation(s) were being changed by another request and could not be offered yet",
            pulled.passed_over
        ))));
    }
    Ok(())
}
