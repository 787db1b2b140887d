//! Queues (R-CFG-5): where classified conversations wait for agents.

use super::{in_use, Ctx, Resource};
use crate::auth::Role;
use crate::entities::agent::Agent;
use crate::entities::queue::Queue;
use crate::entities::workstream::Workstream;
use crate::error::Error;
use crate::input::Object;
use crate::store;
use serde::Serialize;

/// A queue as `POST /api/queues` takes it; any other field is refused.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// `build` refuses other fields: the contract says so (`additionalProperties: false`).
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    /// Up to 100 characters, not blank.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub description: String,
}

impl Resource for Queue {
    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];
    type Input = QueueInput;

    fn input(&self) -> QueueInput {
        QueueInput {
            name: self.name.clone(),
            description: self.description.clone(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        input.only(&["name", "description"])?;
        Ok(Queue {
            id,
            name: input.name("name", 100)?,
            description: input
                .str("description")?
                .unwrap_or_default()
                .trim()
                .to_owned(),
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        let mut users: Vec<String> = store::list_all::<Workstream>(ctx.kv(), ctx.org())?
            .into_iter()
            .filter(|w| w.uses_queue(&self.id))
            .map(|w| format!("workstream {} ({})", w.id, w.name))
            .collect();
        users.extend(
            store::list_all::<Agent>(ctx.kv(), ctx.org())?
                .into_iter()
                .filter(|a| a.queues.contains(&self.id))
                .map(|a| format!("agent {} ({})", a.id, a.name)),
        );
        if users.is_empty() {
            Ok(Vec::new())
        } else {
            Err(in_use(
                "this queue",
                &users,
                "point them at another queue first",
            ))
        }
    }
}

/// 422 unless `id` is a queue of the organisation; `field` names where the
/// id was given (e.g. `queues[1]`).
pub fn require_queue(ctx: &Ctx, input: &Object, field: &str, id: &str) -> Result<(), Error> {
    match store::load::<Queue>(ctx.kv(), ctx.org(), id)? {
        Some(_) => Ok(()),
        None => Err(input.error(
            field,
            "unknown_queue",
            format!("no queue with id {id} in this organisation; create it with POST /api/queues"),
        )),
    }
}
