//! The outbound component: a shell around `switchboard_core::outbound`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve("outbound", request, switchboard_core::outbound::handle).await
}
