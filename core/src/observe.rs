//! Structured logs (SPEC.md R-OPS-2): one JSON line per request and one per
//! provider call, the same in every component.
//!
//! An operator reads these lines to follow a request across components (the
//! request id is the caller's `x-request-id` or a fresh one, echoed in the
//! response header and in every error body) and to see what it cost (store
//! calls, duration). What a line may hold is fixed by the types here: a route
//! *template* (`/api/conversations/{id}/accept`, never the ids), codes,
//! counts and the organisation the request touched. Nothing that carries
//! user data (bodies, message texts, phone numbers, URLs with tokens, keys,
//! secrets) has a field to go into, so no call site can leak it by accident.

use crate::api::{Method, Request, Response};
use crate::ports::{KeyValue, Randomness, StoreError, UnixMillis, Variables};
use serde::Serialize;
use std::cell::{Cell, RefCell};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest caller-given request id kept; a longer or odder one is
/// replaced, so a caller cannot write arbitrary text into the logs.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The caller's `x-request-id` when it is a plain token, else a fresh id.
pub fn request_id(request: &Request, random: &dyn Randomness) -> String {
    match request.header(REQUEST_ID_HEADER) {
        Some(given) if is_plain_token(given) => given.to_owned(),
        _ => random.id128(),
    }
}

fn is_plain_token(text: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The path with every segment that could name an object (ids, account ids,
/// anything but a short lowercase word) replaced by `{id}`.
pub fn route_template(path: &str) -> String {
    if path.trim_matches('/').is_empty() {
        return "/".into();
    }
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .map(|segment| {
            if is_route_word(segment) {
                segment
            } else {
                "{id}"
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}

fn is_route_word(segment: &str) -> bool {
    (1..=20).contains(&segment.len())
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// The store as a request sees it, counting its calls and noting the
/// organisation whose keys (`org/{org}/…`) it touched.
pub struct ObservedStore<'a> {
    inner: &'a dyn KeyValue,
    reads: Cell<u32>,
    writes: Cell<u32>,
    org: RefCell<Option<String>>,
}

impl<'a> ObservedStore<'a> {
    pub fn new(inner: &'a dyn KeyValue) -> ObservedStore<'a> {
        ObservedStore {
            inner,
            reads: Cell::new(0),
            writes: Cell::new(0),
            org: RefCell::new(None),
        }
    }

    fn read(&self, key: &str) {
        self.reads.set(self.reads.get() + 1);
        self.note_org(key);
    }

    fn write(&self, key: &str) {
        self.writes.set(self.writes.get() + 1);
        self.note_org(key);
    }

    fn note_org(&self, key: &str) {
        if self.org.borrow().is_some() {
            return;
        }
        let org = key
            .strip_prefix("org/")
            .and_then(|rest| rest.split('/').next());
        if let Some(org) = org.filter(|org| crate::store::is_id(org)) {
            *self.org.borrow_mut() = Some(org.to_owned());
        }
    }
}

impl KeyValue for ObservedStore<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(key);
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(key);
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write(key);
        self.inner.delete(key)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.read(keys.first().map_or("", String::as_str));
        self.inner.get_many(keys)
    }

    fn batches_reads(&self) -> bool {
        self.inner.batches_reads()
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.write(entries.first().map_or("", |(key, _)| key.as_str()));
        self.inner.set_many(entries)
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        self.write(keys.first().map_or("", String::as_str));
        self.inner.delete_many(keys)
    }

    /// `increment(key, 0)` is how counters are read, so it counts as a read.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        if delta == 0 {
            self.read(key);
        } else {
            self.write(key);
        }
        self.inner.increment(key, delta)
    }
}

/// What a component knows when a request is done.
pub struct RequestDone<'a> {
    pub component: &'a str,
    pub request_id: &'a str,
    pub started_at: UnixMillis,
    pub method: Method,
    pub path: &'a str,
    pub duration_micros: u64,
    pub store: Option<&'a ObservedStore<'a>>,
}

#[derive(Serialize)]
struct RequestLine<'a> {
    time: String,
    kind: &'static str,
    request_id: &'a str,
    component: &'a str,
    method: &'static str,
    route: String,
    status: u16,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    kv_reads: u32,
    kv_writes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Stamps the response with the request id (header, and `error.request_id`
/// in an error body) and returns it with the request's log line.
pub fn finish(mut response: Response, done: &RequestDone<'_>) -> (Response, String) {
    let error = error_code_with_request_id(&mut response, done.request_id);
    let (kv_reads, kv_writes, org) = done.store.map_or((0, 0, None), |store| {
        (
            store.reads.get(),
            store.writes.get(),
            store.org.borrow().clone(),
        )
    });
    let line = RequestLine {
        time: crate::time::rfc3339(done.started_at),
        kind: "request",
        request_id: done.request_id,
        component: done.component,
        method: done.method.name(),
        route: route_template(done.path),
        status: response.status,
        duration_ms: millis(done.duration_micros),
        org,
        kv_reads,
        kv_writes,
        error,
    };
    let response = response.with_header(REQUEST_ID_HEADER, done.request_id);
    (response, to_line(&line))
}

/// The error's code, after writing the request id into the error body.
fn error_code_with_request_id(response: &mut Response, request_id: &str) -> Option<String> {
    if response.status < 400 {
        return None;
    }
    let mut body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    let error = body.get_mut("error")?.as_object_mut()?;
    let code = error.get("code")?.as_str()?.to_owned();
    error.insert("request_id".into(), request_id.into());
    response.body = serde_json::to_vec(&body).expect("a parsed JSON value serializes");
    Some(code)
}

/// One call to a provider (or a bot): who, how it went, how long it took.
pub struct ProviderCall<'a> {
    pub component: &'a str,
    pub request_id: &'a str,
    pub started_at: UnixMillis,
    pub provider: &'static str,
    pub method: Method,
    /// `None` when no HTTP answer came back.
    pub status: Option<u16>,
    pub duration_micros: u64,
}

#[derive(Serialize)]
struct ProviderLine<'a> {
    time: String,
    kind: &'static str,
    request_id: &'a str,
    component: &'a str,
    provider: &'static str,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    duration_ms: f64,
}

pub fn provider_line(call: &ProviderCall<'_>) -> String {
    to_line(&ProviderLine {
        time: crate::time::rfc3339(call.started_at),
        kind: "provider_call",
        request_id: call.request_id,
        component: call.component,
        provider: call.provider,
        method: call.method.name(),
        status: call.status,
        error: call.status.is_none().then_some("no_response"),
        duration_ms: millis(call.duration_micros),
    })
}

/// Which provider a URL goes to; anything else the app calls is a
/// workstream's bot. Logs name the provider, never the URL, whose query may
/// carry a token.
pub fn provider_of(url: &str, variables: &dyn Variables) -> &'static str {
    crate::providers::api_bases()
        .into_iter()
        .find(|(_, variable)| {
            variables
                .get(variable)
                .is_some_and(|base| !base.is_empty() && url.starts_with(base.trim_end_matches('/')))
        })
        .map_or("bot", |(provider, _)| provider)
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn to_line(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("log lines serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MapVariables, MemoryKeyValue, SeededRandomness};

    #[test]
    fn routes_keep_words_and_hide_ids() {
        assert_eq!(
            route_template("/api/conversations/0e93dbee2fde56720759f394a1aad68e/accept"),
            "/api/conversations/{id}/accept"
        );
        assert_eq!(
            route_template("/webhooks/twilio/0e93dbee2fde56720759f394a1aad68e"),
            "/webhooks/twilio/{id}"
        );
        assert_eq!(
            route_template("/api/outbound/dispatch"),
            "/api/outbound/dispatch"
        );
        assert_eq!(route_template("/health"), "/health");
        assert_eq!(route_template("/"), "/");
        assert_eq!(route_template("/console/app.js"), "/console/{id}");
        assert_eq!(
            route_template("/api/contacts/+14155550100"),
            "/api/contacts/{id}"
        );
        assert_eq!(route_template("/api/Secret Word"), "/api/{id}");
    }

    #[test]
    fn a_plain_request_id_is_kept_and_anything_else_replaced() {
        let random = SeededRandomness::new(1);
        let with = |value: &str| {
            let mut request = Request::new(Method::Get, "/health");
            request
                .headers
                .push((REQUEST_ID_HEADER.into(), value.into()));
            request_id(&request, &random)
        };
        assert_eq!(with("abc-123_x.y:z"), "abc-123_x.y:z");
        for odd in ["", "has space", "{\"json\":1}", &"x".repeat(65)] {
            let replaced = with(odd);
            assert!(
                crate::store::is_id(&replaced),
                "{odd:?} became {replaced:?}"
            );
        }
    }

    #[test]
    fn the_store_counts_calls_and_notes_the_organisation() {
        let memory = MemoryKeyValue::default();
        let store = ObservedStore::new(&memory);
        store.get("account/1").unwrap();
        let org = "0e93dbee2fde56720759f394a1aad68e";
        store
            .get_many(&[format!("org/{org}/contact/1"), "x".into()])
            .unwrap();
        store.increment(&format!("org/{org}/log"), 0).unwrap();
        store.increment(&format!("org/{org}/log"), 1).unwrap();
        store
            .set_many(&[("org/other/x".into(), b"1".to_vec())])
            .unwrap();
        assert_eq!((store.reads.get(), store.writes.get()), (3, 2));
        assert_eq!(store.org.borrow().as_deref(), Some(org));
    }

    #[test]
    fn an_error_carries_the_request_id_and_the_line_its_code() {
        let response =
            crate::error::Error::conflict("in_use", "delete what uses it first").into_response();
        let (response, line) = finish(
            response,
            &RequestDone {
                component: "admin",
                request_id: "r-1",
                started_at: 0,
                method: Method::Delete,
                path: "/api/queues/0e93dbee2fde56720759f394a1aad68e",
                duration_micros: 1500,
                store: None,
            },
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["request_id"], "r-1");
        assert!(response
            .headers
            .contains(&(REQUEST_ID_HEADER.to_string(), "r-1".to_string())));
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line["route"], "/api/queues/{id}");
        assert_eq!(line["status"], 409);
        assert_eq!(line["error"], "in_use");
        assert_eq!(line["duration_ms"], 1.5);
        assert_eq!(line["method"], "DELETE");
    }

    #[test]
    fn provider_calls_name_the_provider_not_the_url() {
        let variables = MapVariables::from([("graph_api_base", "http://127.0.0.1:9000")]);
        let url = "http://127.0.0.1:9000/v19.0/me/messages?access_token=EAAB-secret";
        assert_eq!(provider_of(url, &variables), "facebook");
        assert_eq!(provider_of("https://bot.example/hook", &variables), "bot");
        let line = provider_line(&ProviderCall {
            component: "conversations",
            request_id: "r-2",
            started_at: 0,
            provider: provider_of(url, &variables),
            method: Method::Post,
            status: None,
            duration_micros: 10,
        });
        assert!(!line.contains("secret") && !line.contains("127.0.0.1"));
        assert!(line.contains("\"error\":\"no_response\""));
    }
}
