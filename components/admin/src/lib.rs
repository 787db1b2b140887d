//! The admin component: a shell around `switchboard_core::admin`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve("admin", request, switchboard_core::admin::handle).await
}
