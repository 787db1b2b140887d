//! The templates component: a shell around `switchboard_core::templates`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve("templates", request, async |request, ports| {
        switchboard_core::templates::handle(request, ports)
    })
    .await
}
