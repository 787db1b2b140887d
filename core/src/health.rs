//! `GET /health` (SPEC.md R-OPS-1): is the app up, and does its store answer?
//!
//! The route is public, so it shows no tenant's data and writes nothing:
//! anyone may call it as often as they like, and a write per call would
//! spend the store's write transactions (principle 3) that webhooks need.
//! The store check is one read of a key nothing writes: any answer, absent
//! included, means the store answers. A store that accepts writes and loses
//! them goes unnoticed here; the write paths report their own failures.
//!
//! Configuration warnings (R-CFG-4) name tenants' pages and accounts, so
//! they are read with a credential instead (`GET /api/warnings`).

use crate::api::Response;
use crate::ports::KeyValue;
use serde::Serialize;

/// The key the check reads; outside every organisation's namespace, and
/// never written.
pub const PROBE_KEY: &str = "health/probe";

#[derive(Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// `ok` when everything answers, `degraded` otherwise.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(ok|degraded)$"))]
    pub status: &'static str,
    pub version: &'static str,
    pub key_value: StoreHealth,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreHealth {
    /// `reachable` or `unreachable`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(reachable|unreachable)$"))]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One read round trip, no write.
pub fn check(kv: &dyn KeyValue) -> HealthReport {
    let (status, key_value) = match kv.get(PROBE_KEY) {
        Ok(_) => (
            "ok",
            StoreHealth {
                status: "reachable",
                error: None,
            },
        ),
        Err(error) => (
            "degraded",
            StoreHealth {
                status: "unreachable",
                error: Some(error.to_string()),
            },
        ),
    };
    HealthReport {
        status,
        version: crate::VERSION,
        key_value,
    }
}

/// 200 when healthy, 503 when a dependency does not answer, so load balancers
/// and orchestrators can act on the status alone.
pub fn respond(report: &HealthReport) -> Response {
    let status = if report.status == "ok" { 200 } else { 503 };
    Response::json(status, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StoreError;

    /// A store that answers reads and refuses every write, or refuses all.
    struct ReadOnlyStore {
        reads_fail: bool,
    }

    impl ReadOnlyStore {
        fn answer<T>(&self, value: T) -> Result<T, StoreError> {
            if self.reads_fail {
                Err(StoreError("the store is down".into()))
            } else {
                Ok(value)
            }
        }
    }

    fn refused<T>() -> Result<T, StoreError> {
        Err(StoreError("health must not write".into()))
    }

    impl KeyValue for ReadOnlyStore {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.answer(None)
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
            refused()
        }
        fn delete(&self, _: &str) -> Result<(), StoreError> {
            refused()
        }
        fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            self.answer(vec![None; keys.len()])
        }
        fn set_many(&self, _: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
            refused()
        }
        fn delete_many(&self, _: &[String]) -> Result<(), StoreError> {
            refused()
        }
        fn increment(&self, _: &str, _: i64) -> Result<i64, StoreError> {
            refused()
        }
    }

    #[test]
    fn a_store_that_answers_reads_is_reachable_without_a_write() {
        let report = check(&ReadOnlyStore { reads_fail: false });
        assert_eq!(
            report,
            HealthReport {
                status: "ok",
                version: crate::VERSION,
                key_value: StoreHealth {
                    status: "reachable",
                    error: None
                },
            }
        );
        assert_eq!(respond(&report).status, 200);
    }

    #[test]
    fn a_store_that_fails_is_unreachable() {
        let report = check(&ReadOnlyStore { reads_fail: true });
        assert_eq!(report.status, "degraded");
        assert_eq!(report.key_value.status, "unreachable");
        assert!(report.key_value.error.as_deref().unwrap().contains("down"));
        assert_eq!(respond(&report).status, 503);
    }
}
