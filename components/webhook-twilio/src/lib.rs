//! The Twilio webhook component: a shell around `switchboard_core::webhooks::twilio`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve(
        "webhook-twilio",
        request,
        switchboard_core::webhooks::twilio::handle,
    )
    .await
}
