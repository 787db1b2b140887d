//! The HTTP surface the core speaks, independent of any host's request type.
//!
//! Components translate their host's request into [`Request`] and write the
//! returned [`Response`] back; every error body has the one shape SPEC.md
//! R-CFG-8 fixes: `{"error":{"code":"…","message":"…","field":"…"}}`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, ProviderFailure};

pub use crate::ports::Method;

/// The largest request body the app reads (SPEC.md R-OPS-3); the component
/// shells refuse a larger one with [`Error::too_large`] before reading it.
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
/// that tells the caller what to do, and the offending field where there is
/// one. The only place an [`Error`] becomes HTTP.
impl Error {
    /// 404 for a path no route serves.
    pub fn no_route(path: &str) -> Error {
        Error::not_found(
            "not_found",
            format!("no resource at {path}; see the API section of README.md"),
        )
    }

    /// 413: the body is over [`MAX_REQUEST_BODY`]; nothing of it was used.
    pub fn too_large() -> Error {
        Error::TooLarge {
            field: None,
            code: "payload_too_large",
            message: format!(
                "the request body is over {} bytes (1 MiB); send less per request (outbound lists are sent in batches of 100 contacts)",
                MAX_REQUEST_BODY
            ),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::Malformed { .. } => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden { .. } => 403,
            Error::NotFound { .. } => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict { .. } | Error::ConversationChanged => 409,
            Error::Gone { .. } => 410,
            Error::TooLarge { .. } => 413,
            Error::Invalid { .. } => 422,
            Error::Provider(ProviderFailure::RateLimited(_)) => 429,
            Error::CorruptDocument { .. } | Error::Misconfigured(_) => 500,
            Error::Provider(
                ProviderFailure::Rejected(_)
                | ProviderFailure::Unreachable(_)
                | ProviderFailure::OutcomeUnknown(_),
            ) => 502,
            Error::Store(_)
            | Error::NoStore(_)
            | Error::InProgress(_)
            | Error::Unfinished { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(_) | Error::NoStore(_) => "store_unavailable",
            Error::CorruptDocument { .. } => "corrupt_document",
            Error::ConversationChanged => "conversation_changed",
            Error::InProgress(_) => "in_progress",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Unauthorized(_) => "unauthorized",
            Error::Misconfigured(_) => "misconfigured",
            Error::Provider(ProviderFailure::RateLimited(_)) => "provider_rate_limited",
            Error::Provider(ProviderFailure::Rejected(_)) => "provider_rejected",
            Error::Provider(ProviderFailure::Unreachable(_)) => "provider_unreachable",
            Error::Provider(ProviderFailure::OutcomeUnknown(_)) => "provider_outcome_unknown",
            Error::Unfinished { code, .. }
            | Error::NotFound { code, .. }
            | Error::Invalid { code, .. }
            | Error::Malformed { code, .. }
            | Error::TooLarge { code, .. }
            | Error::Forbidden { code, .. }
            | Error::Conflict { code, .. }
            | Error::Gone { code, .. } => code,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Error::Store(error) => format!("{error}; nothing was changed, retry later"),
            Error::NoStore(error) => format!("{error}; retry later"),
            Error::CorruptDocument { key, reason } => {
                format!("the stored document {key} cannot be read ({reason})")
            }
            Error::ConversationChanged => {
                "the conversation changed while this request was handled; read it again and retry"
                    .into()
            }
            Error::MethodNotAllowed(allowed) => {
                format!("this route answers {} only", allowed.join(", "))
            }
            Error::InProgress(message)
            | Error::Unauthorized(message)
            | Error::Misconfigured(message)
            | Error::Provider(
                ProviderFailure::RateLimited(message)
                | ProviderFailure::Rejected(message)
                | ProviderFailure::Unreachable(message)
                | ProviderFailure::OutcomeUnknown(message),
            )
            | Error::Unfinished { message, .. }
            | Error::NotFound { message, .. }
            | Error::Invalid { message, .. }
            | Error::Malformed { message, .. }
            | Error::TooLarge { message, .. }
            | Error::Forbidden { message, .. }
            | Error::Conflict { message, .. }
            | Error::Gone { message, .. } => message.clone(),
        }
    }

    /// The request field at fault, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. }
            | Error::Malformed { field, .. }
            | Error::Forbidden { field, .. }
            | Error::Conflict { field, .. }
            | Error::TooLarge { field, .. } => field.as_deref(),
            Error::Store(_)
            | Error::NoStore(_)
            | Error::CorruptDocument { .. }
            | Error::ConversationChanged
            | Error::InProgress(_)
            | Error::Unfinished { .. }
            | Error::NotFound { .. }
            | Error::MethodNotAllowed(_)
            | Error::Unauthorized(_)
            | Error::Gone { .. }
            | Error::Misconfigured(_)
            | Error::Provider(_) => None,
        }
    }

    /// `Retry-After` for a 503: when a busy lease is sure to have expired,
    /// or a moment for a store that failed.
    fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Error::InProgress(_) => Some(crate::lease::retry_after_seconds()),
            Error::Store(_) | Error::NoStore(_) | Error::Unfinished { .. } => {
                Some(STORE_RETRY_AFTER_SECONDS)
            }
            Error::CorruptDocument { .. }
            | Error::ConversationChanged
            | Error::NotFound { .. }
            | Error::MethodNotAllowed(_)
            | Error::Invalid { .. }
            | Error::Malformed { .. }
            | Error::TooLarge { .. }
            | Error::Unauthorized(_)
            | Error::Forbidden { .. }
            | Error::Conflict { .. }
            | Error::Gone { .. }
            | Error::Misconfigured(_)
            | Error::Provider(_) => None,
        }
    }

    pub fn into_response(self) -> Response {
        self.into_response_with(Map::new(), None)
    }

    /// The response with `extra` members beside the code and message, and
    /// a `Retry-After` the caller knows better (a provider's), if any.
    pub fn into_response_with(
        self,
        extra: Map<String, Value>,
        retry_after: Option<u64>,
    ) -> Response {
        let message = self.message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
                field: self.field(),
                extra,
            },
        };
        let response = Response::json(self.status(), &body);
        match retry_after.or_else(|| self.retry_after_seconds()) {
            Some(seconds) => response.with_header("retry-after", &seconds.to_string()),
            None => response,
        }
    }
}

/// Every error the API answers (SPEC.md R-CFG-8).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong, for a program (`code`) and for a person (`message`).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail<'a> {
    /// Stable and machine-readable, e.g. `invalid_phone`.
    code: &'a str,
    /// What happened and what to do next.
    message: &'a str,
    /// The request field at fault, as a path (`ContactList[3].tocontactid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Members some errors add, e.g. `window_closed_at`.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    extra: Map<String, Value>,
}

/// How long a caller waits before retrying after the store failed.
pub const STORE_RETRY_AFTER_SECONDS: u64 = 5;

/// Answers 405 with the `Allow` header HTTP requires.
pub fn method_not_allowed(allowed: &'static [&'static str]) -> Response {
    Error::MethodNotAllowed(allowed)
        .into_response()
        .with_header("allow", &allowed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_spec_shape() {
        let response = Error::invalid("number", "invalid_phone", "digits only").into_response();
        assert_eq!(response.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_phone", "message": "digits only", "field": "number"}})
        );
    }

    #[test]
    fn extra_members_follow_the_spec_shape() {
        let mut extra = Map::new();
        extra.insert("window_closed_at".into(), "2026-01-01T00:00:00.000Z".into());
        let response =
            Error::conflict("reply_window_closed", "wait").into_response_with(extra, Some(7));
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            r#"{"error":{"code":"reply_window_closed","message":"wait","window_closed_at":"2026-01-01T00:00:00.000Z"}}"#
        );
        assert!(response
            .headers
            .contains(&("retry-after".into(), "7".into())));
    }

    #[test]
    fn a_lost_race_is_a_409_and_a_busy_lease_a_503_with_retry_after() {
        let changed = Error::ConversationChanged.into_response();
        assert_eq!(changed.status, 409);
        assert!(!changed
            .headers
            .iter()
            .any(|(name, _)| name == "retry-after"));
        let busy = Error::InProgress("busy".into()).into_response();
        assert_eq!(busy.status, 503);
        assert!(busy.headers.iter().any(|(name, _)| name == "retry-after"));
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
