//! In-memory ports for native unit tests and the native benchmark baseline.
//!
//! They keep the contracts of [`crate::ports`] exactly, including the counter
//! encoding of Spin's SQLite store (8 little-endian bytes), so code that works
//! here does not depend on a backend's accident.

use crate::ports::{
    Clock, KeyValue, OutboundError, OutboundHttp, OutboundRequest, OutboundResponse, PortFuture,
    Ports, Randomness, StoreError, UnixMillis, Variables,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryKeyValue {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    /// Behaves as a store that cannot batch reads (Spin's Redis store).
    key_by_key: bool,
}

impl MemoryKeyValue {
    /// A store whose [`KeyValue::batches_reads`] is `false`, as Spin's
    /// Redis store's: callers then read only the keys they need.
    pub fn key_by_key() -> MemoryKeyValue {
        MemoryKeyValue {
            key_by_key: true,
            ..MemoryKeyValue::default()
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic elsewhere cannot leave a half-applied write behind (every
        // write is one map operation), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyValue for MemoryKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.entries().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.entries().remove(key);
        Ok(())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let entries = self.entries();
        Ok(keys.iter().map(|k| entries.get(k).cloned()).collect())
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut entries = self.entries();
        for (key, value) in pairs {
            entries.insert(key.clone(), value.clone());
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut entries = self.entries();
        for key in keys {
            entries.remove(key);
        }
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let mut entries = self.entries();
        let current = match entries.get(key) {
            None => 0,
            Some(bytes) => i64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                StoreError(format!("{key} holds {} bytes, not a counter", bytes.len()))
            })?),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| StoreError(format!("counter {key} would overflow")))?;
        entries.insert(key.to_owned(), next.to_le_bytes().to_vec());
        Ok(next)
    }

    fn batches_reads(&self) -> bool {
        !self.key_by_key
    }
}

type Responder =
    Box<dyn Fn(&OutboundRequest) -> Result<OutboundResponse, OutboundError> + Send + Sync>;

/// Outbound HTTP that answers from a test's script and records every request.
///
/// It keeps the port's bounds as a host would: an answer slower than the
/// request's `timeout` (see [`ScriptedHttp::answering_after`]), or with a
/// body over its `max_response_bytes`, is an [`OutboundError`].
pub struct ScriptedHttp {
    respond: Responder,
    sent: Mutex<Vec<OutboundRequest>>,
    latency: std::time::Duration,
}

impl ScriptedHttp {
    pub fn new(
        respond: impl Fn(&OutboundRequest) -> Result<OutboundResponse, OutboundError>
            + Send
            + Sync
            + 'static,
    ) -> ScriptedHttp {
        ScriptedHttp {
            respond: Box::new(respond),
            sent: Mutex::new(Vec::new()),
            latency: std::time::Duration::ZERO,
        }
    }

    /// The same script, each answer taking `latency` to arrive.
    pub fn answering_after(self, latency: std::time::Duration) -> ScriptedHttp {
        ScriptedHttp { latency, ..self }
    }

    /// Every request sent so far, in order.
    pub fn sent(&self) -> Vec<OutboundRequest> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Default for ScriptedHttp {
    /// Refuses everything, as a host with no allowed outbound hosts would.
    fn default() -> ScriptedHttp {
        ScriptedHttp::new(|request| Err(OutboundError(format!("{} is not scripted", request.url))))
    }
}

impl OutboundHttp for ScriptedHttp {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> PortFuture<'_, Result<OutboundResponse, OutboundError>> {
        let answer = (self.respond)(&request).and_then(|response| {
            if request
                .timeout
                .is_some_and(|timeout| timeout < self.latency)
            {
                return Err(OutboundError(format!("{} timed out", request.url)));
            }
            match request.max_response_bytes {
                Some(limit) if response.body.len() > limit => Err(OutboundError(format!(
                    "{} answered more than {limit} bytes",
                    request.url
                ))),
                _ => Ok(response),
            }
        });
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        Box::pin(std::future::ready(answer))
    }
}

/// Drives a future whose ports are all in memory (they never wait).
/// A scripted provider answer: `status` with `body`.
pub fn reply(status: u16, body: &str) -> Result<OutboundResponse, OutboundError> {
    Ok(OutboundResponse {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    })
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// A wall clock that stands still until a test moves it.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(millis: UnixMillis) -> ManualClock {
        ManualClock(AtomicI64::new(millis))
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }

    /// Time stands still here, so a wait only moves it.
    fn sleep_millis(&self, millis: u64) {
        self.advance_millis(millis as i64);
    }
}

/// Reproducible, NOT secure randomness (splitmix64): tests and benchmarks only.
pub struct SeededRandomness(AtomicU64);

impl SeededRandomness {
    pub fn new(seed: u64) -> SeededRandomness {
        SeededRandomness(AtomicU64::new(seed))
    }

    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Randomness for SeededRandomness {
    fn fill(&self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
    }
}

#[derive(Default)]
pub struct MapVariables(pub HashMap<String, String>);

impl<const N: usize> From<[(&str, &str); N]> for MapVariables {
    fn from(pairs: [(&str, &str); N]) -> MapVariables {
        MapVariables(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Variables for MapVariables {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// All in-memory ports together, for tests and the native baseline.
pub struct MemoryPorts {
    pub kv: MemoryKeyValue,
    pub http: ScriptedHttp,
    pub clock: ManualClock,
    pub random: SeededRandomness,
    pub variables: MapVariables,
}

impl Default for MemoryPorts {
    fn default() -> MemoryPorts {
        MemoryPorts {
            kv: MemoryKeyValue::default(),
            http: ScriptedHttp::default(),
            // 2026-01-01T00:00:00Z: a fixed, readable start for tests.
            clock: ManualClock::at(1_767_225_600_000),
            random: SeededRandomness::new(0x5EED),
            variables: MapVariables::default(),
        }
    }
}

impl MemoryPorts {
    pub fn ports(&self) -> Ports<'_> {
        Ports {
            kv: &self.kv,
            http: &self.http,
            clock: &self.clock,
            random: &self.random,
            variables: &self.variables,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn increment_starts_absent_counters_at_zero() {
        let kv = MemoryKeyValue::default();
        assert_eq!(kv.increment("c", 0).unwrap(), 0);
        assert_eq!(kv.increment("c", 5).unwrap(), 5);
        assert_eq!(kv.increment("c", -2).unwrap(), 3);
        assert_eq!(kv.get("c").unwrap().unwrap(), 3i64.to_le_bytes().to_vec());
    }

    #[test]
    fn increment_refuses_a_non_counter() {
        let kv = MemoryKeyValue::default();
        kv.set("text", b"hello").unwrap();
        assert!(kv.increment("text", 1).is_err());
    }

    #[test]
    fn get_many_keeps_the_order_asked() {
        let kv = MemoryKeyValue::default();
        kv.set_many(&[("a".into(), b"1".to_vec()), ("c".into(), b"3".to_vec())])
            .unwrap();
        let got = kv.get_many(&["c".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(got, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]);
    }

    #[test]
    fn scripted_http_answers_and_records() {
        let http = ScriptedHttp::new(|request| {
            Ok(OutboundResponse {
                status: if request.url.ends_with("/ok") {
                    200
                } else {
                    503
                },
                headers: Vec::new(),
                body: request.body.clone(),
            })
        });
        let request = |url: &str| OutboundRequest {
            method: crate::api::Method::Post,
            url: url.into(),
            headers: vec![("authorization".into(), "Basic x".into())],
            body: b"ping".to_vec(),
            timeout: None,
            max_response_bytes: None,
        };
        let (ok, down) = block_on(async {
            (
                http.send(request("https://p.test/ok")).await,
                http.send(request("https://p.test/down")).await,
            )
        });
        assert_eq!(ok.unwrap().status, 200);
        assert_eq!(down.unwrap().status, 503);
        let sent = http.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].headers[0].1, "Basic x");
        assert!(block_on(ScriptedHttp::default().send(request("https://x.test/"))).is_err());
    }

    proptest! {
        #[test]
        fn ids_are_128_bit_hex(seed in any::<u64>()) {
            let id = SeededRandomness::new(seed).id128();
            prop_assert_eq!(id.len(), 32);
            prop_assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }
}

/// A store whose next `set_many` fails when told to, as a store does in the
/// middle of a request; everything else is a [`MemoryKeyValue`].
#[derive(Default)]
pub struct FailingOnce {
    pub inner: MemoryKeyValue,
    pub fail_next_write: std::cell::Cell<bool>,
}

impl KeyValue for FailingOnce {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(keys)
    }
    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if self.fail_next_write.replace(false) {
            return Err(StoreError("disk full".into()));
        }
        self.inner.set_many(entries)
    }
    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.delete_many(keys)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
}
