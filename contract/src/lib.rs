//! The API's contract: an OpenAPI 3.1 document generated from the code.
//!
//! Integrators build their calls from an API description, and a hand-kept
//! one drifts from the code. Here the schemas are derived from the core's
//! own types (`#[derive(ToSchema)]` where each type is defined, behind the
//! core's `openapi` feature so the components never carry it), and who may
//! call an operation comes from the same role lists the core enforces. What
//! cannot be derived — which path and method reach which handler — is
//! listed once per area ([`health`], [`admin`], …) and checked against the
//! running app by the test suite (`schemathesis`).
//!
//! `docs/openapi.json` is this document as committed; the console serves it
//! at `GET /api/openapi.json`, and a test fails when it differs from what
//! the code generates (`scripts/openapi.sh` rewrites it).

mod operation;

mod admin;
mod conversations;
mod health;
mod outbound;
pub mod power_automate;
mod templates;
mod webhooks;

use operation::{Api, DISPATCH_TOKEN, OPERATOR_TOKEN};
use switchboard_core::auth::{DISPATCH_TOKEN_VARIABLE, OPERATOR_TOKEN_VARIABLE};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths};

pub use operation::API_KEY;

/// The areas, in the order the README describes them.
const TAGS: &[(&str, &str)] = &[
    ("Organisations and keys", "Tenants and their API keys (R-TEN)."),
    ("Messaging accounts", "Provider accounts, their numbers and pages, and their validation (R-CFG-1..4)."),
    ("Configuration warnings", "What an admin should fix, such as page tokens due for refresh (R-CFG-4)."),
    ("Queues", "Where classified conversations wait for agents (R-CFG-5)."),
    ("Agents", "Who works conversations: capacity, presence, queues, languages."),
    ("Workstreams", "Channels, routing rules, distribution and bots."),
    ("Templates", "Localized message templates and their preview (R-TPL)."),
    ("Outbound configurations", "What a flow sends: the configuration ID to copy into it."),
    ("Outbound messages", "Sending a flow's contact list in batches of 100, and the jobs and activities that follow (R-OUT)."),
    ("Conversations", "The agent's side of a conversation: reading, replying, accepting, transferring, closing."),
    ("Contacts", "Customers across channels and their timeline."),
    ("Webhooks", "The providers' callbacks: inbound messages and delivery statuses, signed by each provider."),
    ("Health", "Whether the app is up and its store answers (R-OPS-1)."),
];

/// The whole document.
pub fn openapi() -> OpenApi {
    let mut api = Api::default();
    api.schema::<switchboard_core::api::ErrorBody>();
    admin::describe(&mut api);
    templates::describe(&mut api);
    outbound::describe(&mut api);
    conversations::describe(&mut api);
    webhooks::describe(&mut api);
    health::describe(&mut api);
    let mut paths = Paths::new();
    paths.paths = api.paths.into_iter().collect();
    let components = ComponentsBuilder::new()
        .schemas_from_iter(api.schemas)
        .responses_from_iter(operation::shared_failures())
        .security_scheme(API_KEY, bearer("An API key, `sb_{org}_{key id}_{secret}`, from `POST /api/orgs` (the first admin key) or `POST /api/keys`. The scopes an operation lists are the roles whose keys may call it."))
        .security_scheme(OPERATOR_TOKEN, bearer(&format!("The operator's token: the Spin variable `{OPERATOR_TOKEN_VARIABLE}`. Unset, the routes it opens are closed.")))
        .security_scheme(DISPATCH_TOKEN, bearer(&format!("The scheduler's token: the Spin variable `{DISPATCH_TOKEN_VARIABLE}`. Unset, dispatch is closed.")));
    let components = webhooks::signatures()
        .into_iter()
        .fold(components, |components, (name, scheme)| {
            components.security_scheme(name, scheme)
        })
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Switchboard")
                .version(switchboard_core::VERSION)
                .description(Some("An omnichannel messaging gateway for customer service: accounts, queues, agents, workstreams, templates, outbound messages, conversations and the providers' webhooks. Every error has the shape of the `Error` schema."))
                .license(Some(utoipa::openapi::LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build()))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(
            TAGS.iter()
                .map(|(name, description)| {
                    TagBuilder::new()
                        .name(*name)
                        .description(Some(*description))
                        .build()
                })
                .collect::<Vec<_>>(),
        ))
        .build()
}

/// The document as `docs/openapi.json` holds it.
pub fn json() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .expect("the document serializes to JSON");
    text.push('\n');
    text
}

fn bearer(description: &str) -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(description))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_document_is_what_the_code_generates() {
        let committed = include_str!("../../docs/openapi.json");
        assert!(
            committed == super::json(),
            "docs/openapi.json is not what the code generates: run scripts/openapi.sh and commit the file"
        );
    }
}
