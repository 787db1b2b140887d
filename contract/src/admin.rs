//! The admin centre's routes: organisations, keys, accounts, queues, agents,
//! workstreams, outbound configurations, warnings.

use crate::operation::{Api, Resource};
use switchboard_core::entities::queue::Queue;

pub fn describe(api: &mut Api) {
    Resource::<Queue>::new("/api/queues", "Queues", "queue").describe(api);
}
