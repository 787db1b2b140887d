//! An agent (R-CFG-5) as stored: who takes conversations, how many at
//! once, from which queues, in which languages.

use crate::input::Word;
use crate::locale::Locale;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Whether an agent takes conversations now; only an available agent is
/// offered any (R-CONV-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Available,
    Busy,
    Away,
    Offline,
}

impl Word for Presence {
    const ALL: &'static [Presence] = &[
        Presence::Available,
        Presence::Busy,
        Presence::Away,
        Presence::Offline,
    ];

    fn word(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Busy => "busy",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Conversations the agent may hold at once.
    pub capacity: i64,
    pub presence: Presence,
    /// The ids of the queues the agent serves.
    pub queues: Vec<String>,
    /// The languages the agent speaks.
    pub languages: Vec<Locale>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

crate::document!(Agent, "agent");
