//! The Business Messages webhook component: a shell around the core's webhook pipeline for `providers::google`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve(
        "webhook-gbm",
        request,
        switchboard_core::webhooks::serve::<switchboard_core::providers::google::Settings>,
    )
    .await
}
