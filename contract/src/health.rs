//! `GET /health` and the contract itself.

use crate::operation::{Access, Api, Op};
use switchboard_core::health::HealthReport;

pub fn describe(api: &mut Api) {
    let report = api.schema::<HealthReport>();
    api.add(
        Op::get("/health", "health", "Is the app up, and does its store answer?")
            .tag("Health")
            .access(Access::Public)
            .describe("One read of the store, no write: call it as often as you like. No tenant's data.")
            .answers(200, "Up, and the store answers.", report.clone())
            .answers(503, "The store does not answer.", report),
    );
}
