//! `bench-inbound`: webhook ingest — signature check, dedupe, threading,
//! storage and routing of a customer's message — for each provider as it
//! sends its callbacks (Twilio WhatsApp, TeleSign SMS, Facebook Messenger,
//! Google Business Messages), on an existing conversation and on a new one,
//! through the dev host over loopback with concurrent keep-alive clients,
//! beside the same core handlers served natively, and the ratios. SPEC.md's
//! target: p99 under 10 ms and at least 1,000 requests/s per core on the
//! dev host with the Redis store, within 2x of the native core.
//!
//! Every side is set up identically through the app's HTTP API: an
//! organisation (operator token), one account per provider, a queue, an
//! available agent (capacity 100) and one workstream per channel. The
//! providers' APIs are loopback simulators (the e2e tests' own): Messenger
//! asks Graph for a new customer's name, and Graph answers. Each client
//! posts the provider's signed callbacks (signed as providers.md and the
//! e2e tests sign them), every one with its own message id. On an existing
//! conversation the messages come from 200 customers whose conversations
//! the 1 s warm-up opens; on a new one every message comes from a customer
//! not seen before. The measured requests are encoded and signed before the
//! clock starts (sized from the warm-up's rate; should the clients outrun
//! that, the rest are signed as they go and the count is printed). Every
//! answer must be a 200; any other fails the run.
//!
//! Beside them, the benches' no-op component (benches/noop) on the dev
//! host takes the Twilio callbacks once, before the providers' runs: the
//! host's own cost of a request, of which each run's throughput is printed
//! as a ratio too.
//!
//! There are two native baselines (see `bench_common::native`): the core
//! on `MemoryPorts`' store (a `Mutex`ed map), and the core on the dev
//! host's own backend the Wasm side uses (in-memory SQLite, or Redis with
//! `--redis`), so the second ratio isolates what Wasm costs. Then a dev
//! host counting fuel takes one message per provider from a new customer
//! and one more from the same customer, and prints their key-value round
//! trips and fuel.
//!
//! Usage: `cargo run --release -p bench --bin bench-inbound -- [--seconds N]
//! [--connections N] [--redis URL]` (after building the .wasm components),
//! or `scripts/bench.sh inbound [...]`.

use bench_common as common;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::{call, load, text, Outcome, Settings};
use e2e::channels::{
    self, fixture, APP_SECRET, CLIENT_TOKEN, GBM_AGENT, SA_EMAIL, SMS_NUMBER, TAGGED_PAGE,
    TAGGED_TOKEN,
};
use e2e::sim::{self, Simulator};
use e2e::whatsapp::{ACCOUNT_SID, AUTH_TOKEN, BUSINESS_NUMBER};
use http_body_util::Full;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789abcdef";
const PUBLIC_BASE_URL: &str = "https://bench.example.com";
/// Customers writing in on existing conversations; the messages cycle
/// through them.
const CUSTOMERS: u64 = 200;
/// New customers are numbered from here, apart from those.
const NEW_CUSTOMERS: u64 = 1_000_000;
const WARM_UP: Duration = Duration::from_secs(1);
/// At most this many requests are signed ahead of a run (under 1 KB each).
const MAX_PREPARED: usize = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Provider {
    Twilio,
    Telesign,
    Messenger,
    Gbm,
}

const PROVIDERS: [Provider; 4] = [
    Provider::Twilio,
    Provider::Telesign,
    Provider::Messenger,
    Provider::Gbm,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Existing,
    New,
}

/// The loopback provider APIs, and the variables pointing the app at them.
struct Simulators {
    _telesign: Simulator,
    _graph: Simulator,
    _google: Simulator,
    variables: Vec<(&'static str, String)>,
}

impl Simulators {
    fn start() -> Simulators {
        let telesign = sim::telesign(channels::CUSTOMER_ID, channels::API_KEY);
        let graph = sim::graph(APP_SECRET, &[(TAGGED_PAGE, TAGGED_TOKEN, "Contoso")]);
        let google = sim::google_oauth(SA_EMAIL, &fixture("google-service-account.pub.pem"));
        let variables = vec![
            ("admin_token", ADMIN_TOKEN.to_owned()),
            ("public_base_url", PUBLIC_BASE_URL.to_owned()),
            ("telesign_api_base", telesign.base()),
            ("graph_api_base", graph.base()),
            ("gbm_api_base", google.base()),
            ("google_oauth_base", google.base()),
        ];
        Simulators {
            _telesign: telesign,
            _graph: graph,
            _google: google,
            variables,
        }
    }

    fn variables(&self) -> Vec<(&str, &str)> {
        self.variables
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect()
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = common::settings()?;
    let simulators = Simulators::start();
    let variables = simulators.variables();
    let (_app, wasm_addr) = common::dev_host("bench-inbound", &settings, &variables, false).await?;
    let natives = common::native_baselines(&settings, &variables).await?;
    let noop_addr = common::noop_dev_host().await?;
    println!(
        "POST /webhooks/{{provider}}/{{account}} (signed customer messages), {} keep-alive \
         connections, {} s each, {} cores",
        settings.connections,
        settings.seconds,
        common::cores()
    );
    let wasm_accounts = setup(wasm_addr).await.context("Wasm side")?;
    let mut native_accounts = Vec::new();
    for (label, addr) in &natives {
        native_accounts.push(setup(*addr).await.with_context(|| label.clone())?);
    }
    // The host's own share: the no-op component taking the same callbacks.
    let noop_feed = Feed::new(Provider::Twilio, Case::Existing, &wasm_accounts);
    let noop = run(noop_addr, &settings, Arc::new(noop_feed)).await?;
    noop.print("no-op component on devhost (Twilio WhatsApp callbacks)");
    let mut twilio_existing = None;
    for provider in PROVIDERS {
        for case in [Case::Existing, Case::New] {
            println!("{}, {}", provider.label(), case.label());
            let feed = |accounts: &Accounts| Arc::new(Feed::new(provider, case, accounts));
            let wasm = run(wasm_addr, &settings, feed(&wasm_accounts)).await?;
            wasm.print(&format!("  wasm on devhost ({} store)", settings.store()));
            let mut ratios = Vec::new();
            for ((label, addr), accounts) in natives.iter().zip(&native_accounts) {
                let native = run(*addr, &settings, feed(accounts)).await?;
                native.print(&format!("  native core ({label})"));
                ratios.push((label, native));
            }
            for (label, native) in &ratios {
                common::print_ratio(&format!("  ratio wasm/native ({label})"), &wasm, native);
            }
            common::print_noop_ratio("  ratio wasm/no-op", &wasm, &noop);
            if provider == Provider::Twilio && case == Case::Existing {
                twilio_existing = Some((wasm, ratios));
            }
        }
    }
    print_target(&settings, twilio_existing.context("Twilio ran")?, &noop);
    per_message(&settings, &variables).await
}

/// SPEC's target beside the Twilio WhatsApp run on existing conversations.
fn print_target(
    settings: &Settings,
    (wasm, natives): (Outcome, Vec<(&String, Outcome)>),
    noop: &Outcome,
) {
    println!(
        "SPEC target (dev host, Redis store): p99 < 10 ms, >= 1000 req/s per core, \
         within 2x of native (throughput ratio >= 0.50x, p99 ratio <= 2x)"
    );
    let per_core = wasm.per_second() / common::cores() as f64;
    println!(
        "measured (Twilio WhatsApp, existing conversations, wasm, {} store): p99 {:.3} ms, \
         {per_core:.0} req/s per core (load generator on the same cores)",
        settings.store(),
        wasm.percentile(99.0).as_secs_f64() * 1e3,
    );
    for (label, native) in natives {
        println!(
            "  against native ({label}): throughput ratio {:.2}x, p99 ratio {:.2}x",
            wasm.per_second() / native.per_second(),
            wasm.percentile(99.0).as_secs_f64() / native.percentile(99.0).as_secs_f64(),
        );
    }
    println!(
        "  against the no-op component on the same dev host: throughput ratio {:.2}x \
         (issue 17's goal: >= 0.50x)",
        wasm.per_second() / noop.per_second()
    );
}

/// Warm-up, then the measured run (see the module docs).
async fn run(addr: SocketAddr, settings: &Settings, feed: Arc<Feed>) -> Result<Outcome> {
    let warm_pool = Arc::new(Pool::new(feed.clone(), 0, 0));
    let warm = post_all(addr, settings, WARM_UP, warm_pool.clone()).await?;
    let warmed = warm_pool.used();
    if feed.case == Case::Existing && warmed < CUSTOMERS {
        println!(
            "  (the warm-up sent only {warmed} messages: some measured ones start conversations)"
        );
    }
    let expected = warm.per_second() * settings.seconds as f64;
    let size = ((expected * 2.0) as usize + 1000).min(MAX_PREPARED);
    let pool = Arc::new(Pool::new(feed, warmed, size));
    let outcome = post_all(
        addr,
        settings,
        Duration::from_secs(settings.seconds),
        pool.clone(),
    )
    .await?;
    if pool.live() > 0 {
        println!(
            "  (signed during the run, the pool being used up: {})",
            pool.live()
        );
    }
    Ok(outcome)
}

/// Posts the pool's messages; fails unless every answer is a 200.
async fn post_all(
    addr: SocketAddr,
    settings: &Settings,
    duration: Duration,
    pool: Arc<Pool>,
) -> Result<Outcome> {
    let outcome = load(addr, settings.connections, duration, move || {
        pool.take().request()
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

/// Per provider, one message from a new customer and one more from the
/// same customer, on a dev host counting fuel: their key-value round trips
/// and fuel.
async fn per_message(settings: &Settings, variables: &[(&str, &str)]) -> Result<()> {
    let (probe, addr) = common::dev_host("bench-inbound-fuel", settings, variables, true).await?;
    let accounts = setup(addr).await.context("fuel probe")?;
    println!("per message (one more, on a dev host counting fuel):");
    for provider in PROVIDERS {
        let feed = Feed::new(provider, Case::New, &accounts);
        let first = feed.prepare(0);
        let mut again = Feed::new(provider, Case::New, &accounts);
        again.salt += 1;
        let again = again.prepare(0);
        for (case, message) in [(Case::New, first), (Case::Existing, again)] {
            let request = message
                .head()
                .header("host", "bench")
                .body(message.body.clone())?;
            let handled = probe.send(request).await?;
            ensure!(
                handled.status() == 200,
                "{} {}: {} {}",
                provider.label(),
                case.label(),
                handled.status(),
                handled.text()
            );
            let kv = handled.kv;
            println!(
                "  {:<26} {:<22}: {} reads, {} writes, {} listings, {} fuel",
                provider.label(),
                case.label(),
                kv.reads,
                kv.writes,
                kv.listings,
                common::thousands(handled.fuel.unwrap_or_default() as f64)
            );
        }
    }
    Ok(())
}

/// The accounts' ids, by provider.
struct Accounts(Vec<(Provider, String)>);

impl Accounts {
    fn of(&self, provider: Provider) -> &str {
        self.0
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, id)| id.as_str())
            .expect("every provider has an account")
    }
}

/// The configuration the messages need, through the HTTP API.
async fn setup(addr: SocketAddr) -> Result<Accounts> {
    let created = call(addr, "/api/orgs", ADMIN_TOKEN, json!({"name": "Bench"})).await?;
    let key = text(&created, "/api_key/key")?;
    let queue = call(addr, "/api/queues", &key, json!({"name": "general"})).await?;
    let queue_id = text(&queue, "/id")?;
    call(
        addr,
        "/api/agents",
        &key,
        json!({"name": "A", "capacity": 100, "presence": "available", "queues": [queue_id]}),
    )
    .await?;
    let mut accounts = Vec::new();
    for provider in PROVIDERS {
        let account = call(addr, "/api/accounts", &key, provider.account()).await?;
        let account_id = text(&account, "/id")?;
        let (channel, address) = provider.channel();
        call(
            addr,
            "/api/workstreams",
            &key,
            json!({
                "name": provider.label(), "channel": channel, "fallback_queue": queue_id,
                "distribution": "round_robin", "routing_rules": [],
                "channels": [{
                    "account_id": account_id, "address": address, "language": "en-US",
                    "customer_attachments": true, "agent_attachments": true,
                }],
            }),
        )
        .await?;
        accounts.push((provider, account_id));
    }
    Ok(Accounts(accounts))
}

impl Provider {
    fn label(self) -> &'static str {
        match self {
            Provider::Twilio => "Twilio WhatsApp",
            Provider::Telesign => "TeleSign SMS",
            Provider::Messenger => "Facebook Messenger",
            Provider::Gbm => "Google Business Messages",
        }
    }

    /// Its segment in `/webhooks/{provider}/{account}`.
    fn segment(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Telesign => "telesign",
            Provider::Messenger => "facebook",
            Provider::Gbm => "gbm",
        }
    }

    /// The account, as the e2e tests create it.
    fn account(self) -> Value {
        match self {
            Provider::Twilio => json!({
                "provider": "twilio", "name": "WA", "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "numbers": [{"name": "Support", "number": BUSINESS_NUMBER}],
            }),
            Provider::Telesign => json!({
                "provider": "telesign", "name": "SMS", "customer_id": channels::CUSTOMER_ID,
                "api_key": channels::API_KEY,
                "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
            }),
            Provider::Messenger => json!({
                "provider": "facebook", "name": "Messenger", "app_id": "1234567890",
                "app_secret": APP_SECRET,
                "pages": [{"name": "Contoso", "page_id": TAGGED_PAGE, "access_token": TAGGED_TOKEN}],
            }),
            Provider::Gbm => json!({
                "provider": "gbm", "name": "Business Messages", "partner_id": "partner-1",
                "client_token": CLIENT_TOKEN, "service_account": fixture("google-service-account.json"),
                "brand_id": "brand-1", "agent_id": GBM_AGENT,
            }),
        }
    }

    /// The workstream's channel type and the channel's address.
    fn channel(self) -> (&'static str, &'static str) {
        match self {
            Provider::Twilio => ("whatsapp", BUSINESS_NUMBER),
            Provider::Telesign => ("sms", SMS_NUMBER),
            Provider::Messenger => ("facebook", TAGGED_PAGE),
            Provider::Gbm => ("gbm", GBM_AGENT),
        }
    }
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Existing => "existing conversation",
            Case::New => "new conversation",
        }
    }
}

/// A signed callback, ready to send.
struct Signed {
    path: Arc<str>,
    body: Bytes,
    headers: Vec<(&'static str, http::HeaderValue)>,
}

impl Signed {
    fn head(&self) -> http::request::Builder {
        let mut request = http::Request::post(&*self.path);
        for (name, value) in &self.headers {
            request = request.header(*name, value.clone());
        }
        request
    }

    fn request(&self) -> Result<hyper::Request<Full<Bytes>>> {
        Ok(self.head().body(Full::new(self.body.clone()))?)
    }
}

/// One provider's signed messages to its account's webhook, on existing or
/// new conversations.
struct Feed {
    provider: Provider,
    case: Case,
    path: Arc<str>,
    /// Keeps message ids apart between the feeds of one run on one store
    /// (each numbers its messages from 0).
    salt: u64,
}

impl Feed {
    fn new(provider: Provider, case: Case, accounts: &Accounts) -> Feed {
        Feed {
            provider,
            case,
            path: format!("/webhooks/{}/{}", provider.segment(), accounts.of(provider)).into(),
            salt: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
        }
    }

    /// Message `seq`'s customer (see the module docs).
    fn customer(&self, seq: u64) -> u64 {
        match self.case {
            Case::Existing => seq % CUSTOMERS,
            Case::New => NEW_CUSTOMERS + seq,
        }
    }

    /// Message `seq`, as its provider posts and signs it.
    fn prepare(&self, seq: u64) -> Signed {
        let customer = self.customer(seq);
        let id = format!("{:016x}{seq:016x}", self.salt);
        let text = format!("Hello, where is my order {seq}? It has not arrived yet.");
        let (body, mut headers) = match self.provider {
            Provider::Twilio => self.twilio(&id, customer, &text),
            Provider::Telesign => {
                let body = channels::mo_sms(&id, &format!("1555{customer:07}"), &text);
                let body = serde_json::to_vec(&body).expect("JSON");
                let signature = sim::telesign_callback_signature(channels::API_KEY, &body);
                let authorization = header(&format!("TSA {}:{signature}", channels::CUSTOMER_ID));
                (
                    body,
                    vec![
                        ("authorization", authorization.clone()),
                        ("x-ts-authorization", authorization),
                    ],
                )
            }
            Provider::Messenger => {
                let psid = (7_000_000_000_000 + customer).to_string();
                let event = channels::messenger_text(TAGGED_PAGE, &psid, &format!("m_{id}"), &text);
                let body = serde_json::to_vec(&channels::messenger(&[(TAGGED_PAGE, vec![event])]))
                    .expect("JSON");
                let signature = sim::hub_signature(APP_SECRET, &body);
                (body, vec![("x-hub-signature-256", header(&signature))])
            }
            Provider::Gbm => {
                let conversation = format!("conv-{customer:010}");
                let body = channels::gbm_text(&conversation, &id, &text, "Bench Customer");
                let body = serde_json::to_vec(&body).expect("JSON");
                let signature = sim::goog_signature(CLIENT_TOKEN, &body);
                (body, vec![("x-goog-signature", header(&signature))])
            }
        };
        if self.provider != Provider::Twilio {
            headers.push((
                "content-type",
                http::HeaderValue::from_static("application/json"),
            ));
        }
        Signed {
            path: self.path.clone(),
            body: Bytes::from(body),
            headers,
        }
    }

    /// Twilio's WhatsApp message parameters, form-encoded and signed over
    /// the public URL with `X-Twilio-Signature`.
    fn twilio(
        &self,
        sid: &str,
        customer: u64,
        text: &str,
    ) -> (Vec<u8>, Vec<(&'static str, http::HeaderValue)>) {
        let sid = format!("SM{sid}");
        let from = format!("+1555{customer:07}");
        let params = e2e::whatsapp::message_params(&sid, &from, text, &[]);
        let url = format!("{PUBLIC_BASE_URL}{}", self.path);
        let signature = e2e::whatsapp::twilio_signature(AUTH_TOKEN, &url, &params);
        let body = e2e::whatsapp::form_encode(&params);
        (
            body.into_bytes(),
            vec![
                (
                    "content-type",
                    http::HeaderValue::from_static("application/x-www-form-urlencoded"),
                ),
                ("x-twilio-signature", header(&signature)),
            ],
        )
    }
}

fn header(value: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(value).expect("a signature is a header value")
}

/// Messages `start`, `start + 1`, … of a feed, the first `size` signed up
/// front.
struct Pool {
    feed: Arc<Feed>,
    start: u64,
    prepared: Vec<Signed>,
    next: AtomicU64,
    live: AtomicU64,
}

impl Pool {
    fn new(feed: Arc<Feed>, start: u64, size: usize) -> Pool {
        let prepared = (start..start + size as u64)
            .map(|seq| feed.prepare(seq))
            .collect();
        Pool {
            feed,
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
                path: signed.path.clone(),
                body: signed.body.clone(),
                headers: signed.headers.clone(),
            },
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
                self.feed.prepare(self.start + index)
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
