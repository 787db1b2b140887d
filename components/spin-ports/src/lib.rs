//! The adapter between `spin-sdk` and the core's ports.
//!
//! Every component is a thin shell: it opens [`SpinPorts`], converts the
//! request with [`to_core_request`], calls a core handler and converts back
//! with [`to_spin_response`]. Nothing here makes a decision.

use spin_sdk::http::{Request, Response};
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
use switchboard_core::api;
use switchboard_core::ports::{
    Clock, KeyValue, Ports, Randomness, StoreError, UnixMillis, Variables,
};

mod http;
pub use http::SpinHttp;

/// `wasi:keyvalue` on the app's `default` store: it has the batch and atomic
/// operations the core's write budget depends on. The flag remembers, for
/// the rest of the request, that the store cannot batch reads.
pub struct SpinKeyValue(store::Bucket, std::cell::Cell<bool>);

fn store_error(error: store::Error) -> StoreError {
    StoreError(match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    })
}

impl SpinKeyValue {
    pub fn open_default() -> Result<SpinKeyValue, StoreError> {
        store::open("default")
            .map(|bucket| SpinKeyValue(bucket, std::cell::Cell::new(true)))
            .map_err(store_error)
    }
}

impl KeyValue for SpinKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(store_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(store_error)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // Spin's Redis store answers `get-many` with `KEYS`, which fails for
        // several keys and, for one key, returns a reply the host cannot
        // decode (see README, "Spin quirks"): a single key is always a plain
        // `get`, and after one failed batch the request reads key by key.
        let per_key = || keys.iter().map(|key| self.get(key)).collect();
        if keys.len() < 2 || !self.1.get() {
            return per_key();
        }
        let Ok(found) = batch::get_many(&self.0, keys) else {
            self.1.set(false);
            return per_key();
        };
        // The host answers pairs; put them back in the order asked, whatever
        // order (or subset) a backend returns.
        Ok(keys
            .iter()
            .map(|key| {
                found
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.clone())
            })
            .collect())
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        batch::set_many(&self.0, entries).map_err(store_error)
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        batch::delete_many(&self.0, keys).map_err(store_error)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.0, key, delta).map_err(store_error)
    }
}

/// The host's wall clock (which the dev host lets tests move).
pub struct WallClock;

impl Clock for WallClock {
    fn now_millis(&self) -> UnixMillis {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_millis() as UnixMillis
    }

    fn sleep_millis(&self, millis: u64) {
        wasi::clocks::monotonic_clock::subscribe_duration(millis * 1_000_000).block();
    }
}

/// `wasi:random`, the host's cryptographically secure source.
pub struct HostRandomness;

impl Randomness for HostRandomness {
    fn fill(&self, buffer: &mut [u8]) {
        let bytes = wasi::random::random::get_random_bytes(buffer.len() as u64);
        buffer.copy_from_slice(&bytes);
    }
}

/// Spin variables; an undefined or unset variable reads as `None`.
pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// The ports of one request.
pub struct SpinPorts {
    kv: SpinKeyValue,
}

impl SpinPorts {
    pub fn open() -> Result<SpinPorts, StoreError> {
        Ok(SpinPorts {
            kv: SpinKeyValue::open_default()?,
        })
    }

    pub fn ports(&self) -> Ports<'_> {
        Ports {
            kv: &self.kv,
            http: &SpinHttp,
            clock: &WallClock,
            random: &HostRandomness,
            variables: &SpinVariables,
        }
    }
}

/// Serves one request with a core `handler`: the ports opened for it, the
/// request and response translated, and a 503 the caller may retry when the
/// store cannot even be opened. Every component is this one call.
pub async fn serve(
    request: Request,
    handler: impl AsyncFn(&api::Request, &Ports<'_>) -> api::Response,
) -> Response {
    match SpinPorts::open() {
        Ok(ports) => to_spin_response(handler(&to_core_request(request), &ports.ports()).await),
        Err(error) => store_unavailable(error),
    }
}

fn to_core_request(request: Request) -> api::Request {
    api::Request {
        method: api::Method::parse(&request.method().to_string()),
        path: request.path().to_owned(),
        query: request.query().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    value.as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: request.into_body(),
    }
}

fn to_spin_response(response: api::Response) -> Response {
    let mut builder = Response::builder();
    builder.status(response.status);
    for (name, value) in response.headers {
        builder.header(name, value);
    }
    builder.body(response.body).build()
}

/// The answer when the store cannot even be opened: a 503 the caller may retry.
fn store_unavailable(error: StoreError) -> Response {
    to_spin_response(
        api::ApiError {
            status: 503,
            code: "store_unavailable",
            message: format!("{error}; retry later"),
            field: None,
        }
        .into_response(),
    )
}
