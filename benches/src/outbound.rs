//! `bench-outbound`: outbound sending — check, render and send of a flow's
//! contact list, `POST /api/outbound/{configurationId}/send` with 100
//! contacts a call — for one organisation, through the dev host over
//! loopback against a loopback TeleSign simulator, beside the same core
//! handlers served natively against the same simulator, and the ratio of
//! the two. SPEC.md's target: 3,000,000 messages per hour for one
//! organisation, i.e. 833 messages/s.
//!
//! Both sides are set up alike through the app's HTTP API: an organisation
//! (operator token), a TeleSign account with one number, a template with an
//! English and a Norwegian version, and an SMS outbound configuration
//! (`show_on_timeline` off). The Spin variable `outbound_requests_per_hour`
//! is set far above what a run can use, so the hour's budget never refuses,
//! and `telesign_api_base` points at the simulator: a hyper server on
//! loopback that answers every `POST /v1/messaging` with a 200, a fresh
//! `reference_id` and status 290 ("in progress", which the core records as
//! sent), and counts the requests.
//!
//! Each call carries one batch of 100 contacts (the seed's per-request
//! limit), with distinct numbers and the locale `nb-NO`, so each message is
//! rendered from the template's `nb` version. Twenty bodies (2,000
//! customers) are encoded before the clock starts and cycled through; a
//! priming pass sends each once and a 1 s warm-up follows, so the measured
//! calls send to existing contacts — a flow messaging its customers again.
//! The core sends up to 25 of a batch's messages at once, so each client
//! keeps up to 25 provider requests open. Any answer but a 200 with
//! `summary.sent` 100 fails the run, and so does a count of provider
//! requests that differs from the messages sent.
//!
//! The default is 8 connections rather than the other benches' 32: a call
//! is 100 provider sends, so 8 calls in flight already keep up to 200
//! provider requests open. On a 2-core machine 2 connections already keep
//! both cores busy; beyond that, the latency per call is mostly queueing.
//!
//! The native side is `bench_common::native`: the core's handlers routed
//! as spin.toml routes them, sending to the same simulator through a pool
//! of keep-alive connections, on one current-thread runtime per core (the
//! core's futures are not `Send`), once on `MemoryPorts`' store and once on
//! the dev host's own backend the Wasm side uses (in-memory SQLite, or
//! Redis with `--redis`). The dev host (wasmtime-wasi-http's default
//! sender) opens a new connection for every provider request; the ratios
//! include that difference. The dev host and the load generator run on the
//! main (multi-threaded) runtime and the simulator on its own; all of them
//! share the same cores, and each side's line says how busy the process
//! kept them. Last, a dev host counting fuel takes one call to new contacts
//! and the same call again, and prints their key-value round trips and fuel.
//!
//! Usage: `cargo run --release -p bench --bin bench-outbound -- [--seconds N]
//! [--connections N] [--redis URL]` (after building the .wasm components),
//! or `scripts/bench.sh outbound [...]`.

use bench_common as common;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{call, text, Outcome, Settings};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789abcdef";
const PUBLIC_BASE_URL: &str = "https://switchboard.example.com";
const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
const API_KEY: &str = "QmVuY2gga2V5IGZvciBTd2l0Y2hib2FyZA==";
/// The organisation's TeleSign number (digits only, as TeleSign writes it).
const SMS_NUMBER: &str = "4740000000";
/// Contacts per call: one batch, the seed's per-request limit.
const CONTACTS_PER_CALL: usize = 100;
/// Prepared bodies, cycled through: `BODIES × CONTACTS_PER_CALL` customers.
const BODIES: usize = 20;
const WARM_UP: Duration = Duration::from_secs(1);
/// SPEC.md: messages per hour for one organisation.
const TARGET_PER_HOUR: f64 = 3_000_000.0;

#[tokio::main]
async fn main() -> Result<()> {
    let settings = common::settings_with_connections(8)?;
    let simulator = Simulator::start()?;
    let telesign_base = format!("http://{}", simulator.addr);
    let variables = [
        ("admin_token", ADMIN_TOKEN),
        ("public_base_url", PUBLIC_BASE_URL),
        ("telesign_api_base", telesign_base.as_str()),
        ("outbound_requests_per_hour", "100000000"),
    ];
    let (_app, wasm_addr) =
        common::dev_host("bench-outbound", &settings, &variables, false).await?;
    let natives = common::native_baselines(&settings, &variables).await?;
    let store = settings.store();

    println!(
        "POST /api/outbound/{{config}}/send ({CONTACTS_PER_CALL} contacts a call, SMS via a \
         loopback TeleSign simulator, one organisation), {} keep-alive connections, {} s each, \
         {} cores",
        settings.connections,
        settings.seconds,
        common::cores()
    );
    let bodies = Arc::new(bodies());

    let wasm_target = setup(wasm_addr).await.context("Wasm side")?;
    let wasm = run(wasm_addr, &settings, &wasm_target, &bodies, &simulator).await?;
    wasm.print(&format!("wasm on devhost ({store} store)"));
    let mut sides = vec![(format!("wasm ({store} store)"), wasm)];
    for (label, addr) in &natives {
        let target = setup(*addr).await.with_context(|| label.clone())?;
        let native = run(*addr, &settings, &target, &bodies, &simulator).await?;
        native.print(&format!("native core ({label})"));
        sides.push((format!("native ({label})"), native));
    }
    for (label, native) in &sides[1..] {
        common::print_ratio(
            &format!("ratio wasm/{label}"),
            &sides[0].1.calls,
            &native.calls,
        );
    }

    let target = TARGET_PER_HOUR / 3600.0;
    println!("SPEC target: 3,000,000 messages/h for one organisation = {target:.0} msg/s");
    for (label, side) in &sides {
        let per_second = side.messages_per_second();
        println!(
            "measured {label:<40}: {per_second:>6.0} msg/s = {}/h: {:.1}x the target",
            common::thousands(per_second * 3600.0),
            per_second / target
        );
    }
    per_call(&settings, &variables).await
}

/// One side's measured run.
struct Measured {
    /// One latency per call.
    calls: Outcome,
    messages: u64,
    provider_requests: u64,
    /// CPU time the whole process (load generator, simulator and server)
    /// used meanwhile, where the platform tells.
    cpu: Option<Duration>,
}

impl Measured {
    fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.calls.elapsed.as_secs_f64()
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<44} {:>6.0} msg/s  {:>6.1} calls/s   p50 {:>7.2} ms   p99 {:>7.2} ms   \
             ({} calls, {} messages, {} provider requests{})",
            self.messages_per_second(),
            self.calls.per_second(),
            self.calls.percentile(50.0).as_secs_f64() * 1e3,
            self.calls.percentile(99.0).as_secs_f64() * 1e3,
            self.calls.latencies.len(),
            self.messages,
            self.provider_requests,
            self.cpu.map_or_else(String::new, |cpu| format!(
                ", {:.1} of {} cores busy",
                cpu.as_secs_f64() / self.calls.elapsed.as_secs_f64(),
                common::cores()
            )),
        );
    }
}

/// What the calls go to: the configuration's send path and the admin key.
struct Target {
    path: String,
    key: String,
}

/// Priming (every body once), the warm-up, then the measured run; checks
/// the simulator saw one request per message sent.
async fn run(
    addr: SocketAddr,
    settings: &Settings,
    target: &Target,
    bodies: &Arc<Vec<Bytes>>,
    simulator: &Simulator,
) -> Result<Measured> {
    let hour = Duration::from_secs(3600);
    let primed = drive(addr, settings, target, bodies, hour, Some(BODIES as u64)).await?;
    drive(addr, settings, target, bodies, WARM_UP, None).await?;
    let primed = primed.calls.latencies.len();
    ensure!(primed == BODIES, "priming sent {primed} of {BODIES} bodies");
    let start = simulator.requests();
    let cpu = process_cpu();
    let duration = Duration::from_secs(settings.seconds);
    let mut measured = drive(addr, settings, target, bodies, duration, None).await?;
    measured.provider_requests = simulator.requests() - start;
    measured.cpu = cpu.zip(process_cpu()).map(|(before, after)| after - before);
    ensure!(
        measured.provider_requests == measured.messages,
        "{} messages sent but the simulator got {} requests",
        measured.messages,
        measured.provider_requests
    );
    ensure!(
        simulator.unexpected() == 0,
        "the simulator got {} requests other than POST /v1/messaging",
        simulator.unexpected()
    );
    Ok(measured)
}

/// `settings.connections` keep-alive clients posting the bodies in turn
/// until `duration` is over or `max_calls` calls were started. Fails on the
/// first answer that is not a 200 with every contact sent.
async fn drive(
    addr: SocketAddr,
    settings: &Settings,
    target: &Target,
    bodies: &Arc<Vec<Bytes>>,
    duration: Duration,
    max_calls: Option<u64>,
) -> Result<Measured> {
    let host = http::HeaderValue::from_str(&addr.to_string())?;
    let authorization = http::HeaderValue::from_str(&format!("Bearer {}", target.key))?;
    let path: Arc<str> = target.path.as_str().into();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + duration;
    let mut clients = Vec::new();
    for _ in 0..settings.connections {
        let (host, authorization, path) = (host.clone(), authorization.clone(), path.clone());
        let (bodies, next, failed) = (bodies.clone(), next.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let result = async {
                let mut latencies = Vec::new();
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if max_calls.is_some_and(|max| index >= max) {
                        break;
                    }
                    let body = bodies[index as usize % bodies.len()].clone();
                    let request = hyper::Request::post(&*path)
                        .header(http::header::HOST, host.clone())
                        .header(http::header::AUTHORIZATION, authorization.clone())
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(body))?;
                    let sent = Instant::now();
                    let (status, body) = common::exchange(&mut sender, request).await?;
                    let elapsed = sent.elapsed();
                    check_sent(status.as_u16(), &body)?;
                    latencies.push(elapsed);
                }
                Ok::<_, anyhow::Error>(latencies)
            }
            .await;
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            result
        }));
    }
    let mut calls = Outcome {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
        first_error: None,
    };
    let mut first_error = None;
    for client in clients {
        match client.await? {
            Ok(latencies) => calls.latencies.extend(latencies),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    calls.elapsed = start.elapsed();
    if let Some(error) = first_error {
        return Err(error.context(format!("POST {path}")));
    }
    calls.latencies.sort();
    let messages = (calls.latencies.len() * CONTACTS_PER_CALL) as u64;
    Ok(Measured {
        calls,
        messages,
        provider_requests: 0,
        cpu: None,
    })
}

/// The CPU time (user and system) this process has used so far, from
/// `/proc/self/stat` (Linux; its ticks are 1/100 s); `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's closing parenthesis come fields 3, 4, …; utime
    // and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// A send call's answer must be a 200 with every contact sent.
fn check_sent(status: u16, body: &[u8]) -> Result<()> {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(600)
            .collect::<String>()
    };
    ensure!(status == 200, "answered {status}: {}", text());
    let answer: Value = serde_json::from_slice(body).with_context(text)?;
    let sent = answer.pointer("/summary/sent").and_then(Value::as_u64);
    ensure!(
        sent == Some(CONTACTS_PER_CALL as u64),
        "summary.sent is {sent:?}, not {CONTACTS_PER_CALL}: {}",
        text()
    );
    Ok(())
}

/// A call to new contacts and the same call again (existing contacts) on
/// a dev host counting fuel: their key-value round trips and fuel.
async fn per_call(settings: &Settings, variables: &[(&str, &str)]) -> Result<()> {
    let (probe, addr) = common::dev_host("bench-outbound-fuel", settings, variables, true).await?;
    let target = setup(addr).await.context("fuel probe")?;
    println!("per {CONTACTS_PER_CALL}-contact call (one more, on a dev host counting fuel):");
    let body = body(0);
    for label in ["new contacts", "existing contacts"] {
        let request = http::Request::post(target.path.as_str())
            .header("host", "switchboard.example.com")
            .header("authorization", format!("Bearer {}", target.key))
            .header("content-type", "application/json")
            .body(body.clone())?;
        let handled = probe.send(request).await?;
        check_sent(handled.status(), handled.response.body()).context(label)?;
        let kv = handled.kv;
        println!(
            "  {label:<17}: {} reads, {} writes, {} listings, {} fuel",
            kv.reads,
            kv.writes,
            kv.listings,
            common::thousands(handled.fuel.unwrap_or_default() as f64)
        );
    }
    Ok(())
}

/// The `BODIES` prepared send bodies.
fn bodies() -> Vec<Bytes> {
    (0..BODIES).map(|n| body(n * CONTACTS_PER_CALL)).collect()
}

/// A send body for customers `first..first + CONTACTS_PER_CALL`.
fn body(first: usize) -> Bytes {
    let contacts: Vec<Value> = (first..first + CONTACTS_PER_CALL)
        .map(|n| {
            json!({
                "tocontactid": format!("+4790{n:06}"), "channelid": "sms", "optin": true,
                "locale": "nb-NO", "CustomerName": "Kari", "CaseName": format!("CAS-{n}"),
            })
        })
        .collect();
    Bytes::from(json!({ "ContactList": contacts }).to_string())
}

/// The organisation, TeleSign account, template and outbound configuration,
/// through the HTTP API.
async fn setup(addr: SocketAddr) -> Result<Target> {
    let created = call(addr, "/api/orgs", ADMIN_TOKEN, json!({"name": "Bench"})).await?;
    let key = text(&created, "/api_key/key")?;
    call(
        addr,
        "/api/accounts",
        &key,
        json!({
            "provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID,
            "api_key": API_KEY, "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
        }),
    )
    .await?;
    let template = call(
        addr,
        "/api/templates",
        &key,
        json!({
            "name": "Case update", "channel_types": ["sms"], "default_locale": "en",
            "versions": {
                "en": "Hi {{CustomerName}}, case {{CaseName}} is updated",
                "nb": "Hei {{CustomerName}}, sak {{CaseName}} er oppdatert",
            },
        }),
    )
    .await?;
    let config = call(
        addr,
        "/api/outbound-configs",
        &key,
        json!({
            "name": "Case update", "show_on_timeline": false, "channel_type": "sms",
            "channel": SMS_NUMBER, "template_id": text(&template, "/id")?,
        }),
    )
    .await?;
    Ok(Target {
        path: format!("/api/outbound/{}/send", text(&config, "/id")?),
        key,
    })
}

/// A loopback TeleSign: `POST /v1/messaging` answers 200 with a fresh
/// `reference_id` (status 290, in progress); anything else 404. Counts both.
struct Simulator {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    unexpected: Arc<AtomicU64>,
}

impl Simulator {
    /// On its own runtime and threads, so that the dev host's guests, which
    /// keep the main runtime's workers busy, cannot starve its acceptor; with
    /// a deep accept queue, since the dev host opens a connection per send.
    fn start() -> Result<Simulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(common::cores())
            .thread_name("simulator")
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            socket.listen(4096)?
        };
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let unexpected = Arc::new(AtomicU64::new(0));
        let (counted, others) = (requests.clone(), unexpected.clone());
        std::thread::Builder::new()
            .name("simulator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            return;
                        };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(simulate(stream, counted.clone(), others.clone()));
                    }
                })
            })?;
        Ok(Simulator {
            addr,
            requests,
            unexpected,
        })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }
}

/// One connection to the simulator.
async fn simulate(stream: tokio::net::TcpStream, counted: Arc<AtomicU64>, others: Arc<AtomicU64>) {
    let service = hyper::service::service_fn(
        move |request: hyper::Request<hyper::body::Incoming>| {
            let (counted, others) = (counted.clone(), others.clone());
            async move {
                let messaging = request.method() == hyper::Method::POST
                    && request.uri().path() == "/v1/messaging";
                // Read to the end, so the connection stays usable.
                request.into_body().collect().await?;
                let response = if messaging {
                    let n = counted.fetch_add(1, Ordering::Relaxed);
                    let body = format!(
                        r#"{{"reference_id":"{n:032x}","status":{{"code":290,"description":"Message in progress"}}}}"#
                    );
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                } else {
                    others.fetch_add(1, Ordering::Relaxed);
                    hyper::Response::builder()
                        .status(404)
                        .body(Full::new(Bytes::new()))
                };
                Ok::<_, hyper::Error>(response.expect("valid response"))
            }
        },
    );
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
