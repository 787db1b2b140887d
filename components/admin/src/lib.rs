//! The admin component: a shell around `switchboard_core::admin`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    spin_ports::serve(request, switchboard_core::admin::handle).await
}
