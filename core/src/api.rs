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

    /// The method as HTTP spells it (`OTHER` for one the app does not serve).
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// The largest request body the app reads (SPEC.md R-OPS-3); the component
/// shells refuse a larger one with [`ApiError::too_large`] before reading it.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string, e.g. `/health`.
    pub path: String,
    /// The raw query string without `?` (empty when there is none).
    pub query: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::encoding::form_pairs(&self.query)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The path split on `/`, without the empty leading segment.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_matches('/').split('/').collect()
    }
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

    /// `204 No Content`: what a delete answers.
    pub fn no_content() -> Response {
        Response {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
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

    /// A 4xx for a request body or field that breaks a rule (R-CFG-8).
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status: 422,
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The store failed: a 503 the caller may retry; nothing was half-written
    /// because every change is one write transaction.
    pub fn store(error: crate::ports::StoreError) -> ApiError {
        ApiError {
            status: 503,
            code: "store_unavailable",
            message: format!("{error}; nothing was changed, retry later"),
            field: None,
        }
    }

    /// 413: the body is over [`MAX_REQUEST_BODY`]; nothing of it was used.
    pub fn too_large() -> ApiError {
        ApiError {
            status: 413,
            code: "payload_too_large",
            message: format!(
                "the request body is over {} bytes (1 MiB); send less per request (outbound lists are sent in batches of 100 contacts)",
                MAX_REQUEST_BODY
            ),
            field: None,
        }
    }

    /// 503: another request holds the lease this one needs (or held it and
    /// died); a retry after the lease is sure to find it free (R-OPS-4).
    pub fn in_progress(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 503,
            code: "in_progress",
            message: message.into(),
            field: None,
        }
    }

    /// `Retry-After` for a 503: when a busy lease is sure to have expired,
    /// or a moment for a store that failed.
    fn retry_after_seconds(&self) -> Option<u64> {
        match (self.status, self.code) {
            (503, "in_progress") => Some(crate::lease::retry_after_seconds()),
            (503, _) => Some(STORE_RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response {
        let retry_after = self.retry_after_seconds();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let response = Response::json(self.status, &body);
        match retry_after {
            Some(seconds) => response.with_header("retry-after", &seconds.to_string()),
            None => response,
        }
    }
}

/// How long a caller waits before retrying after the store failed.
pub const STORE_RETRY_AFTER_SECONDS: u64 = 5;

impl From<crate::ports::StoreError> for ApiError {
    fn from(error: crate::ports::StoreError) -> ApiError {
        ApiError::store(error)
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
