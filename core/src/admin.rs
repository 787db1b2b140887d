//! The admin component's routes. For now: `/health`.

use crate::api::{method_not_allowed, ApiError, Method, Request, Response};
use crate::health;
use crate::ports::Ports;

pub fn handle(request: &Request, ports: &Ports) -> Response {
    match request.path.as_str() {
        "/health" => match request.method {
            Method::Get => health::respond(&health::check(ports.kv, ports.random)),
            _ => method_not_allowed(&["GET"]),
        },
        path => ApiError::not_found(path).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryPorts;

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.into(),
            body: Vec::new(),
        }
    }

    #[test]
    fn health_answers_get_only() {
        let ports = MemoryPorts::default();
        let ok = handle(&request(Method::Get, "/health"), &ports.ports());
        assert_eq!(ok.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
        assert_eq!(body["key_value"]["status"], "reachable");
        for method in [Method::Post, Method::Delete, Method::Put] {
            assert_eq!(
                handle(&request(method, "/health"), &ports.ports()).status,
                405
            );
        }
    }

    #[test]
    fn unknown_paths_are_json_404s() {
        let ports = MemoryPorts::default();
        let response = handle(&request(Method::Get, "/nope"), &ports.ports());
        assert_eq!(response.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}
