//! The TeleSign webhook component: a shell around `switchboard_core::webhooks::telesign`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    match spin_ports::SpinPorts::open() {
        Ok(ports) => spin_ports::to_spin_response(
            switchboard_core::webhooks::telesign::handle(
                &spin_ports::to_core_request(request),
                &ports.ports(),
            )
            .await,
        ),
        Err(error) => spin_ports::store_unavailable(error),
    }
}
