//! The TeleSign webhook component: a shell around the core's webhook pipeline for `providers::telesign`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve(
        "webhook-telesign",
        request,
        switchboard_core::webhooks::serve::<switchboard_core::providers::telesign::Settings>,
    )
    .await
}
