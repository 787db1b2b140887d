//! The admin component's routes: `/health` and the configuration API.

use crate::api::{method_not_allowed, Method, Request, Response};
use crate::error::Error;
use crate::health;
use crate::ports::Ports;

pub async fn handle(request: &Request, ports: &Ports<'_>) -> Response {
    match request.path.as_str() {
        "/health" => match request.method {
            Method::Get => health::respond(&health::check(ports.kv)),
            _ => method_not_allowed(&["GET"]),
        },
        _ => crate::config::route(request, ports)
            .await
            .unwrap_or_else(Error::into_response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{block_on, MemoryPorts};

    #[test]
    fn health_answers_get_only() {
        let ports = MemoryPorts::default();
        let ok = block_on(handle(
            &Request::new(Method::Get, "/health"),
            &ports.ports(),
        ));
        assert_eq!(ok.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
        assert_eq!(body["key_value"]["status"], "reachable");
        for method in [Method::Post, Method::Delete, Method::Put] {
            let refused = block_on(handle(&Request::new(method, "/health"), &ports.ports()));
            assert_eq!(refused.status, 405);
        }
    }

    #[test]
    fn unknown_paths_are_json_404s() {
        let ports = MemoryPorts::default();
        let response = block_on(handle(&Request::new(Method::Get, "/nope"), &ports.ports()));
        assert_eq!(response.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}
