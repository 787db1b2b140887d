//! The Twilio webhook component: a shell around `switchboard_core::webhooks::twilio`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    spin_ports::serve(request, switchboard_core::webhooks::twilio::handle).await
}
