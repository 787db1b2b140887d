//! The conversations component: a shell around `switchboard_core::conversations::api`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    spin_ports::serve(request, switchboard_core::conversations::api::handle).await
}
