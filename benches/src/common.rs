//! What the benchmark binaries share (the `bench_common` library): the command
//! line, the dev host loaded from `../spin.toml` with an in-memory or Redis
//! store, the native baselines (`native`, on the stores of `store`), the
//! keep-alive load loop and the printing of its numbers.

pub mod native;
pub mod store;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Settings {
    pub seconds: u64,
    pub connections: usize,
    pub redis: Option<String>,
}

impl Settings {
    /// The Wasm side's store, as the printed labels name it.
    pub fn store(&self) -> &'static str {
        if self.redis.is_some() {
            "Redis"
        } else {
            "in-memory"
        }
    }
}

/// Which side of a bench a Redis database serves (see [`Settings::redis_database`]).
#[derive(Clone, Copy)]
pub enum Side {
    /// The measured dev host.
    Wasm,
    /// The native baseline on the same store.
    Native,
    /// The dev host counting fuel and key-value calls per request.
    Probe,
}

impl Settings {
    /// With `--redis URL`, the database of that Redis that `side` uses,
    /// emptied: the URL's (0 unless it names one) for the Wasm side, the
    /// next for the native side and the one after for the probe. Each side
    /// sets itself up through the HTTP API and claims the same provider
    /// addresses (a Messenger page belongs to one account per store), so
    /// they cannot share a database; and a run must not meet the last run's
    /// data. The bench owns these three databases.
    pub fn redis_database(&self, side: Side) -> Result<Option<String>> {
        let Some(url) = &self.redis else {
            return Ok(None);
        };
        let url = database_url(url, side as i64)?;
        let mut connection = redis::Client::open(url.as_str())?
            .get_connection()
            .with_context(|| format!("cannot connect to Redis at {url}"))?;
        redis::cmd("FLUSHDB").query::<()>(&mut connection)?;
        Ok(Some(url))
    }
}

/// `url` (`redis://` or `rediss://`, optionally naming a database by
/// number) naming the database `offset` after its own instead.
fn database_url(url: &str, offset: i64) -> Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "redis" | "rediss"))
        .with_context(|| format!("--redis {url}: expected redis://host:port[/db]"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let db: i64 = match path.trim_end_matches('/') {
        "" => 0,
        number => number
            .parse()
            .with_context(|| format!("--redis {url}: the database is not a number"))?,
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{}{query}", db + offset))
}

/// `[--seconds N] [--connections N] [--redis URL]`.
pub fn settings() -> Result<Settings> {
    settings_with_connections(32)
}

/// [`settings`] with another default for `--connections`.
pub fn settings_with_connections(connections: usize) -> Result<Settings> {
    let mut settings = Settings {
        seconds: 5,
        connections,
        redis: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => settings.seconds = value.parse()?,
            "--connections" => settings.connections = value.parse()?,
            "--redis" => settings.redis = Some(value),
            other => bail!("unknown flag {other}; see the module docs"),
        }
    }
    Ok(settings)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The app of `../spin.toml` on the dev host with `variables`, its default
/// store in memory or on `settings.redis`, served on a loopback port;
/// counting fuel when `count_fuel` (slower: only for per-request figures).
pub async fn dev_host(
    name: &str,
    settings: &Settings,
    variables: &[(&str, &str)],
    count_fuel: bool,
) -> Result<(devhost::App, SocketAddr)> {
    let config = std::env::temp_dir().join(format!("{name}-{}.toml", std::process::id()));
    let side = if count_fuel { Side::Probe } else { Side::Wasm };
    std::fs::write(
        &config,
        match settings.redis_database(side)? {
            Some(url) => format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
            None => "[key_value_store.default]\ntype = \"spin\"\n".to_owned(),
        },
    )?;
    let mut options = devhost::Options::new(repository().join("spin.toml"));
    options.runtime_config = Some(config.clone());
    options.count_fuel = count_fuel;
    if settings.redis.is_some() {
        // As a deployment on Redis does (README, "Spin quirks").
        options
            .variables
            .insert("key_value_batch_reads".into(), "false".into());
    }
    for (name, value) in variables {
        options
            .variables
            .insert((*name).to_owned(), (*value).to_owned());
    }
    // The app logs a line per request (R-OPS-2), as it does in production;
    // into a file that is unlinked once open, so the bench's output stays
    // readable and nothing is left behind.
    let log = std::env::temp_dir().join(format!("{name}-{}.log", std::process::id()));
    options.guest_log_file = Some(log.clone());
    let served = serve(options).await?;
    std::fs::remove_file(&config)?;
    std::fs::remove_file(&log)?;
    Ok(served)
}

/// The benches' no-op component (benches/noop/spin.toml: 200, empty body,
/// no store) on the dev host, served on a loopback port: what a request
/// costs the host itself, which the app's components add to.
pub async fn noop_dev_host() -> Result<SocketAddr> {
    let options = devhost::Options::new(repository().join("benches/noop/spin.toml"));
    Ok(serve(options).await?.1)
}

/// The repository's root folder.
fn repository() -> PathBuf {
    // At run time (`cargo run` sets it): clones sharing the Cargo target
    // folder reuse each other's builds, whose compile-time path names another clone.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// The app `options` describe, loaded and served on a loopback port.
async fn serve(options: devhost::Options) -> Result<(devhost::App, SocketAddr)> {
    let app = devhost::App::load(options).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = app.clone();
    tokio::spawn(async move { served.serve(listener).await });
    Ok((app, addr))
}

/// The two native baselines, served with `variables`, by label: the core
/// on `MemoryPorts`' store, and on the dev host's backend the Wasm side
/// uses (in-memory SQLite, or Redis with `--redis`).
pub async fn native_baselines(
    settings: &Settings,
    variables: &[(&str, &str)],
) -> Result<Vec<(String, SocketAddr)>> {
    if let Some(url) = &settings.redis {
        let database = |side: Side| database_url(url, side as i64);
        println!(
            "Redis databases (each emptied first): {} for the Wasm side, {} for the native \
             side, {} for the per-request probe",
            database(Side::Wasm)?,
            database(Side::Native)?,
            database(Side::Probe)?
        );
    }
    let mut baselines = Vec::new();
    for store in [
        store::NativeStore::Memory(Default::default()),
        store::NativeStore::same_as_devhost(settings.redis_database(Side::Native)?).await?,
    ] {
        let label = store.describe();
        let addr = native::serve(store, variables, settings.connections).await?;
        baselines.push((label, addr));
    }
    Ok(baselines)
}

/// A request as the components see it: lowercase header names, path and
/// query apart, the body read whole.
pub fn core_request(parts: &http::request::Parts, body: Vec<u8>) -> switchboard_core::api::Request {
    switchboard_core::api::Request {
        method: switchboard_core::api::Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: header_pairs(&parts.headers),
        body,
    }
}

/// Header names (lowercase, as hyper keeps them) and values.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

pub fn hyper_response(response: switchboard_core::api::Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .expect("valid response")
}

pub fn text(value: &serde_json::Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {pointer} in {value}"))
}

/// `POST path` with a bearer token and a JSON body; the created document.
pub async fn call(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == 201,
        "POST {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}

pub struct Outcome {
    /// Of the 200 answers, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// Answers other than 200.
    pub errors: usize,
    /// The first of those: status and body.
    #[allow(dead_code)] // bench-health only counts them
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[index]
    }

    pub fn print(&self, label: &str) {
        println!(
            "{label:<48} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} errors)",
            self.per_second(),
            self.percentile(50.0).as_secs_f64() * 1e3,
            self.percentile(99.0).as_secs_f64() * 1e3,
            self.latencies.len(),
            self.errors
        );
    }
}

/// The ratios of the Wasm side's numbers to a native side's.
pub fn print_ratio(label: &str, wasm: &Outcome, native: &Outcome) {
    println!(
        "{label}: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        wasm.per_second() / native.per_second(),
        wasm.percentile(50.0).as_secs_f64() / native.percentile(50.0).as_secs_f64(),
        wasm.percentile(99.0).as_secs_f64() / native.percentile(99.0).as_secs_f64(),
    );
}

/// The Wasm side's throughput as a ratio of the no-op component's on the
/// same dev host (issue 17's goal for ingest: at least 0.5x).
pub fn print_noop_ratio(label: &str, wasm: &Outcome, noop: &Outcome) {
    println!(
        "{label}: throughput {:.2}x of the no-op component's",
        wasm.per_second() / noop.per_second()
    );
}

/// `connections` keep-alive clients, each sending the requests `next` makes
/// back to back until `duration` is over (a request is made before its
/// clock starts, and `host` is added); the 200s are timed, the rest counted.
pub async fn load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    next: impl Fn() -> Result<hyper::Request<Full<Bytes>>> + Send + Sync + 'static,
) -> Result<Outcome> {
    let next = Arc::new(next);
    let host = http::HeaderValue::from_str(&addr.to_string())?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut clients = Vec::new();
    for _ in 0..connections {
        let next = next.clone();
        let host = host.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            while Instant::now() < deadline {
                let mut request = next()?;
                request
                    .headers_mut()
                    .insert(http::header::HOST, host.clone());
                let sent = Instant::now();
                let (status, body) = exchange(&mut sender, request).await?;
                if status == 200 {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                    first_error.get_or_insert_with(|| {
                        format!("{status}: {}", String::from_utf8_lossy(&body))
                    });
                }
            }
            Ok::<_, anyhow::Error>((latencies, errors, first_error))
        }));
    }
    let mut outcome = Outcome {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
        first_error: None,
    };
    for client in clients {
        let (latencies, errors, first_error) = client.await??;
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
        outcome.first_error = outcome.first_error.or(first_error);
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort();
    Ok(outcome)
}

/// How long a bench waits for an answer before it fails the run, so that a
/// stalled side ends it with a message instead of hanging.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `request` and reads the answer to the end, within [`ANSWER_TIMEOUT`].
pub async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes)> {
    let path = request.uri().path().to_owned();
    let answer = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .with_context(|| format!("{path}: no answer within {} s", ANSWER_TIMEOUT.as_secs()))?
}

/// `value` rounded, with thousands separated by commas.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_side_gets_the_database_its_offset_names() {
        let url = |url, offset| database_url(url, offset).unwrap();
        assert_eq!(url("redis://127.0.0.1:6379", 1), "redis://127.0.0.1:6379/1");
        assert_eq!(
            url("redis://127.0.0.1:6379/", 0),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            url("rediss://h:1/3?protocol=resp3", 2),
            "rediss://h:1/5?protocol=resp3"
        );
        assert!(database_url("http://127.0.0.1:6379", 0).is_err());
        assert!(database_url("redis://127.0.0.1:6379/two", 0).is_err());
    }
}
