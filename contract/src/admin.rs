//! The admin centre's routes: organisations, keys, accounts, queues, agents,
//! workstreams, outbound configurations, warnings.

use crate::operation::{page, string, Access, Api, Op, Resource};
use switchboard_core::auth::{ApiKeyView, Role};
use switchboard_core::config::accounts::{
    Account, AccountView, SettingsInput, SettingsView, Validation,
};
use switchboard_core::config::agents::AgentWithLoad;
use switchboard_core::config::keys::KeyIdentity;
use switchboard_core::config::orgs::{Org, OrgCreated};
use switchboard_core::config::warnings::Warnings;
use switchboard_core::config::Resource as _;
use switchboard_core::entities::agent::{Agent, Presence};
use switchboard_core::entities::outbound_config::OutboundConfig;
use switchboard_core::entities::queue::Queue;
use switchboard_core::entities::workstream::Workstream;
use switchboard_core::input::Word;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

const ORGS: &str = "Organisations and keys";
const ACCOUNTS: &str = "Messaging accounts";
const AGENTS: &str = "Agents";
const WORKSTREAMS: &str = "Workstreams";

pub fn describe(api: &mut Api) {
    orgs(api);
    keys(api);
    accounts(api);
    Resource::<Queue>::new("/api/queues", "Queues", "queue").describe(api);
    agents(api);
    workstreams(api);
    Resource::<OutboundConfig>::new(
        "/api/outbound-configs",
        "Outbound configurations",
        "outbound configuration",
    )
    .describe(api);
    warnings(api);
}

/// A body with a required `name` of at most `max` characters, and `more`.
fn named(max: usize, more: ObjectBuilder) -> RefOr<Schema> {
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max));
    RefOr::T(Schema::Object(
        more.property("name", name).required("name").build(),
    ))
}

fn orgs(api: &mut Api) {
    let created = api.schema::<OrgCreated>();
    let org = api.schema::<Org>();
    api.add(
        Op::post("/api/orgs", "create_org", "Create an organisation")
            .tag(ORGS)
            .access(Access::Operator)
            .describe("The operator creates a tenant and receives its first admin key. Its token, `api_key.key`, is in this response only: keep it.")
            .body(named(200, ObjectBuilder::new()))
            .answers(201, "The organisation and its first admin key, token included.", created),
    );
    api.add(
        Op::get("/api/orgs/{id}", "read_org", "Read an organisation")
            .tag(ORGS)
            .access(Access::Key(Role::ALL))
            .describe("Any key reads its own organisation; any other id is 404.")
            .path_param("id", "The organisation's id (in the key: `sb_{org}_…`).")
            .answers(200, "The organisation.", org),
    );
}

fn keys(api: &mut Api) {
    let key = api.schema::<ApiKeyView>();
    let role = api.schema::<Role>();
    let admin = Access::Key(&[Role::Admin]);
    let body = ObjectBuilder::new()
        .property("role", role)
        .required("role")
        .property("agent_id", string());
    api.add(
        Op::get("/api/keys", "list_keys", "List the API keys")
            .tag(ORGS)
            .access(admin)
            .paged()
            .answers(
                200,
                "A page of keys, oldest first, tokens masked.",
                page(key.clone()),
            ),
    );
    api.add(
        Op::post("/api/keys", "create_key", "Create an API key")
            .tag(ORGS)
            .access(admin)
            .describe("`agent_id` binds an `agent` key to one agent of the organisation: required for that role, refused for the others. The token, `key`, is in this response only: only its SHA-256 is stored.")
            .body(named(100, body))
            .answers(201, "The key, its token shown whole this once.", key.clone()),
    );
    let identity = api.schema::<KeyIdentity>();
    api.add(
        Op::get("/api/keys/me", "read_own_key", "Tell who the calling key is")
            .tag(ORGS)
            .access(Access::Key(Role::ALL))
            .describe("Any key, of any role, reads its own organisation, id, name and role, and for an `agent` key the agent it acts as: what a client needs to know what the key may do. Never the token or its hash.")
            .answers(200, "The key making the request.", identity),
    );
    api.add(
        Op::get("/api/keys/{id}", "read_key", "Read an API key")
            .tag(ORGS)
            .access(admin)
            .answers(200, "The key, its token masked.", key),
    );
    api.add(
        Op::delete("/api/keys/{id}", "revoke_key", "Revoke an API key")
            .tag(ORGS)
            .access(admin)
            .describe(
                "The key stops working at once. A key cannot revoke itself: use another admin key.",
            )
            .answers_empty(204, "Revoked.")
            .fails(409, "The key is the one making the request (`own_key`)."),
    );
}

fn accounts(api: &mut Api) {
    api.discriminate::<SettingsView>("provider");
    api.discriminate::<SettingsInput>("provider");
    let shown = api.schema::<AccountView>();
    Resource::<Account>::new("/api/accounts", ACCOUNTS, "account")
        .saves(|op| {
            op.describe("The fields are the provider's, chosen by `provider`, which an update cannot change. Secrets are write-only: reads show them masked, and an update that leaves one out keeps it. New Facebook pages and page tokens are checked with Graph first: a token of another page is 422 (`page_token_mismatch`).")
                .fails(502, "The provider could not be asked (Facebook's Graph, checking page tokens); nothing was saved. Retry later.")
        })
        .deletes(|op| {
            op.describe("Refused while a workstream or an outbound configuration uses one of its numbers or pages. Its webhooks answer 410 afterwards.")
        })
        .describe_showing(api, shown);
    let validation = api.schema::<Validation>();
    api.add(
        Op::post(
            "/api/accounts/{id}/validate",
            "validate_account",
            "Check an account's credentials with its provider",
        )
        .tag(ACCOUNTS)
        .access(Access::Key(&[Role::Admin]))
        .describe("Asks the provider whether the stored credentials work and records the outcome as the account's `last_validation`. `status` is `valid`, `invalid` (the provider refused them: fix them) or `unreachable` (the provider could not be asked: try again later); a Facebook account has each page's outcome too. Takes no body.")
        .answers(200, "The outcome, as recorded.", validation),
    );
}

fn agents(api: &mut Api) {
    Resource::<Agent>::new("/api/agents", AGENTS, "agent")
        .deletes(|op| op.describe("Revokes the keys bound to the agent with it."))
        .describe(api);
    let with_load = api.schema::<AgentWithLoad>();
    let agent = api.schema::<Agent>();
    let presence = api.schema::<Presence>();
    api.add(
        Op::get(
            "/api/agents/{id}",
            "read_agent",
            "Read an agent and its load",
        )
        .tag(AGENTS)
        .access(Access::Key(Agent::READERS))
        .answers(
            200,
            "The agent, with `load`: the conversations it holds now, recounted.",
            with_load,
        ),
    );
    let body = ObjectBuilder::new()
        .property("presence", presence)
        .required("presence");
    api.add(
        Op::post("/api/agents/{id}/presence", "set_agent_presence", "Set an agent's presence")
            .tag(AGENTS)
            .access(Access::Key(&[Role::Admin, Role::Agent]))
            .describe("An agent key sets its own agent's presence (another agent's is 403); an admin key sets anyone's. Then the conversations waiting in the agent's queues are offered to it, as far as its capacity allows.")
            .body(RefOr::T(Schema::Object(body.build())))
            .answers(200, "The agent, as changed.", agent)
            .fails(503, "The store failed, or the presence is saved but offering what waits did not finish (`offer_incomplete`, `in_progress`): send the same request again after `Retry-After` seconds.")
            .answer_header(503, "retry-after", "Seconds to wait before retrying."),
    );
}

fn workstreams(api: &mut Api) {
    Resource::<Workstream>::new("/api/workstreams", WORKSTREAMS, "workstream")
        .saves(|op| {
            op.describe("Each channel (`account_id` and `address`) belongs to one workstream: one of another is 409 (`channel_in_use`). A save that gives a workstream its first bot makes a `bot_secret`, shown whole in this response only; `bot_secret` itself is never an input.")
        })
        .describe(api);
    let shown = api.schema::<Workstream>();
    api.add(
        Op::post(
            "/api/workstreams/{id}/rotate-bot-secret",
            "rotate_bot_secret",
            "Give a workstream's bot a new secret",
        )
        .tag(WORKSTREAMS)
        .access(Access::Key(Workstream::WRITERS))
        .describe("The old secret signs nothing from now on: give the new one to the bot at once. Takes no body.")
        .answers(200, "The workstream, its new `bot_secret` shown whole this once.", shown)
        .fails(409, "The workstream has no bot (`no_bot`): set its `bot_url` first."),
    );
}

fn warnings(api: &mut Api) {
    let warnings = api.schema::<Warnings>();
    api.add(
        Op::get("/api/warnings", "list_warnings", "List what an admin should fix")
            .tag("Configuration warnings")
            .access(Access::AdminOrOperator)
            .describe("Facebook page tokens due for refresh (every 60 days). An admin key sees its organisation's; the operator token sees every organisation's.")
            .answers(200, "The warnings; none is an empty list.", warnings),
    );
}
