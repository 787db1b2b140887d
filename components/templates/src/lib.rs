//! The templates component: a shell around `switchboard_core::templates`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    spin_ports::serve(request, async |request, ports| {
        switchboard_core::templates::handle(request, ports)
    })
    .await
}
