//! `GET /health` and the contract itself.

use crate::operation::{Access, Api, Op};
use switchboard_core::health::HealthReport;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::RefOr;

pub fn describe(api: &mut Api) {
    let report = api.schema::<HealthReport>();
    api.add(
        Op::get(
            "/health",
            "health",
            "Is the app up, and does its store answer?",
        )
        .tag("Health")
        .access(Access::Public)
        .describe(
            "One read of the store, no write: call it as often as you like. No tenant's data.",
        )
        .answers(200, "Up, and the store answers.", report.clone())
        .answers(503, "The store does not answer.", report),
    );
    let document = RefOr::T(ObjectBuilder::new().schema_type(Type::Object).into());
    api.add(
        Op::get("/api/openapi.json", "openapi", "This document")
            .tag("Health")
            .access(Access::Public)
            .stateless()
            .describe("The API's contract, OpenAPI 3.1, as `docs/openapi.json` holds it.")
            .answers(200, "The document.", document),
    );
}
