//! Fault sweeps (issue 13, SPEC.md R-OPS-4, ARCHITECTURE.md principle 7):
//! every request that writes is run once per step with a store error or a
//! crash there (and, for requests that call a provider, with that call
//! refused or timed out), then recovered as the provider or the flow would
//! recover it, and the result is checked as a user sees it, through the API
//! and the provider simulators, never by reading the store.
//!
//! Every case runs on a [`Site`] of its own: a fresh app (the dev host's
//! faults and guest clock are per app) with its own provider simulators, an
//! organisation with all four channels, and whatever the request needs
//! before it. Cases of one sweep run a few at a time ([`run_sweep`]).

use crate::api::{Gateway, DISPATCH_TOKEN, PUBLIC_BASE_URL};
use crate::channels::{
    fixture, gbm_text, messenger, messenger_text, mo_sms, API_KEY, APP_SECRET, CLIENT_TOKEN,
    CUSTOMER_ID, GBM_AGENT, PLAIN_PAGE, PLAIN_TOKEN, SA_EMAIL, SMS_NUMBER, TAGGED_PAGE,
    TAGGED_TOKEN,
};
use crate::desk::{AgentKey, Desk};
use crate::sim::{self, Recorded, Script, Simulator};
use crate::whatsapp::{
    form_encode, message_params, twilio_signature, ACCOUNT_SID, AUTH_TOKEN, BUSINESS_NUMBER,
};
use crate::Backend;
use bytes::Bytes;
use devhost::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// A Twilio number of the site's account that no workstream serves: the
/// unique name the configuration sweeps fight over.
pub const SPARE_NUMBER: &str = "+14155238887";

/// Far enough to get past any lease a dead request left (leases are 30 s
/// windows and expire within 60 s).
pub const PAST_LEASES: Duration = Duration::from_secs(120);

/// Retries after the immediate one, each after moving the clock past the
/// leases.
pub const LATE_RETRIES: usize = 3;

/// How long one request may take in real time before the case counts it as
/// unanswered (`RECOVERY_REQUEST_TIMEOUT_SECS`, default 30: longer than any
/// wait the app does on purpose, such as a retry waiting for the answer of
/// a call with the same `Idempotency-Key`).
pub fn request_timeout() -> Duration {
    let seconds = std::env::var("RECOVERY_REQUEST_TIMEOUT_SECS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(seconds)
}

/// `RECOVERY_VERBOSE=1`: reports show whole answers, not just statuses.
pub fn verbose() -> bool {
    std::env::var("RECOVERY_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `RECOVERY_ONLY=crash@3,store-error@7`: runs only those faults of each
/// sweep (after its calibration run), to look at one case.
fn only() -> Option<Vec<String>> {
    std::env::var("RECOVERY_ONLY")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|f| f.trim().to_owned()).collect())
}

/// Cases of one sweep in flight at once (`RECOVERY_CONCURRENCY`, default 4).
pub fn concurrency() -> usize {
    std::env::var("RECOVERY_CONCURRENCY")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}

// ------------------------------------------------------------ faults

/// The kinds of fault a sweep injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    StoreError,
    Crash,
    HttpError,
    HttpTimeout,
}

impl Kind {
    pub const STORE: [Kind; 2] = [Kind::StoreError, Kind::Crash];
    pub const HTTP: [Kind; 2] = [Kind::HttpError, Kind::HttpTimeout];

    pub fn at(self, at: u64) -> Fault {
        match self {
            Kind::StoreError => Fault::StoreError { at },
            Kind::Crash => Fault::Crash { at },
            Kind::HttpError => Fault::HttpError { at },
            Kind::HttpTimeout => Fault::HttpTimeout { at },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::StoreError => "store-error",
            Kind::Crash => "crash",
            Kind::HttpError => "http-error",
            Kind::HttpTimeout => "http-timeout",
        }
    }

    fn on_key_value(self) -> bool {
        matches!(self, Kind::StoreError | Kind::Crash)
    }
}

/// `crash@3`, as the dev host's `--fault` spells it.
pub fn fault_name(fault: Option<Fault>) -> String {
    fault.map_or_else(|| "no fault".to_owned(), |fault| fault.to_string())
}

// ------------------------------------------------------------ requests

/// A request that can be sent again byte for byte: a provider's redelivery
/// or a flow's retry.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Call {
    pub fn new(method: &str, path: &str) -> Call {
        Call {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, key: &str) -> Call {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn json(mut self, body: &Value) -> Call {
        self.body = Bytes::from(body.to_string());
        self.header("content-type", "application/json")
    }

    pub fn bytes(mut self, content_type: &str, body: Vec<u8>) -> Call {
        self.body = Bytes::from(body);
        self.header("content-type", content_type)
    }

    fn request(&self) -> http::Request<Bytes> {
        let mut request = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str())
            .header("host", "localhost:3000");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.body(self.body.clone()).expect("a valid request")
    }

    /// `POST /api/...` for the log.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What came back, including a response the dev host had to break off (a
/// crash after the head was sent) or none within [`request_timeout`]:
/// status 0 then, with the reason as the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Key-value operations of the request (its steps).
    pub ops: u64,
    pub fired: Vec<Fault>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The error code of a JSON error answer.
    pub fn code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }

    /// `503 in_progress` or `500 (no body)`, short, for reports.
    pub fn brief(&self) -> String {
        let status = if self.status == 0 {
            "broken".to_owned()
        } else {
            self.status.to_string()
        };
        match self.code() {
            Some(code) => format!("{status} {code}"),
            None if self.body.is_empty() => status,
            None => format!("{status} {}", clip(&self.body, 80)),
        }
    }
}

/// The first place where `a` and `b` differ, as `pointer: a ≠ b`.
pub fn json_difference(a: &Value, b: &Value) -> Option<String> {
    fn walk(pointer: String, a: &Value, b: &Value) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (key, value) in x {
                    let inner = walk(
                        format!("{pointer}/{key}"),
                        value,
                        y.get(key).unwrap_or(&Value::Null),
                    );
                    if inner.is_some() {
                        return inner;
                    }
                }
                y.keys().find(|key| !x.contains_key(*key)).map(|key| {
                    format!(
                        "{pointer}/{key}: absent ≠ {}",
                        clip(&y[key].to_string(), 120)
                    )
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| walk(format!("{pointer}/{i}"), p, q)),
            _ if a == b => None,
            _ => Some(format!(
                "{pointer}: {} ≠ {}",
                clip(&a.to_string(), 120),
                clip(&b.to_string(), 120)
            )),
        }
    }
    walk(String::new(), a, b)
}

/// At most `max` characters of `text`.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max).collect();
    clipped.push('…');
    clipped
}

// ------------------------------------------------------------ the site

/// The providers, as far as the sweeps tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provider {
    Twilio,
    Telesign,
    Facebook,
    Gbm,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::Twilio,
        Provider::Telesign,
        Provider::Facebook,
        Provider::Gbm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Telesign => "telesign",
            Provider::Facebook => "facebook",
            Provider::Gbm => "gbm",
        }
    }

    /// The channel type of its conversations.
    pub fn channel(self) -> &'static str {
        match self {
            Provider::Twilio => "whatsapp",
            Provider::Telesign => "sms",
            Provider::Facebook => "facebook",
            Provider::Gbm => "gbm",
        }
    }

    /// Customer `n`'s address on this provider, as conversations show it.
    pub fn customer(self, n: u32) -> String {
        match self {
            Provider::Twilio => format!("+49176{n:08}"),
            Provider::Telesign => format!("+1555{n:07}"),
            Provider::Facebook => format!("PSID-{n}"),
            Provider::Gbm => format!("CONV-{n}"),
        }
    }

    /// The name Graph gives Messenger customer `n` (a customer of the
    /// sweeps: 1 to 99, or a capacity probe's 500 to 599); `None` on the
    /// other providers, whose messages carry the sender's name or none.
    pub fn customer_name(self, n: u32) -> Option<String> {
        (self == Provider::Facebook).then(|| format!("Dana Customer{n}"))
    }

    /// A provider message id of this provider's shape.
    pub fn message_id(self, n: u32) -> String {
        match self {
            Provider::Twilio => format!("SMc{n:031x}"),
            Provider::Telesign => format!("C0FFEE{n:026X}"),
            Provider::Facebook => format!("mid.recovery.{n}"),
            Provider::Gbm => format!("MSG-recovery-{n}"),
        }
    }
}

/// The profiles Graph knows, so that every new Messenger customer of the
/// sweeps is named ([`Provider::customer_name`]).
fn messenger_profiles() -> sim::Profiles {
    let profiles = (1..100).chain(500..600).map(|n| {
        let customer = Provider::Facebook.customer(n);
        let name = Provider::Facebook.customer_name(n).unwrap_or_default();
        let (first, last) = name.split_once(' ').unwrap_or_default();
        let (first, last) = (first.to_owned(), last.to_owned());
        (customer, sim::Profile::Named { first, last })
    });
    sim::Profiles::new(std::sync::Mutex::new(profiles.collect()))
}

/// One case's world: an app with its own simulators, an organisation with
/// queues `general`, `billing`, `escalations`, a WhatsApp (Twilio), SMS
/// (TeleSign), Messenger and Business Messages account, and a workstream per
/// channel, each falling back to `general`.
pub struct Site {
    pub desk: Desk,
    pub twilio: Simulator,
    pub twilio_script: Script,
    pub telesign: Simulator,
    pub telesign_script: Script,
    pub graph: Simulator,
    pub google: Simulator,
    pub twilio_account: String,
    pub sms_account: String,
    pub facebook_account: String,
    pub gbm_account: String,
    /// Workstream ids by channel type.
    pub workstreams: BTreeMap<String, String>,
}

impl std::ops::Deref for Site {
    type Target = Desk;

    fn deref(&self) -> &Desk {
        &self.desk
    }
}

/// Compiles the components once per process before the first site opens:
/// the sweeps of several tests start at once, and would each compile them.
async fn warm_up() {
    static WARM: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    WARM.get_or_init(|| async {
        Gateway::start_on(&Backend::Memory, &[]).await;
    })
    .await;
}

impl Site {
    pub async fn open() -> Site {
        warm_up().await;
        let twilio_script = Script::default();
        let twilio = sim::twilio_scripted(ACCOUNT_SID, AUTH_TOKEN, twilio_script.clone());
        let telesign_script = Script::default();
        let telesign = sim::telesign_scripted(CUSTOMER_ID, API_KEY, telesign_script.clone());
        let graph = sim::graph_with_profiles(
            APP_SECRET,
            &[
                (TAGGED_PAGE, TAGGED_TOKEN, "Contoso"),
                (PLAIN_PAGE, PLAIN_TOKEN, "Contoso Outlet"),
            ],
            Script::default(),
            messenger_profiles(),
        );
        let google = sim::google_oauth(SA_EMAIL, &fixture("google-service-account.pub.pem"));
        let (twilio_base, telesign_base, graph_base, google_base) =
            (twilio.base(), telesign.base(), graph.base(), google.base());
        let gateway = Gateway::start_on(
            &Backend::Memory,
            &[
                ("twilio_api_base", &twilio_base),
                ("telesign_api_base", &telesign_base),
                ("graph_api_base", &graph_base),
                ("gbm_api_base", &google_base),
                ("google_oauth_base", &google_base),
                ("bot_origin", "https://bot.invalid"),
            ],
        )
        .await;
        let desk = Desk::open(gateway).await;
        let key = desk.org.key.clone();
        let create = |path: &'static str, body: Value| {
            let desk = &desk;
            let key = key.clone();
            async move { desk.gateway.create(&key, path, body).await }
        };
        let id = |document: &Value| document["id"].as_str().unwrap().to_owned();
        let twilio_account = id(&create(
            "/api/accounts",
            json!({
                "provider": "twilio", "name": "WhatsApp", "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "numbers": [{"name": "Support", "number": BUSINESS_NUMBER},
                            {"name": "Spare", "number": SPARE_NUMBER}],
            }),
        )
        .await);
        let sms_account = id(&create(
            "/api/accounts",
            json!({
                "provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID, "api_key": API_KEY,
                "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
            }),
        )
        .await);
        let facebook_account = id(&create(
            "/api/accounts",
            json!({
                "provider": "facebook", "name": "Messenger", "app_id": "1234567890", "app_secret": APP_SECRET,
                "pages": [{"name": "Contoso", "page_id": TAGGED_PAGE, "access_token": TAGGED_TOKEN}],
            }),
        )
        .await);
        let gbm_account = id(&create(
            "/api/accounts",
            json!({
                "provider": "gbm", "name": "Business Messages", "partner_id": "partner-1",
                "client_token": CLIENT_TOKEN, "service_account": fixture("google-service-account.json"),
                "brand_id": "brand-1", "agent_id": GBM_AGENT,
            }),
        )
        .await);
        let mut workstreams = BTreeMap::new();
        for (name, channel, account, address, extra) in [
            (
                "WhatsApp",
                "whatsapp",
                &twilio_account,
                BUSINESS_NUMBER,
                json!({"agent_attachments": true}),
            ),
            ("SMS", "sms", &sms_account, SMS_NUMBER, json!({})),
            (
                "Messenger",
                "facebook",
                &facebook_account,
                TAGGED_PAGE,
                json!({"human_agent_tag": true}),
            ),
            (
                "Business Messages",
                "gbm",
                &gbm_account,
                GBM_AGENT,
                json!({}),
            ),
        ] {
            let mut instance = json!({
                "account_id": account, "address": address, "language": "en-US",
                "customer_attachments": false, "agent_attachments": false,
            });
            for (field, value) in extra.as_object().unwrap() {
                instance[field] = value.clone();
            }
            let workstream = create(
                "/api/workstreams",
                json!({
                    "name": name, "channel": channel, "fallback_queue": desk.queue("general"),
                    "distribution": "round_robin", "channels": [instance],
                }),
            )
            .await;
            workstreams.insert(channel.to_owned(), id(&workstream));
        }
        Site {
            desk,
            twilio,
            twilio_script,
            telesign,
            telesign_script,
            graph,
            google,
            twilio_account,
            sms_account,
            facebook_account,
            gbm_account,
            workstreams,
        }
    }

    pub fn admin(&self) -> &str {
        &self.desk.org.key
    }

    /// Sends `call` once, with `fault` armed for it.
    pub async fn send(&self, call: &Call, fault: Option<Fault>) -> Answer {
        let app = &self.desk.gateway.app;
        if let Some(fault) = fault {
            app.inject(fault).expect("the dev host arms the fault");
        }
        let sent = tokio::time::timeout(request_timeout(), app.send(call.request())).await;
        app.clear_faults();
        match sent {
            Ok(Ok(handled)) => Answer {
                status: handled.status(),
                headers: handled
                    .response
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            value.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                body: handled.text(),
                ops: handled.kv.ops,
                fired: handled.faults_fired,
            },
            Ok(Err(error)) => Answer {
                status: 0,
                headers: Vec::new(),
                body: format!("broken response: {error:#}"),
                ops: 0,
                fired: fault.into_iter().collect(),
            },
            Err(_) => Answer {
                status: 0,
                headers: Vec::new(),
                body: format!("no answer within {} s", request_timeout().as_secs()),
                ops: 0,
                fired: fault.into_iter().collect(),
            },
        }
    }

    /// Moves the guests' clock past every lease.
    pub fn past_leases(&self) {
        self.desk.gateway.app.clock().advance(PAST_LEASES);
    }

    /// `GET path` with `key`: the document, or the failed answer's brief.
    pub async fn read(&self, key: &str, path: &str) -> Result<Value, String> {
        let answer = self.send(&Call::new("GET", path).bearer(key), None).await;
        if answer.status == 200 {
            Ok(answer.json())
        } else {
            Err(format!("GET {path}: {}", answer.brief()))
        }
    }

    /// An agent with its own key; `presence` as given.
    pub async fn agent(
        &self,
        name: &str,
        capacity: i64,
        queues: &[&str],
        presence: &str,
    ) -> AgentKey {
        let queue_ids: Vec<String> = queues.iter().map(|q| self.queue(q)).collect();
        crate::desk::agent_with_key(
            &self.gateway,
            self.admin(),
            json!({"name": name, "capacity": capacity, "presence": presence, "queues": queue_ids}),
        )
        .await
    }

    // -------------------------------------------------------- webhooks

    /// A customer's message as the provider posts it, signed.
    pub fn inbound(
        &self,
        provider: Provider,
        customer: &str,
        message_id: &str,
        text: &str,
    ) -> Call {
        match provider {
            Provider::Twilio => self.twilio_form(&message_params(message_id, customer, text, &[])),
            Provider::Telesign => {
                self.telesign_callback(&mo_sms(message_id, customer.trim_start_matches('+'), text))
            }
            Provider::Facebook => self.facebook_post(&messenger(&[(
                TAGGED_PAGE,
                vec![messenger_text(TAGGED_PAGE, customer, message_id, text)],
            )])),
            Provider::Gbm => self.gbm_post(&gbm_text(customer, message_id, text, "Jane Doe")),
        }
    }

    /// One Messenger delivery carrying several customers' messages
    /// (`(psid, mid, text)`) to the page, signed.
    pub fn messenger_batch(&self, messages: &[(&str, &str, &str)]) -> Call {
        let events = messages
            .iter()
            .map(|(psid, mid, text)| messenger_text(TAGGED_PAGE, psid, mid, text))
            .collect();
        self.facebook_post(&messenger(&[(TAGGED_PAGE, events)]))
    }

    /// The provider's report that our message `provider_message_id` to
    /// `customer` was delivered, signed.
    pub fn delivered(&self, provider: Provider, customer: &str, provider_message_id: &str) -> Call {
        match provider {
            Provider::Twilio => self.twilio_form(&crate::whatsapp::status_params(
                provider_message_id,
                "delivered",
            )),
            Provider::Telesign => self.telesign_callback(&crate::channels::delivery_report(
                provider_message_id,
                200,
                "Delivered to handset",
            )),
            Provider::Facebook => self.facebook_post(&messenger(&[(
                TAGGED_PAGE,
                vec![json!({
                    "sender": {"id": customer}, "recipient": {"id": TAGGED_PAGE}, "timestamp": 1,
                    "delivery": {"mids": [provider_message_id], "watermark": 1, "seq": 0},
                })],
            )])),
            Provider::Gbm => self.gbm_post(&json!({
                "agent": format!("brands/brand-1/agents/{GBM_AGENT}"), "conversationId": customer,
                "requestId": format!("receipt-{provider_message_id}"),
                "receipts": {"receipts": [{
                    "message": format!("conversations/{customer}/messages/{provider_message_id}"),
                    "receiptType": "DELIVERED",
                }], "createTime": "2026-11-22T10:00:00Z"},
                "sendTime": "2026-11-22T10:00:00Z",
            })),
        }
    }

    /// A Twilio webhook post of `params`, signed.
    pub fn twilio_form(&self, params: &[(String, String)]) -> Call {
        let path = format!("/webhooks/twilio/{}", self.twilio_account);
        let signature = twilio_signature(AUTH_TOKEN, &format!("{PUBLIC_BASE_URL}{path}"), params);
        Call::new("POST", &path)
            .bytes(
                "application/x-www-form-urlencoded",
                form_encode(params).into_bytes(),
            )
            .header("x-twilio-signature", &signature)
    }

    fn telesign_callback(&self, body: &Value) -> Call {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::telesign_callback_signature(API_KEY, &bytes);
        let authorization = format!("TSA {CUSTOMER_ID}:{signature}");
        Call::new("POST", &format!("/webhooks/telesign/{}", self.sms_account))
            .bytes("application/json", bytes)
            .header("authorization", &authorization)
            .header("x-ts-authorization", &authorization)
    }

    fn facebook_post(&self, body: &Value) -> Call {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::hub_signature(APP_SECRET, &bytes);
        Call::new(
            "POST",
            &format!("/webhooks/facebook/{}", self.facebook_account),
        )
        .bytes("application/json", bytes)
        .header("x-hub-signature-256", &signature)
    }

    fn gbm_post(&self, body: &Value) -> Call {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::goog_signature(CLIENT_TOKEN, &bytes);
        Call::new("POST", &format!("/webhooks/gbm/{}", self.gbm_account))
            .bytes("application/json", bytes)
            .header("x-goog-signature", &signature)
    }

    // -------------------------------------------------------- provider side

    /// Every message send the provider's simulator received (token
    /// requests and credential checks left out), as (recipient, text).
    pub fn provider_sends(&self, provider: Provider) -> Vec<(String, String)> {
        let posts = |simulator: &Simulator| -> Vec<Recorded> {
            simulator
                .requests()
                .into_iter()
                .filter(|r| r.method == "POST")
                .collect()
        };
        let json = |r: &Recorded| serde_json::from_slice::<Value>(&r.body).unwrap_or_default();
        match provider {
            Provider::Twilio => posts(&self.twilio)
                .iter()
                .filter(|r| r.path.ends_with("/Messages.json"))
                .map(|r| {
                    let to = r.form_value("To").unwrap_or_default();
                    (
                        to.trim_start_matches("whatsapp:").to_owned(),
                        r.form_value("Body")
                            .or_else(|| r.form_value("ContentVariables"))
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            Provider::Telesign => posts(&self.telesign)
                .iter()
                .filter(|r| r.path == "/v1/messaging")
                .map(|r| {
                    (
                        format!("+{}", r.form_value("phone_number").unwrap_or_default()),
                        r.form_value("message").unwrap_or_default(),
                    )
                })
                .collect(),
            Provider::Facebook => posts(&self.graph)
                .iter()
                .filter(|r| r.path.ends_with("/me/messages"))
                .map(|r| {
                    let body = json(r);
                    (
                        body["recipient"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        body["message"]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect(),
            Provider::Gbm => posts(&self.google)
                .iter()
                .filter_map(|r| {
                    let conversation = r
                        .path
                        .strip_prefix("/v1/conversations/")?
                        .strip_suffix("/messages")?;
                    Some((
                        conversation.to_owned(),
                        json(r)["text"].as_str().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        }
    }

    /// How many times Graph was asked for Messenger customer `psid`'s
    /// profile.
    pub fn profile_reads(&self, psid: &str) -> usize {
        let path = format!("/v21.0/{psid}");
        self.graph
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    }

    /// Every request the provider's simulator received, token requests and
    /// all: what an HTTP fault sweep counts.
    pub fn provider_requests(&self, provider: Provider) -> usize {
        match provider {
            Provider::Twilio => self.twilio.requests().len(),
            Provider::Telesign => self.telesign.requests().len(),
            Provider::Facebook => self.graph.requests().len(),
            Provider::Gbm => self.google.requests().len(),
        }
    }

    /// How many times `customer` was sent `text`.
    pub fn times_sent(&self, provider: Provider, customer: &str, text: &str) -> usize {
        self.provider_sends(provider)
            .iter()
            .filter(|(to, sent)| to == customer && sent == text)
            .count()
    }

    // -------------------------------------------------------- conversations

    /// The customer's conversations on the provider's channel, each read
    /// whole (with its messages).
    pub async fn conversations_of(
        &self,
        provider: Provider,
        customer: &str,
    ) -> Result<Vec<Value>, String> {
        let page = self
            .read(self.admin(), "/api/conversations?limit=200")
            .await?;
        let mut found = Vec::new();
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            if item["customer_address"] == customer && item["channel"] == provider.channel() {
                let id = item["id"].as_str().unwrap_or_default();
                found.push(
                    self.read(self.admin(), &format!("/api/conversations/{id}"))
                        .await?,
                );
            }
        }
        Ok(found)
    }

    /// Every agent's `load` against the conversations it holds active.
    pub async fn load_problems(&self, agents: &[&AgentKey]) -> Vec<Problem> {
        let mut problems = Vec::new();
        for agent in agents {
            let shown = match self
                .read(self.admin(), &format!("/api/agents/{}", agent.id))
                .await
            {
                Ok(document) => document,
                Err(error) => {
                    problems.push(Problem::new("unreadable", error));
                    continue;
                }
            };
            let active = match self
                .read(
                    self.admin(),
                    &format!(
                        "/api/conversations?agent={}&state=active&limit=200",
                        agent.id
                    ),
                )
                .await
            {
                Ok(page) => page["items"].as_array().map_or(0, Vec::len) as i64,
                Err(error) => {
                    problems.push(Problem::new("unreadable", error));
                    continue;
                }
            };
            match shown["load"].as_i64() {
                None => problems.push(Problem::new(
                    "load-missing",
                    format!("GET /api/agents/{{id}} shows no integer \"load\" (agent {}: {active} active)", shown["name"]),
                )),
                Some(load) if load != active => problems.push(Problem::new(
                    "load-drift",
                    format!(
                        "agent {} shows load {load} but holds {active} active conversation(s)",
                        shown["name"]
                    ),
                )),
                Some(_) => {}
            }
        }
        problems
    }
}

// ------------------------------------------------------------ checks

/// One broken invariant: a short cause the report groups by, and what was
/// seen against what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub cause: String,
    pub detail: String,
}

impl Problem {
    pub fn new(cause: &str, detail: impl Into<String>) -> Problem {
        Problem {
            cause: cause.to_owned(),
            detail: detail.into(),
        }
    }
}

/// What a case found: the steps its faulted (or calibration) request had,
/// the provider requests it made, whether the fault fired, and what broke.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ops: u64,
    pub http: u64,
    pub fired: bool,
    pub problems: Vec<Problem>,
    /// The answers of the faulted request and its retries, for the report.
    pub answers: Vec<String>,
}

impl Outcome {
    pub fn problem(&mut self, cause: &str, detail: impl Into<String>) {
        self.problems.push(Problem::new(cause, detail));
    }

    /// Records the faulted request's answer.
    pub fn faulted(&mut self, answer: &Answer, fault: Option<Fault>) {
        self.ops = answer.ops;
        self.fired = fault.is_none() || !answer.fired.is_empty();
        self.note(answer);
    }

    /// Records an answer for the report: its status and error code, or its
    /// whole body with `RECOVERY_VERBOSE=1`.
    pub fn note(&mut self, answer: &Answer) {
        if verbose() {
            self.answers
                .push(format!("{} {}", answer.status, clip(&answer.body, 1_000)));
        } else {
            self.answers.push(answer.brief());
        }
    }
}

// ------------------------------------------------------------ sweeps

/// A failed case, for the report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub request: String,
    pub fault: Option<Fault>,
    pub problems: Vec<Problem>,
    pub answers: Vec<String>,
}

/// What one sweep ran and found.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub request: String,
    pub cases: usize,
    pub summary: String,
    pub failures: Vec<Failure>,
    /// Cases whose fault never fired: the request had fewer steps than in
    /// the calibration run.
    pub unfired: Vec<Fault>,
    pub elapsed: Duration,
}

/// Runs the sweep of one request: `case(None)` once to count its steps
/// (`n` key-value operations, `m` provider requests), then `case(Some(kind
/// at k))` for every `k` in `1..=n` of each store kind and `1..=m` of each
/// HTTP kind in `kinds`, [`concurrency`] at a time, each on a fresh site.
pub async fn run_sweep<F, Fut>(request: &str, kinds: &[Kind], case: F) -> SweepReport
where
    F: Fn(Option<Fault>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = Instant::now();
    let mut report = SweepReport {
        request: request.to_owned(),
        ..SweepReport::default()
    };
    let calibration = case(None).await;
    report.cases += 1;
    if !calibration.problems.is_empty() {
        report.failures.push(Failure {
            request: request.to_owned(),
            fault: None,
            problems: calibration.problems,
            answers: calibration.answers,
        });
        report.summary = format!("recovery sweep {request}: the fault-free run already fails");
        report.elapsed = started.elapsed();
        return report;
    }
    let (n, m) = (calibration.ops, calibration.http);
    let mut faults = Vec::new();
    for kind in kinds {
        let steps = if kind.on_key_value() { n } else { m };
        faults.extend((1..=steps).map(|k| kind.at(k)));
    }
    if let Some(only) = only() {
        faults.retain(|fault| only.contains(&fault.to_string()));
    }
    let outcomes = bounded(
        faults.iter().map(|fault| case(Some(*fault))).collect(),
        concurrency(),
    )
    .await;
    for (fault, outcome) in faults.iter().zip(outcomes) {
        report.cases += 1;
        if !outcome.fired {
            report.unfired.push(*fault);
        }
        if !outcome.problems.is_empty() {
            report.failures.push(Failure {
                request: request.to_owned(),
                fault: Some(*fault),
                problems: outcome.problems,
                answers: outcome.answers,
            });
        }
    }
    let store_kinds: Vec<&str> = kinds
        .iter()
        .filter(|k| k.on_key_value())
        .map(|k| k.name())
        .collect();
    let http_kinds: Vec<&str> = kinds
        .iter()
        .filter(|k| !k.on_key_value())
        .map(|k| k.name())
        .collect();
    let mut ranges = vec![format!("k 1..={n} {}", store_kinds.join("/"))];
    if !http_kinds.is_empty() {
        ranges.push(format!("http 1..={m} {}", http_kinds.join("/")));
    }
    report.elapsed = started.elapsed();
    report.summary = format!(
        "recovery sweep {request}: {} cases ({}), {} failed, {:.1} s",
        report.cases,
        ranges.join("; "),
        report.failures.len(),
        report.elapsed.as_secs_f64()
    );
    report
}

/// Runs `futures` with at most `limit` in flight; outputs in input order.
pub async fn bounded<Fut: Future>(futures: Vec<Fut>, limit: usize) -> Vec<Fut::Output> {
    let total = futures.len();
    let mut waiting = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<Fut>>)> = Vec::new();
    let mut outputs: Vec<Option<Fut::Output>> = (0..total).map(|_| None).collect();
    let mut finished = 0;
    std::future::poll_fn(|cx| loop {
        while running.len() < limit {
            match waiting.next() {
                Some((index, future)) => running.push((index, Box::pin(future))),
                None => break,
            }
        }
        let mut progressed = false;
        let mut i = 0;
        while i < running.len() {
            if let Poll::Ready(output) = running[i].1.as_mut().poll(cx) {
                let (index, _) = running.swap_remove(i);
                outputs[index] = Some(output);
                finished += 1;
                progressed = true;
            } else {
                i += 1;
            }
        }
        if finished == total {
            return Poll::Ready(());
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}

/// Prints every sweep's line and a total, and fails with the broken cases
/// grouped by request and cause: the first failing step and fault of each
/// group, what was seen, and how many cases share it.
pub fn conclude(test: &str, reports: &[SweepReport]) {
    let mut total = 0;
    for report in reports {
        println!("{}", report.summary);
        if !report.unfired.is_empty() {
            let unfired: Vec<String> = report.unfired.iter().map(|f| f.to_string()).collect();
            println!(
                "  note: {} fault(s) never fired (the request had fewer steps than calibrated): {}",
                unfired.len(),
                unfired.join(", ")
            );
        }
        total += report.cases;
    }
    let failures: Vec<&Failure> = reports.iter().flat_map(|r| &r.failures).collect();
    let elapsed: f64 = reports.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    println!(
        "recovery total {test}: {total} cases in {} sweeps, {} failed, {elapsed:.1} s",
        reports.len(),
        failures.len()
    );
    static ALL_CASES: AtomicUsize = AtomicUsize::new(0);
    static ALL_FAILED: AtomicUsize = AtomicUsize::new(0);
    static ALL_TESTS: AtomicUsize = AtomicUsize::new(0);
    let cases = ALL_CASES.fetch_add(total, Ordering::SeqCst) + total;
    let failed = ALL_FAILED.fetch_add(failures.len(), Ordering::SeqCst) + failures.len();
    let tests = ALL_TESTS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("recovery running total: {cases} cases, {failed} failed, in the {tests} sweep test(s) finished so far");
    if failures.is_empty() {
        return;
    }
    // The first failure of each (request, cause), and how many share it.
    struct Group {
        fault: String,
        detail: String,
        answers: Vec<String>,
        count: usize,
    }
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for failure in &failures {
        let mut seen = Vec::new();
        for problem in &failure.problems {
            if seen.contains(&problem.cause) {
                continue;
            }
            seen.push(problem.cause.clone());
            groups
                .entry((failure.request.clone(), problem.cause.clone()))
                .or_insert_with(|| Group {
                    fault: fault_name(failure.fault),
                    detail: problem.detail.clone(),
                    answers: failure.answers.clone(),
                    count: 0,
                })
                .count += 1;
        }
    }
    let mut text = format!(
        "{} of {total} recovery cases failed; by request and cause (first failing fault, what was seen, answers of the faulted request and its retries):\n",
        failures.len()
    );
    for ((request, cause), group) in &groups {
        text.push_str(&format!(
            "- {request} [{cause}] {} case(s), first at {}: {} (answers: {})\n",
            group.count,
            group.fault,
            group.detail,
            group.answers.join(" → ")
        ));
    }
    text.push_str("every failing case:\n");
    for failure in &failures {
        let causes: Vec<&str> = failure.problems.iter().map(|p| p.cause.as_str()).collect();
        text.push_str(&format!(
            "  {} {}: {}\n",
            failure.request,
            fault_name(failure.fault),
            causes.join(", ")
        ));
        if verbose() {
            for problem in &failure.problems {
                text.push_str(&format!("    [{}] {}\n", problem.cause, problem.detail));
            }
            text.push_str(&format!("    answers: {}\n", failure.answers.join(" → ")));
        }
    }
    println!("{text}");
    panic!("{text}");
}

/// The scheduler's dispatch call.
pub fn dispatch_call() -> Call {
    Call::new("POST", "/api/outbound/dispatch").bearer(DISPATCH_TOKEN)
}

/// Sends `call` again as its sender would after a failure: once at once,
/// then up to [`LATE_RETRIES`] times, each after moving the clock past the
/// leases, until `settled` says the work is done. Records every answer in
/// `outcome`; returns whether it settled and the last answer.
pub async fn retry<S>(
    site: &Site,
    call: &Call,
    outcome: &mut Outcome,
    mut settled: S,
) -> (bool, Option<Answer>)
where
    S: AsyncFnMut(&Answer) -> bool,
{
    let mut last = None;
    for attempt in 0..=LATE_RETRIES {
        if attempt > 0 {
            site.past_leases();
        }
        let answer = site.send(call, None).await;
        outcome.note(&answer);
        if answer.status == 503
            && answer.code().as_deref() == Some("in_progress")
            && answer.header("retry-after").is_none()
        {
            outcome.problem(
                "no-retry-after",
                format!(
                    "{} answered 503 in_progress without Retry-After",
                    call.label()
                ),
            );
        }
        let done = settled(&answer).await;
        last = Some(answer);
        if done {
            return (true, last);
        }
    }
    (false, last)
}
