//! An outbound configuration (R-OUT-1) as stored: what a flow's send call
//! uses.

use crate::channel::Channel;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboundConfig {
    pub id: String,
    pub name: String,
    pub show_on_timeline: bool,
    pub channel_type: Channel,
    /// The number messages are sent from.
    pub channel: String,
    /// The account that owns `channel`.
    pub account_id: String,
    pub template_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

crate::document!(OutboundConfig, "outbound_config");
