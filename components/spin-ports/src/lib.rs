//! The adapter between `spin-sdk` and the core's ports.
//!
//! Every component is a thin shell: it opens [`SpinPorts`], converts the
//! request with [`to_core_request`], calls a core handler and converts back
//! with [`to_spin_response`]. Nothing here makes a decision.

use futures::StreamExt;
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
use switchboard_core::api;
use switchboard_core::error::Error;
use switchboard_core::observe::{self, ObservedStore};
use switchboard_core::ports::{
    Clock, KeyValue, OutboundError, OutboundHttp, OutboundRequest, OutboundResponse, PortFuture,
    Ports, Randomness, StoreError, UnixMillis, Variables,
};

mod http;
pub use http::SpinHttp;

/// `wasi:keyvalue` on the app's `default` store: it has the batch and atomic
/// operations the core's write budget depends on. The flag says whether the
/// store batches reads: the variable `key_value_batch_reads` says it does
/// not (a Redis store), or a failed batch finds out for the rest of the
/// request.
pub struct SpinKeyValue(store::Bucket, std::cell::Cell<bool>);

/// The variable a deployment on a store that cannot batch reads sets to
/// `false` (spin.toml).
const BATCH_READS_VARIABLE: &str = "key_value_batch_reads";

fn store_error(error: store::Error) -> StoreError {
    StoreError(match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    })
}

impl SpinKeyValue {
    pub fn open_default() -> Result<SpinKeyValue, StoreError> {
        let batches = spin_sdk::variables::get(BATCH_READS_VARIABLE).map_or(true, |v| v != "false");
        store::open("default")
            .map(|bucket| SpinKeyValue(bucket, std::cell::Cell::new(batches)))
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
        Ok(switchboard_core::ports::in_key_order(keys, found))
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

    fn batches_reads(&self) -> bool {
        self.1.get()
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
}

/// Serves one request with a core `handler`: the body read up to the app's
/// limit, the ports opened for it, the request and response translated, a
/// 503 the caller may retry when the store cannot even be opened, and the
/// request's log line (R-OPS-2) on stdout. Every component is this one call.
pub async fn serve(
    component: &'static str,
    request: IncomingRequest,
    handler: impl AsyncFn(&api::Request, &Ports<'_>) -> api::Response,
) -> Response {
    let arrived = Arrived::read(request).await;
    let log = arrived.log(component);
    let opened = arrived
        .body
        .clone()
        .and_then(|()| SpinPorts::open().map_err(store_unavailable));
    let (response, store) = match &opened {
        Ok(opened) => {
            let store = ObservedStore::new(&opened.kv);
            let http = LoggedHttp(log);
            let ports = Ports {
                kv: &store,
                http: &http,
                clock: &WallClock,
                random: &HostRandomness,
                variables: &SpinVariables,
            };
            (handler(&arrived.request, &ports).await, Some(store))
        }
        Err(refusal) => (refusal.clone().into_response(), None),
    };
    finish(log, &arrived, response, store.as_ref())
}

/// Serves one request that needs no store, no variables and no outbound
/// HTTP (the console's files) with `handler`: the same body limit, request
/// id and log line as [`serve`], with no store opened (its counts are 0).
pub async fn serve_without_store(
    component: &'static str,
    request: IncomingRequest,
    handler: impl FnOnce(&api::Request) -> api::Response,
) -> Response {
    let arrived = Arrived::read(request).await;
    let response = match &arrived.body {
        Ok(()) => handler(&arrived.request),
        Err(refusal) => refusal.clone().into_response(),
    };
    finish(arrived.log(component), &arrived, response, None)
}

/// A request as it arrived: when, its id, the core's view of it with its
/// body, or why the body was refused (the refusal is answered and logged
/// like any other).
struct Arrived {
    started: Started,
    request_id: String,
    request: api::Request,
    body: Result<(), Error>,
}

impl Arrived {
    async fn read(request: IncomingRequest) -> Arrived {
        let started = Started::now();
        let mut core_request = to_core_request(&request);
        let request_id = observe::request_id(&core_request, &HostRandomness);
        let body = read_body(request)
            .await
            .map(|body| core_request.body = body);
        Arrived {
            started,
            request_id,
            request: core_request,
            body,
        }
    }

    fn log(&self, component: &'static str) -> Log<'_> {
        Log {
            component,
            request_id: &self.request_id,
        }
    }
}

/// Stamps the request id on `response`, writes the request's log line to
/// stdout and hands the response to Spin.
fn finish(
    log: Log<'_>,
    arrived: &Arrived,
    response: api::Response,
    store: Option<&ObservedStore<'_>>,
) -> Response {
    let (started, request) = (&arrived.started, &arrived.request);
    let (response, line) = observe::finish(
        response,
        &observe::RequestDone {
            component: log.component,
            request_id: log.request_id,
            started_at: started.wall,
            method: request.method,
            path: &request.path,
            duration_micros: started.elapsed_micros(),
            store,
        },
    );
    println!("{line}");
    to_spin_response(response)
}

/// The request body, refused (413) past [`api::MAX_REQUEST_BODY`] without
/// reading further: by its declared length when it has one, else as soon as
/// the stream passes the limit. Spin sets no limit of its own.
async fn read_body(request: IncomingRequest) -> Result<Vec<u8>, Error> {
    let declared = request
        .headers()
        .get("content-length")
        .first()
        .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > api::MAX_REQUEST_BODY as u64) {
        return Err(Error::too_large());
    }
    let mut stream = request.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            Error::malformed(
                "unreadable_body",
                format!("the request body could not be read ({error}); send it again"),
            )
        })?;
        if body.len() + chunk.len() > api::MAX_REQUEST_BODY {
            return Err(Error::too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// When a request began: wall time for the log, monotonic time to measure.
struct Started {
    wall: UnixMillis,
    monotonic: u64,
}

impl Started {
    fn now() -> Started {
        Started {
            wall: WallClock.now_millis(),
            monotonic: wasi::clocks::monotonic_clock::now(),
        }
    }

    fn elapsed_micros(&self) -> u64 {
        wasi::clocks::monotonic_clock::now().saturating_sub(self.monotonic) / 1_000
    }
}

/// Who is logging: every line of a request carries both.
#[derive(Clone, Copy)]
struct Log<'a> {
    component: &'static str,
    request_id: &'a str,
}

/// Outbound HTTP that logs each provider call: provider, status, latency.
struct LoggedHttp<'a>(Log<'a>);

impl OutboundHttp for LoggedHttp<'_> {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> PortFuture<'_, Result<OutboundResponse, OutboundError>> {
        Box::pin(async move {
            let started = Started::now();
            let provider = observe::provider_of(&request.url, &SpinVariables);
            let method = request.method;
            let result = SpinHttp.send(request).await;
            let line = observe::provider_line(&observe::ProviderCall {
                component: self.0.component,
                request_id: self.0.request_id,
                started_at: started.wall,
                provider,
                method,
                status: result.as_ref().ok().map(|response| response.status),
                duration_micros: started.elapsed_micros(),
            });
            println!("{line}");
            result
        })
    }
}

fn to_core_request(request: &IncomingRequest) -> api::Request {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((&path_with_query, ""));
    api::Request {
        method: api::Method::parse(&request.method().to_string()),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: request
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    String::from_utf8(value).unwrap_or_default(),
                )
            })
            .collect(),
        body: Vec::new(),
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
fn store_unavailable(error: StoreError) -> Error {
    Error::NoStore(error)
}
