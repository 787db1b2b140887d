//! The outbound component: a shell around `switchboard_core::outbound`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    spin_ports::serve(request, switchboard_core::outbound::handle).await
}
