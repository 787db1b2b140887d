//! The organisation's hourly request budget (R-OUT-3): 30,000 requests per
//! hour by the seed, each batch of up to 100 contacts one request.
//!
//! The budget is one counter per organisation and clock hour, taken with
//! one atomic `increment` for all of a call's batches, so every instance of
//! every node counts against the same number and a call costs one write
//! however many batches it has. The batches that fit are the list's first
//! ones; the rest are refused whole, before any of their contacts is sent.
//! A refused batch still adds to the counter, which only matters within an
//! hour that is already spent.

use crate::error::Error;
use crate::ports::{KeyValue, Variables};

pub const DEFAULT_REQUESTS_PER_HOUR: i64 = 30_000;
const HOUR_MILLIS: i64 = 3_600_000;

/// The limit: the Spin variable `outbound_requests_per_hour`, else the seed's.
pub fn requests_per_hour(variables: &dyn Variables) -> Result<i64, Error> {
    match variables.get("outbound_requests_per_hour") {
        None => Ok(DEFAULT_REQUESTS_PER_HOUR),
        Some(text) if text.trim().is_empty() => Ok(DEFAULT_REQUESTS_PER_HOUR),
        Some(text) => text.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| Error::Misconfigured(format!(
                "the Spin variable outbound_requests_per_hour is \"{text}\"; the operator must set it to a whole number of requests"
            ))),
    }
}

/// How many of the batches asked for may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub allowed: usize,
    /// Seconds until the next hour's budget, when some were refused.
    pub retry_after_seconds: u64,
}

/// Takes `batches` requests from the organisation's budget for the hour of
/// `now_millis`.
pub fn take(
    kv: &dyn KeyValue,
    org: &str,
    batches: usize,
    limit: i64,
    now_millis: i64,
) -> Result<Grant, Error> {
    let hour = now_millis.div_euclid(HOUR_MILLIS);
    let key = format!("org/{org}/outbound/requests/{hour}");
    let asked = batches as i64;
    let total = kv.increment(&key, asked)?;
    let over = (total - limit).clamp(0, asked);
    let next_hour = (hour + 1) * HOUR_MILLIS;
    Ok(Grant {
        allowed: (asked - over) as usize,
        retry_after_seconds: ((next_hour - now_millis + 999) / 1000) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MapVariables, MemoryKeyValue};

    const HOUR_START: i64 = 1_767_225_600_000;

    #[test]
    fn batches_beyond_the_hours_limit_are_refused_until_the_next_hour() {
        let kv = MemoryKeyValue::default();
        let now = HOUR_START + 59 * 60_000 + 30_000;
        assert_eq!(take(&kv, "o", 3, 5, now).unwrap().allowed, 3);
        let partly = take(&kv, "o", 3, 5, now).unwrap();
        assert_eq!(
            partly,
            Grant {
                allowed: 2,
                retry_after_seconds: 30
            }
        );
        assert_eq!(take(&kv, "o", 1, 5, now).unwrap().allowed, 0);
        assert_eq!(
            take(&kv, "other", 1, 5, now).unwrap().allowed,
            1,
            "per organisation"
        );
        assert_eq!(
            take(&kv, "o", 2, 5, HOUR_START + 3_600_000)
                .unwrap()
                .allowed,
            2,
            "a new hour"
        );
    }

    #[test]
    fn the_limit_is_a_spin_variable() {
        assert_eq!(requests_per_hour(&MapVariables::default()).unwrap(), 30_000);
        let set = MapVariables::from([("outbound_requests_per_hour", "2")]);
        assert_eq!(requests_per_hour(&set).unwrap(), 2);
        let bad = MapVariables::from([("outbound_requests_per_hour", "lots")]);
        assert_eq!(requests_per_hour(&bad).unwrap_err().code(), "misconfigured");
    }
}
