//! The conversations component: a shell around `switchboard_core::conversations::api`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve(
        "conversations",
        request,
        switchboard_core::conversations::api::handle,
    )
    .await
}
