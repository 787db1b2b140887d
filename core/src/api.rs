//! The HTTP surface the core speaks, independent of any host's request type.
//!
//! Components translate their host's request into [`Request`] and write the
//! returned [`Response`] back; every error body has the one shape SPEC.md
//! R-CFG-8 fixes: `{"error":{"code":"…","message":"…","field":"…"}}`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Other,
}

impl Method {
    pub fn parse(method: &str) -> Method {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string, e.g. `/health`.
    pub path: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        let body = serde_json::to_vec(value).expect("API types serialize to JSON");
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A client-facing error: a status, a stable machine-readable code, a message
/// that tells the caller what to do, and the offending field where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            status: 404,
            code: "not_found",
            message: format!("no resource at {path}; see the API section of README.md"),
            field: None,
        }
    }

    pub fn method_not_allowed(allowed: &'static [&'static str]) -> ApiError {
        ApiError {
            status: 405,
            code: "method_not_allowed",
            message: format!("this route answers {} only", allowed.join(", ")),
            field: None,
        }
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        Response::json(self.status, &body)
    }
}

/// Answers 405 with the `Allow` header HTTP requires.
pub fn method_not_allowed(allowed: &'static [&'static str]) -> Response {
    ApiError::method_not_allowed(allowed)
        .into_response()
        .with_header("allow", &allowed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_spec_shape() {
        let response = ApiError {
            status: 422,
            code: "invalid_phone",
            message: "digits only".into(),
            field: Some("number".into()),
        }
        .into_response();
        assert_eq!(response.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_phone", "message": "digits only", "field": "number"}})
        );
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let response = method_not_allowed(&["GET"]);
        assert_eq!(response.status, 405);
        assert!(response
            .headers
            .contains(&("allow".to_string(), "GET".to_string())));
    }
}
