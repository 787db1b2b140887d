//! The benches' no-op component: every request answers 200 with an empty
//! body, reading nothing, not even the request. What a request costs it is
//! the host's share (HTTP, instantiation, the wasi:http plumbing), so the
//! benches print the app's throughput as a ratio of this one's on the same
//! dev host (see benches/noop/spin.toml).

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: IncomingRequest) -> Response {
    Response::new(200, ())
}
