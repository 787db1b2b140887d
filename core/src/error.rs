//! Why the core could not do what was asked.
//!
//! The core says *what* went wrong; only the HTTP edge ([`crate::api`])
//! decides the status, code and message a client sees. Code that recovers
//! from a failure (a commit that lost its race, a provider that never
//! answered) matches on a variant, never on an error code.

use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The store failed; every change is one write transaction, so nothing
    /// was half-written and a retry may succeed.
    Store(StoreError),
    /// The store could not even be opened.
    NoStore(StoreError),
    /// A stored document cannot be read as what its key holds.
    CorruptDocument { key: String, reason: String },
    /// A conversation's commit lost to another change made since it was
    /// read ([`crate::conversations::commit`]): read it again and retry.
    ConversationChanged,
    /// Another request holds the lease this one needs (or held it and died).
    InProgress(String),
    /// Part of the work is done and the rest is not: the same request
    /// finishes it.
    Unfinished { code: &'static str, message: String },
    /// The request names nothing that exists (a route, an entity, an account).
    NotFound { code: &'static str, message: String },
    /// The route exists but does not answer this method.
    MethodNotAllowed(&'static [&'static str]),
    /// A field of the request breaks a rule (R-CFG-8).
    Invalid {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// The request cannot be read as the route expects at all.
    Malformed {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// The request carries more than one request may.
    TooLarge {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// No credentials, or wrong ones.
    Unauthorized(String),
    /// The caller is known but may not do this.
    Forbidden {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// The request contradicts what is stored.
    Conflict {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// What the request names existed and was deleted.
    Gone { code: &'static str, message: String },
    /// The operator's configuration is missing or wrong.
    Misconfigured(String),
    /// A provider did not take a message or a request of ours.
    Provider(ProviderFailure),
}

/// How a provider failed us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderFailure {
    /// It refused for now: too many requests from this account.
    RateLimited(String),
    /// It answered and refused.
    Rejected(String),
    /// It never answered: what was asked may still have happened.
    Unreachable(String),
    /// It never answered a send, which is recorded as of unknown fate.
    OutcomeUnknown(String),
}

impl Error {
    /// A field that breaks a rule.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            field: Some(field.into()),
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            field: None,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Error {
        Error::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Error {
        Error::Forbidden {
            field: None,
            code,
            message: message.into(),
        }
    }

    pub fn malformed(code: &'static str, message: impl Into<String>) -> Error {
        Error::Malformed {
            field: None,
            code,
            message: message.into(),
        }
    }

    /// Whether the gateway refused the request as it stands (it names
    /// nothing, breaks a rule, is not allowed, is over a limit, or a
    /// provider refused it), as opposed to failing to do it: the store, the
    /// configuration or a provider's connection failed, and the same
    /// request may succeed later.
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::NotFound { .. }
            | Error::MethodNotAllowed(_)
            | Error::Invalid { .. }
            | Error::Malformed { .. }
            | Error::TooLarge { .. }
            | Error::Unauthorized(_)
            | Error::Forbidden { .. }
            | Error::Conflict { .. }
            | Error::ConversationChanged
            | Error::Gone { .. }
            | Error::Provider(ProviderFailure::RateLimited(_)) => true,
            Error::Store(_)
            | Error::NoStore(_)
            | Error::CorruptDocument { .. }
            | Error::InProgress(_)
            | Error::Unfinished { .. }
            | Error::Misconfigured(_)
            | Error::Provider(
                ProviderFailure::Rejected(_)
                | ProviderFailure::Unreachable(_)
                | ProviderFailure::OutcomeUnknown(_),
            ) => false,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        Error::Store(error)
    }
}
