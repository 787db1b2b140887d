//! A typed client for the outbound API: bodies are the core's
//! [`SendRequest`], answers are read into the structs the server builds
//! them from, so a field renamed on either side breaks the tests' build
//! rather than a run. Tests of malformed bodies pass raw JSON to [`send`].

use crate::api::{Gateway, DISPATCH_TOKEN};
use devhost::Handled;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use switchboard_core::entities::activity::Activity;
pub use switchboard_core::outbound::contact_list::{Contact, SendRequest};
pub use switchboard_core::outbound::jobs::{DispatchAnswer, JobProgress, JobState, JobView};
pub use switchboard_core::outbound::send::{ContactResult, SendAnswer, Status, Summary};

/// `POST /api/outbound/{config}/send` with `body` as JSON, and an
/// `Idempotency-Key` when given.
pub async fn send(
    gateway: &Gateway,
    key: &str,
    config: &str,
    body: &impl Serialize,
    idempotency_key: Option<&str>,
) -> Handled {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("/api/outbound/{config}/send"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    let body = serde_json::to_vec(body).expect("the body serializes");
    crate::send(
        &gateway.app,
        request.body(bytes::Bytes::from(body)).unwrap(),
    )
    .await
}

/// The answer's body as `T`; panics with the body when it is not one.
pub fn read<T: DeserializeOwned>(handled: &Handled) -> T {
    serde_json::from_slice(handled.response.body()).unwrap_or_else(|error| {
        panic!(
            "the {} answer is not a {} ({error}): {}",
            handled.status(),
            std::any::type_name::<T>(),
            handled.text()
        )
    })
}

/// `GET /api/outbound/jobs/{id}`.
pub async fn job(gateway: &Gateway, key: &str, id: &str) -> JobView {
    ok(gateway, key, &format!("/api/outbound/jobs/{id}")).await
}

/// `GET /api/outbound/activities/{id}`.
pub async fn activity(gateway: &Gateway, key: &str, id: &str) -> Activity {
    ok(gateway, key, &format!("/api/outbound/activities/{id}")).await
}

/// `POST /api/outbound/dispatch` with the scheduler's token.
pub async fn dispatch(gateway: &Gateway) -> DispatchAnswer {
    let handled = gateway
        .call("POST", "/api/outbound/dispatch", Some(DISPATCH_TOKEN), None)
        .await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    read(&handled)
}

async fn ok<T: DeserializeOwned>(gateway: &Gateway, key: &str, path: &str) -> T {
    let handled = gateway.call("GET", path, Some(key), None).await;
    assert_eq!(handled.status(), 200, "GET {path}: {}", handled.text());
    read(&handled)
}
