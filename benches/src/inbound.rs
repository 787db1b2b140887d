//! `bench-inbound`: webhook ingest — signature check, dedupe, threading,
//! storage and routing of a customer's WhatsApp message — as Twilio sends
//! it, through the dev host over loopback with concurrent keep-alive
//! clients, beside the same core handlers on in-memory ports served natively
//! by the same kind of hyper server, and the ratio of the two. SPEC.md's
//! target: p99 under 10 ms and at least 1,000 requests/s per core on the
//! dev host with the Redis store, within 2x of the native core.
//!
//! Both sides are set up identically through the app's HTTP API: an
//! organisation (operator token), a Twilio account, a queue, an available
//! agent (capacity 100) and a WhatsApp workstream. Then each client posts
//! signed Twilio inbound messages to `/webhooks/twilio/{accountId}`, every
//! one with its own `MessageSid`, from a pool of 200 customers. The warm-up
//! (1 s) starts every customer's conversation, so the measured messages land
//! on existing conversations — the common case. The measured requests are
//! encoded and signed before the clock starts (sized from the warm-up's
//! rate; should the clients outrun that, the rest are signed as they go and
//! the count is printed). Every answer must be a 200; any other fails the
//! run. After the Wasm side's run, one more message on an existing and one
//! on a new conversation go through `App::send` to print their key-value
//! round trips.
//!
//! The native side is `switchboard_core::admin::handle` for the
//! configuration API and `switchboard_core::webhooks::handle` for
//! the webhook, routed by path prefix as spin.toml routes them to the admin
//! and webhook-twilio components, on one `MemoryPorts` shared by every
//! connection. `MemoryPorts` is `Sync` (its store is a `Mutex`ed map, its
//! clock and randomness atomics), so it is shared as is across the
//! multi-threaded runtime's workers; each request runs to completion with
//! `memory::block_on`, since the core's ports are not `Send` and in-memory
//! ports never wait.
//!
//! Usage: `cargo run --release -p bench --bin bench-inbound -- [--seconds N]
//! [--connections N] [--redis URL]` (after scripts/build-wasm.sh), or
//! `scripts/bench.sh inbound [...]`. With `--redis` the Wasm side uses a
//! Redis store (SPEC's setting); the native side stays in memory, so the
//! ratio then includes Redis round trips.

use bench_common as common;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::{call, load, text, Outcome, Settings};
use http_body_util::Full;

use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::api::Request;
use switchboard_core::error::Error;
use switchboard_core::memory::{block_on, MapVariables, MemoryPorts};

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789abcdef";
const PUBLIC_BASE_URL: &str = "https://bench.example.com";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "fedcba9876543210fedcba9876543210";
const BUSINESS_NUMBER: &str = "+14155238886";
/// Customers writing in; the measured messages cycle through them.
const CUSTOMERS: u64 = 200;
const WARM_UP: Duration = Duration::from_secs(1);
/// At most this many requests are signed ahead of a run (about 600 bytes each).
const MAX_PREPARED: usize = 1_000_000;

#[tokio::main]
async fn main() -> Result<()> {
    let settings = common::settings()?;
    let variables = [
        ("admin_token", ADMIN_TOKEN),
        ("public_base_url", PUBLIC_BASE_URL),
    ];
    let (app, wasm_addr) = common::dev_host("bench-inbound", &settings, &variables).await?;
    let native_addr = serve_native(&variables).await?;
    let store = settings.store();

    println!(
        "POST /webhooks/twilio/{{account}} (signed WhatsApp message, {CUSTOMERS} customers, \
         existing conversations), {} keep-alive connections, {} s each, {} cores",
        settings.connections,
        settings.seconds,
        common::cores()
    );
    let wasm_messages = Arc::new(Messages::new(setup(wasm_addr).await.context("Wasm side")?));
    let (wasm, wasm_live, next_seq) = run(wasm_addr, &settings, wasm_messages.clone()).await?;
    wasm.print(&format!("wasm on devhost ({store} store)"));
    kv_per_message(&app, &wasm_messages, next_seq).await?;

    let native_messages = Arc::new(Messages::new(
        setup(native_addr).await.context("native side")?,
    ));
    let (native, native_live, _) = run(native_addr, &settings, native_messages).await?;
    native.print("native core (in-memory store)");
    common::print_ratio(&wasm, &native);
    if wasm_live + native_live > 0 {
        println!(
            "(signed during the run, the pool being used up: {wasm_live} wasm, {native_live} native)"
        );
    }

    let per_core = wasm.per_second() / common::cores() as f64;
    println!(
        "SPEC target (dev host, Redis store): p99 < 10 ms, >= 1000 req/s per core, \
         within 2x of native (throughput ratio >= 0.50x, p99 ratio <= 2x)"
    );
    println!(
        "measured (wasm, {store} store): p99 {:.3} ms, {per_core:.0} req/s per core \
         (load generator on the same cores), throughput ratio {:.2}x, p99 ratio {:.2}x",
        wasm.percentile(99.0).as_secs_f64() * 1e3,
        wasm.per_second() / native.per_second(),
        wasm.percentile(99.0).as_secs_f64() / native.percentile(99.0).as_secs_f64(),
    );
    Ok(())
}

/// Warm-up, then the measured run; also how many requests were signed during
/// it, and the first message sequence number neither used.
async fn run(
    addr: SocketAddr,
    settings: &Settings,
    messages: Arc<Messages>,
) -> Result<(Outcome, u64, u64)> {
    let warm_pool = Arc::new(Pool::new(messages.clone(), 0, 0));
    let warm = post_all(addr, settings, WARM_UP, warm_pool.clone()).await?;
    let warmed = warm_pool.used();
    if warmed < CUSTOMERS {
        println!(
            "(the warm-up sent only {warmed} messages: some measured ones start conversations)"
        );
    }
    let expected = warm.per_second() * settings.seconds as f64;
    let size = ((expected * 2.0) as usize + 1000).min(MAX_PREPARED);
    let pool = Arc::new(Pool::new(messages, warmed, size));
    let outcome = post_all(
        addr,
        settings,
        Duration::from_secs(settings.seconds),
        pool.clone(),
    )
    .await?;
    Ok((outcome, pool.live(), warmed + pool.used()))
}

/// Posts the pool's messages; fails unless every answer is a 200.
async fn post_all(
    addr: SocketAddr,
    settings: &Settings,
    duration: Duration,
    pool: Arc<Pool>,
) -> Result<Outcome> {
    let path = pool.messages.path.clone();
    let outcome = load(addr, settings.connections, duration, move || {
        let message = pool.take();
        Ok(hyper::Request::post(path.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", message.signature)
            .body(Full::new(message.body))?)
    })
    .await?;
    if outcome.errors > 0 {
        outcome.print("FAILED");
        bail!(
            "{} of {} webhook requests were not answered 200; the first: {}",
            outcome.errors,
            outcome.errors + outcome.latencies.len(),
            outcome.first_error.as_deref().unwrap_or_default()
        );
    }
    Ok(outcome)
}

/// One more message on an existing conversation and one starting a new one,
/// through `App::send`, with the dev host's key-value counts.
async fn kv_per_message(app: &devhost::App, messages: &Messages, seq: u64) -> Result<()> {
    let existing = messages.prepare(seq, &customer(seq % CUSTOMERS));
    let new = messages.prepare(seq + 1, &customer(CUSTOMERS + 1));
    for (label, message) in [
        ("existing conversation", existing),
        ("new conversation", new),
    ] {
        let request = http::Request::post(messages.path.as_str())
            .header("host", "bench.example.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", message.signature)
            .body(message.body)?;
        let handled = app.send(request).await?;
        ensure!(
            handled.status() == 200,
            "{label}: {} {}",
            handled.status(),
            handled.text()
        );
        let kv = handled.kv;
        println!(
            "  key-value per message, {label:<21}: {} reads, {} writes, {} listings",
            kv.reads, kv.writes, kv.listings
        );
    }
    Ok(())
}

/// The configuration the messages need, through the HTTP API; the Twilio
/// account's id.
async fn setup(addr: SocketAddr) -> Result<String> {
    let created = call(addr, "/api/orgs", ADMIN_TOKEN, json!({"name": "Bench"})).await?;
    let key = text(&created, "/api_key/key")?;
    let account = call(
        addr,
        "/api/accounts",
        &key,
        json!({
            "provider": "twilio", "name": "WA", "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "numbers": [{"name": "Support", "number": BUSINESS_NUMBER}],
        }),
    )
    .await?;
    let account_id = text(&account, "/id")?;
    let queue = call(addr, "/api/queues", &key, json!({"name": "general"})).await?;
    let queue_id = text(&queue, "/id")?;
    call(
        addr,
        "/api/agents",
        &key,
        json!({"name": "A", "capacity": 100, "presence": "available", "queues": [queue_id]}),
    )
    .await?;
    call(
        addr,
        "/api/workstreams",
        &key,
        json!({
            "name": "WA", "channel": "whatsapp", "fallback_queue": queue_id,
            "distribution": "round_robin", "routing_rules": [],
            "channels": [{
                "account_id": account_id, "address": BUSINESS_NUMBER, "language": "en-US",
                "customer_attachments": true, "agent_attachments": true,
            }],
        }),
    )
    .await?;
    Ok(account_id)
}

/// The routes of spin.toml, onto the core handlers the components wrap, on
/// one set of in-memory ports (see the module docs).
async fn serve_native(variables: &[(&str, &str)]) -> Result<SocketAddr> {
    let ports = MemoryPorts {
        variables: MapVariables(
            variables
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        ),
        ..MemoryPorts::default()
    };
    common::serve_native(move |request: Request| {
        let ports = ports.ports();
        let under = |prefix: &str| {
            request.path == prefix
                || request
                    .path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let admin = [
            "/health",
            "/api/orgs",
            "/api/keys",
            "/api/accounts",
            "/api/queues",
            "/api/agents",
            "/api/workstreams",
            "/api/outbound-configs",
            "/api/warnings",
        ];
        if admin.iter().any(|prefix| under(prefix)) {
            block_on(switchboard_core::admin::handle(&request, &ports))
        } else if under("/webhooks/twilio") {
            block_on(switchboard_core::webhooks::handle(&request, &ports))
        } else {
            Error::no_route(&request.path).into_response()
        }
    })
    .await
}

/// Customer `n`'s number: `+1555010nnnn`.
fn customer(n: u64) -> String {
    format!("+1555010{n:04}")
}

/// A signed Twilio request, ready to send.
struct Signed {
    body: Bytes,
    signature: http::HeaderValue,
}

/// Signed inbound messages to one account's webhook.
struct Messages {
    path: String,
    url: String,
    /// Keeps `MessageSid`s apart between runs on one Redis store.
    salt: u64,
}

impl Messages {
    fn new(account_id: String) -> Messages {
        let path = format!("/webhooks/twilio/{account_id}");
        Messages {
            url: format!("{PUBLIC_BASE_URL}{path}"),
            path,
            salt: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
        }
    }

    /// Message `seq` from `from`, with the parameters Twilio posts for a
    /// WhatsApp text, signed as Twilio signs them.
    fn prepare(&self, seq: u64, from: &str) -> Signed {
        let sid = format!("SM{:016x}{seq:016x}", self.salt);
        let to = format!("whatsapp:{BUSINESS_NUMBER}");
        let from_address = format!("whatsapp:{from}");
        let text = format!("Hello, where is my order {seq}? It has not arrived yet.");
        let params: Vec<(String, String)> = [
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("ProfileName", "Bench Customer"),
            ("MessageType", "text"),
            ("SmsSid", &sid),
            ("WaId", from.trim_start_matches('+')),
            ("SmsStatus", "received"),
            ("Body", &text),
            ("To", &to),
            ("NumSegments", "1"),
            ("ReferralNumMedia", "0"),
            ("MessageSid", &sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", &from_address),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        let signature =
            switchboard_core::providers::twilio::signature(AUTH_TOKEN, &self.url, &params);
        let body = switchboard_core::encoding::form_encode(
            params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        Signed {
            body: Bytes::from(body),
            signature: http::HeaderValue::from_str(&signature).expect("Base64 is a header value"),
        }
    }
}

/// Messages `start`, `start + 1`, … (customers in turn), the first `size`
/// signed up front.
struct Pool {
    messages: Arc<Messages>,
    start: u64,
    prepared: Vec<Signed>,
    next: AtomicU64,
    live: AtomicU64,
}

impl Pool {
    fn new(messages: Arc<Messages>, start: u64, size: usize) -> Pool {
        let prepared = (start..start + size as u64)
            .map(|seq| messages.prepare(seq, &customer(seq % CUSTOMERS)))
            .collect();
        Pool {
            messages,
            start,
            prepared,
            next: AtomicU64::new(0),
            live: AtomicU64::new(0),
        }
    }

    fn take(&self) -> Signed {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        match self.prepared.get(index as usize) {
            Some(signed) => Signed {
                body: signed.body.clone(),
                signature: signed.signature.clone(),
            },
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
                let seq = self.start + index;
                self.messages.prepare(seq, &customer(seq % CUSTOMERS))
            }
        }
    }

    /// Messages taken so far.
    fn used(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Of those, signed as they were taken.
    fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}
