//! Agents (R-CFG-5): capacity, presence, the queues they serve and the
//! languages they speak. Deleting an agent revokes the keys bound to it.

use super::{queues::require_queue, Ctx, Resource};
use crate::api::ApiError;
use crate::auth::{ApiKey, Role};
use crate::input::Object;
use crate::locale::Locale;
use crate::store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const PRESENCES: &[&str] = &["available", "busy", "away", "offline"];
/// Conversations one agent may hold at once, at most.
pub const MAX_CAPACITY: i64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub capacity: i64,
    pub presence: String,
    pub queues: Vec<String>,
    pub languages: Vec<Locale>,
    pub created_at: String,
    pub updated_at: String,
}

crate::document!(Agent, "agent");

impl Resource for Agent {
    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> Value {
        json!({
            "name": self.name,
            "capacity": self.capacity,
            "presence": self.presence,
            "queues": self.queues,
            "languages": self.languages,
        })
    }

    fn build(
        ctx: &Ctx,
        id: String,
        input: Object,
        existing: Option<&Self>,
    ) -> Result<Self, ApiError> {
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
            presence: input
                .choice("presence", PRESENCES)?
                .unwrap_or("offline")
                .to_owned(),
            queues,
            languages,
            created_at: ctx.created_at(existing.map(|e| e.created_at.as_str())),
            updated_at: ctx.now.clone(),
        })
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, ApiError> {
        Ok(store::list_all::<ApiKey>(ctx.kv(), ctx.org())?
            .into_iter()
            .filter(|key| key.agent_id.as_deref() == Some(self.id.as_str()))
            .map(|key| store::document_key::<ApiKey>(ctx.org(), &key.id))
            .collect())
    }
}
