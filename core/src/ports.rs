//! The ports: the only ways the core reaches the world.
//!
//! Each trait is the smallest surface the core needs, shaped after what Spin
//! offers (`wasi:keyvalue` store, atomics and batch; outbound `wasi:http`;
//! wall clock; randomness; variables) so that a component's adapter is a thin
//! translation and the in-memory versions can honour the same contracts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// An HTTP method: of a request the app serves, or one it sends.
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

/// A key-value store failure. The message is meant for logs and operators;
/// callers decide what status a failure maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key-value store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// The values of `keys`, in their order, from a host's `get-many` answer:
/// (key, value) pairs in whatever order, absent keys left out or `None`.
/// Hosts answer in the order asked, which is matched pair by pair; any
/// other answer goes through a map, so that a batch of hundreds of keys (an
/// outbound batch, an agent's assignment log) costs linear time, not a
/// search of the answer per key.
pub fn in_key_order(
    keys: &[String],
    found: Vec<(String, Option<Vec<u8>>)>,
) -> Vec<Option<Vec<u8>>> {
    if found.len() == keys.len() && found.iter().zip(keys).all(|((k, _), key)| k == key) {
        return found.into_iter().map(|(_, value)| value).collect();
    }
    let by_key: std::collections::HashMap<String, Option<Vec<u8>>> = found.into_iter().collect();
    keys.iter()
        .map(|key| by_key.get(key).cloned().flatten())
        .collect()
}

/// The key-value store.
///
/// There is deliberately no key listing: nothing on a request path may list
/// keys (ARCHITECTURE.md principle 3). Several keys that change together are
/// written with [`KeyValue::set_many`], which is one write transaction.
pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// One read round trip for all keys; absent keys come back as `None`, in
    /// the order asked.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// One write transaction for all pairs.
    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
    /// One write transaction deleting all keys (absent keys are fine).
    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError>;
    /// Atomically adds `delta` and returns the new value; an absent key starts
    /// at 0. This is the only safe way to read a counter (`delta` 0), because
    /// backends encode counters differently.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Whether a `get_many` of several keys is one round trip. Spin's Redis
    /// store sends `KEYS` for it and reads nothing (README, "Spin quirks"),
    /// so there every key is a round trip of its own: hot paths then read
    /// only the keys they cannot do without ([`crate::store::read_wanted`]).
    fn batches_reads(&self) -> bool {
        true
    }
}

/// A future borrowed from its port; the component's executor (or a test's)
/// drives it, so several sends can be awaited together.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: Method,
    /// Absolute URL; its host must be in the component's
    /// `allowed_outbound_hosts`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The longest the whole exchange may take, connecting to reading the
    /// last byte; past it the request fails with an [`OutboundError`] and
    /// is abandoned. `None` leaves it to the host.
    pub timeout: Option<Duration>,
    /// The longest response body taken; a longer one fails the request
    /// with an [`OutboundError`] without more than this being read.
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The request got no HTTP answer: refused by the host's policy, or the
/// network failed. (An HTTP error status is a response, not this.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundError(pub String);

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "outbound HTTP failed: {}", self.0)
    }
}

impl std::error::Error for OutboundError {}

/// Outbound HTTP to the providers.
pub trait OutboundHttp {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> PortFuture<'_, Result<OutboundResponse, OutboundError>>;
}

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// The wall clock. Guests see the host's clock, which tests may move forward.
pub trait Clock {
    fn now_millis(&self) -> UnixMillis;
    /// Waits `millis` of real time (the wall clock may be moved by tests;
    /// waiting is about elapsed time, so it uses the host's monotonic clock).
    fn sleep_millis(&self, millis: u64);
}

/// Cryptographically secure randomness, for ids (128-bit) and tokens.
pub trait Randomness {
    fn fill(&self, buffer: &mut [u8]);

    /// A 128-bit random id as 32 lowercase hex digits.
    fn id128(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        crate::encoding::hex(&bytes)
    }

    /// A random (version 4) UUID in upper case, as TeleSign's nonces are.
    fn uuid(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// The app's configuration values (Spin variables).
pub trait Variables {
    /// `None` when the variable is not set for this component.
    fn get(&self, name: &str) -> Option<String>;
}

/// Everything a handler may touch, borrowed from the component shell (or from
/// the in-memory ports in tests and benchmarks).
pub struct Ports<'a> {
    pub kv: &'a dyn KeyValue,
    pub http: &'a dyn OutboundHttp,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Randomness,
    pub variables: &'a dyn Variables,
}

#[cfg(test)]
mod tests {
    use super::in_key_order;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn pair(key: &str, value: Option<&str>) -> (String, Option<Vec<u8>>) {
        (key.to_owned(), value.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn a_get_many_answer_comes_back_in_the_order_asked_whatever_the_host_sent() {
        let asked = keys(&["a", "b", "c", "a"]);
        let want = |v: &str| Some(v.as_bytes().to_vec());
        // In order, one pair per key asked.
        let in_order = vec![
            pair("a", Some("1")),
            pair("b", None),
            pair("c", Some("3")),
            pair("a", Some("1")),
        ];
        assert_eq!(
            in_key_order(&asked, in_order),
            [want("1"), None, want("3"), want("1")]
        );
        // Shuffled, absent keys left out, a key asked twice answered once.
        let shuffled = vec![pair("c", Some("3")), pair("a", Some("1"))];
        assert_eq!(
            in_key_order(&asked, shuffled),
            [want("1"), None, want("3"), want("1")]
        );
    }
}
