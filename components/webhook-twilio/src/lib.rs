//! The Twilio webhook component: a shell around the core's webhook pipeline for `providers::twilio`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve(
        "webhook-twilio",
        request,
        switchboard_core::webhooks::serve::<switchboard_core::providers::twilio::Settings>,
    )
    .await
}
