//! `GET /health` (SPEC.md R-OPS-1): is the app up, and does its store answer?
//!
//! The store check writes a random probe value and reads the key back. Any
//! value counts: a concurrent check may have overwritten ours in between, and
//! nothing ever deletes the key, so only a store that loses writes reads it
//! back absent. It costs one write transaction and one read round trip.
//!
//! The warnings are the Facebook page tokens due for refresh (R-CFG-4) in
//! every organisation: the count of connected pages (a counter, so read by
//! `increment(key, 0)`), then two read round trips when there are pages,
//! whatever their number.

use crate::api::Response;
use crate::config::accounts::page_token_warnings;
use crate::ports::{KeyValue, Randomness};
use serde::Serialize;

/// The one key the health check owns; outside every organisation's namespace.
pub const PROBE_KEY: &str = "health/probe";

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// `ok` when everything answers, `degraded` otherwise.
    pub status: &'static str,
    pub version: &'static str,
    pub key_value: StoreHealth,
    /// Configuration problems an operator should fix (e.g. expiring tokens).
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct StoreHealth {
    /// `reachable` or `unreachable`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn check(kv: &dyn KeyValue, random: &dyn Randomness, now_millis: i64) -> HealthReport {
    let probed = probe_store(kv, random)
        .and_then(|()| page_token_warnings(kv, now_millis).map_err(|error| error.message));
    let (key_value, warnings) = match probed {
        Ok(warnings) => (
            StoreHealth {
                status: "reachable",
                error: None,
            },
            warnings,
        ),
        Err(error) => (
            StoreHealth {
                status: "unreachable",
                error: Some(error),
            },
            Vec::new(),
        ),
    };
    HealthReport {
        status: if key_value.error.is_none() {
            "ok"
        } else {
            "degraded"
        },
        version: crate::VERSION,
        key_value,
        warnings,
    }
}

fn probe_store(kv: &dyn KeyValue, random: &dyn Randomness) -> Result<(), String> {
    let token = random.id128();
    kv.set(PROBE_KEY, token.as_bytes())
        .map_err(|e| e.to_string())?;
    match kv.get(PROBE_KEY).map_err(|e| e.to_string())? {
        Some(_) => Ok(()),
        None => Err("the probe key was written but reads back as absent".into()),
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
    use crate::memory::{MemoryKeyValue, SeededRandomness};
    use crate::ports::StoreError;

    #[test]
    fn a_working_store_is_reachable() {
        let kv = MemoryKeyValue::default();
        let report = check(&kv, &SeededRandomness::new(1), 0);
        assert_eq!(report.status, "ok");
        assert_eq!(report.key_value.status, "reachable");
        assert_eq!(report.version, crate::VERSION);
        assert!(report.warnings.is_empty());
        assert_eq!(respond(&report).status, 200);
    }

    #[test]
    fn each_check_writes_a_fresh_probe() {
        let kv = MemoryKeyValue::default();
        let random = SeededRandomness::new(7);
        check(&kv, &random, 0);
        let first = kv.get(PROBE_KEY).unwrap();
        check(&kv, &random, 0);
        assert_ne!(first, kv.get(PROBE_KEY).unwrap());
    }

    /// A store that accepts writes but loses them.
    struct ForgetfulStore;

    impl KeyValue for ForgetfulStore {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            Ok(vec![None; keys.len()])
        }
        fn set_many(&self, _: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
            Ok(())
        }
        fn delete_many(&self, _: &[String]) -> Result<(), StoreError> {
            Ok(())
        }
        fn increment(&self, _: &str, delta: i64) -> Result<i64, StoreError> {
            Ok(delta)
        }
    }

    #[test]
    fn a_store_that_loses_writes_is_unreachable() {
        let report = check(&ForgetfulStore, &SeededRandomness::new(1), 0);
        assert_eq!(report.status, "degraded");
        assert_eq!(report.key_value.status, "unreachable");
        assert!(report
            .key_value
            .error
            .as_deref()
            .unwrap()
            .contains("absent"));
        assert_eq!(respond(&report).status, 503);
    }
}
