//! `bench-health`: requests/s and latency of `GET /health` through the dev
//! host over loopback with concurrent keep-alive clients, beside the same
//! handler (`switchboard_core::admin::handle`, in-memory store) served
//! natively by the same kind of hyper server, and the ratio of the two.
//!
//! Usage: `cargo run --release -p bench --bin bench-health -- [--seconds N]
//! [--connections N] [--redis URL]` (after scripts/build-wasm.sh). With
//! `--redis` the Wasm side uses a Redis store; the native side stays in
//! memory, so the ratio then includes Redis round trips.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::memory::MemoryPorts;

struct Settings {
    seconds: u64,
    connections: usize,
    redis: Option<String>,
}

fn settings() -> Result<Settings> {
    let mut settings = Settings {
        seconds: 5,
        connections: 32,
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

#[tokio::main]
async fn main() -> Result<()> {
    let settings = settings()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = std::env::temp_dir().join(format!("bench-health-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        match &settings.redis {
            Some(url) => format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
            None => "[key_value_store.default]\ntype = \"spin\"\n".to_owned(),
        },
    )?;
    let mut options = devhost::Options::new(root.join("spin.toml"));
    options.runtime_config = Some(config.clone());
    let app = devhost::App::load(options).await?;
    std::fs::remove_file(&config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let wasm_addr = listener.local_addr()?;
    let served = app.clone();
    tokio::spawn(async move { served.serve(listener).await });
    let native_addr = serve_native().await?;

    let store = if settings.redis.is_some() {
        "Redis"
    } else {
        "in-memory"
    };
    println!(
        "GET /health, {} keep-alive connections, {} s each, {} cores",
        settings.connections,
        settings.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // Warm both up (compilation caches, connection setup) before measuring.
    load(wasm_addr, settings.connections, Duration::from_millis(500)).await?;
    load(
        native_addr,
        settings.connections,
        Duration::from_millis(500),
    )
    .await?;
    let duration = Duration::from_secs(settings.seconds);
    let wasm = load(wasm_addr, settings.connections, duration).await?;
    wasm.print(&format!("wasm on devhost ({store} store)"));
    let native = load(native_addr, settings.connections, duration).await?;
    native.print("native core (in-memory store)");
    println!(
        "ratio wasm/native: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        wasm.per_second() / native.per_second(),
        wasm.percentile(50.0).as_secs_f64() / native.percentile(50.0).as_secs_f64(),
        wasm.percentile(99.0).as_secs_f64() / native.percentile(99.0).as_secs_f64(),
    );
    Ok(())
}

/// The admin handler on in-memory ports, behind the same hyper server kind.
async fn serve_native() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let ports = Arc::new(MemoryPorts::default());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let ports = ports.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let ports = ports.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let core_request = switchboard_core::api::Request {
                                method: switchboard_core::api::Method::parse(parts.method.as_str()),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().unwrap_or_default().to_owned(),
                                headers: Vec::new(),
                                body,
                            };
                            // `/health` never awaits; the core's ports are not `Send`.
                            let response = switchboard_core::memory::block_on(
                                switchboard_core::admin::handle(&core_request, &ports.ports()),
                            );
                            let mut builder = hyper::Response::builder().status(response.status);
                            for (name, value) in response.headers {
                                builder = builder.header(name, value);
                            }
                            Ok::<_, hyper::Error>(
                                builder
                                    .body(Full::new(Bytes::from(response.body)))
                                    .expect("valid response"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

struct Outcome {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[index]
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<38} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} errors)",
            self.per_second(),
            self.percentile(50.0).as_secs_f64() * 1e3,
            self.percentile(99.0).as_secs_f64() * 1e3,
            self.latencies.len(),
            self.errors
        );
    }
}

/// `connections` keep-alive clients, each sending `GET /health` back to back
/// until `duration` is over; every response must be a 200.
async fn load(addr: SocketAddr, connections: usize, duration: Duration) -> Result<Outcome> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            while Instant::now() < deadline {
                let request = hyper::Request::get("/health")
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                let response = sender.send_request(request).await?;
                let ok = response.status() == 200;
                response.into_body().collect().await?;
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    let mut outcome = Outcome {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
    };
    for client in clients {
        let (latencies, errors) = client.await??;
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort();
    Ok(outcome)
}
