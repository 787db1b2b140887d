//! A test-only component that pins Spin host behaviour for the dev host's
//! conformance tests.
//!
//! It makes no decisions of its own: each route calls one raw Spin host API
//! (`fermyon:spin/key-value`, `wasi:keyvalue`, variables, outbound HTTP,
//! service chaining, the clock, stdio, traps) and reports exactly what the
//! host answered as JSON. The same tests run against real Spin and against the
//! dev host, so any difference in what this component reports is a
//! difference in host behaviour.
//!
//! Every JSON answer carries `"component"`, the component variable `name`,
//! so a test can tell which component (and hence which route) served it.

use serde_json::{json, Map, Value};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value;
use spin_sdk::variables;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

#[http_component]
async fn handle(request: Request) -> Response {
    let reply = Reply::new();
    let path = request.path().to_owned();
    let query = Query::parse(request.query());

    if let Some(op) = path.strip_prefix("/kv/spin/") {
        reply.outcome(spin_kv(op, &query, request.body()))
    } else if let Some(op) = path.strip_prefix("/kv/wasi/") {
        reply.outcome(wasi_kv(op, &query, request.body()))
    } else if let Some(name) = path.strip_prefix("/var/") {
        reply.outcome(variable(&percent_decode(name, false)))
    } else if path == "/outbound" {
        outbound(&reply, &query).await
    } else if let Some(rest) = path.strip_prefix("/chain/") {
        chain(&reply, rest, request.query()).await
    } else if path == "/clock" {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        reply.json(200, json!({ "now_ms": now.as_millis() as u64 }))
    } else if path == "/log" {
        println!("conformance stdout line");
        eprintln!("conformance stderr line");
        reply.json(200, json!({ "ok": true }))
    } else if path == "/trap" {
        panic!("trap requested");
    } else {
        echo(&reply, &request)
    }
}

// ---------------------------------------------------------------------------
// Responses

/// Builds JSON responses stamped with this component's identity.
struct Reply {
    component: Value,
}

impl Reply {
    fn new() -> Reply {
        Reply {
            component: variables::get("name").map_or(Value::Null, Value::String),
        }
    }

    /// `fields` (a JSON object) plus `"component"`, with the given status.
    fn json(&self, status: u16, fields: Value) -> Response {
        let mut object = Map::new();
        object.insert("component".into(), self.component.clone());
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Value::Object(object).to_string())
            .build()
    }

    fn outcome(&self, outcome: Outcome) -> Response {
        match outcome {
            Ok(fields) => self.json(200, Value::Object(fields)),
            Err(Failure::Host { error, message }) => {
                self.json(409, json!({ "error": error, "message": message }))
            }
            Err(Failure::BadRequest(message)) => {
                self.json(400, json!({ "error": "bad-request", "message": message }))
            }
            Err(Failure::UnknownOp(op)) => self.json(
                404,
                json!({ "error": "unknown-op", "message": format!("no such operation: {op}") }),
            ),
        }
    }
}

/// The fields of a 200 answer, or why there is none.
type Outcome = Result<Map<String, Value>, Failure>;

enum Failure {
    /// The host answered an error: 409 with its variant and message.
    Host {
        error: &'static str,
        message: String,
    },
    /// The test's request was malformed (missing `key`, bad `delta`, ...).
    BadRequest(String),
    UnknownOp(String),
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure::BadRequest(message.into())
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `"value"` (lossy UTF-8) and `"hex"` for a possibly absent byte value.
fn byte_fields(value: Option<&[u8]>) -> Map<String, Value> {
    let (text, hex) = byte_pair(value);
    fields(json!({ "value": text, "hex": hex }))
}

fn byte_pair(value: Option<&[u8]>) -> (Value, Value) {
    match value {
        Some(bytes) => (
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
            Value::String(hex(bytes)),
        ),
        None => (Value::Null, Value::Null),
    }
}

fn lossy(value: Option<&[u8]>) -> Value {
    byte_pair(value).0
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn ok_value(value: Value) -> Outcome {
    Ok(fields(json!({ "value": value })))
}

fn sorted(mut keys: Vec<String>) -> Value {
    keys.sort();
    json!(keys)
}

// ---------------------------------------------------------------------------
// Query parameters

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(name, true), percent_decode(value, true))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn store(&self) -> &str {
        self.get("store").unwrap_or("default")
    }

    fn key(&self) -> Result<&str, Failure> {
        self.get("key")
            .ok_or_else(|| bad_request("missing query parameter `key`"))
    }

    /// `keys`, comma-separated; absent or empty means no keys.
    fn keys(&self) -> Vec<String> {
        match self.get("keys") {
            None | Some("") => Vec::new(),
            Some(keys) => keys.split(',').map(str::to_owned).collect(),
        }
    }

    /// `delta`, 1 when absent.
    fn delta(&self) -> Result<i64, Failure> {
        match self.get("delta") {
            None => Ok(1),
            Some(delta) => delta
                .parse()
                .map_err(|_| bad_request(format!("`delta` is not an i64: {delta}"))),
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in
/// query strings); malformed escapes are kept as they are.
fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' && i + 2 < bytes.len() {
            let high = (bytes[i + 1] as char).to_digit(16);
            let low = (bytes[i + 2] as char).to_digit(16);
            if let (Some(high), Some(low)) = (high, low) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && byte == b'+' {
            b' '
        } else {
            byte
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// fermyon:spin/key-value@2.0.0

fn spin_error(error: key_value::Error) -> Failure {
    let (error, message) = match error {
        key_value::Error::StoreTableFull => ("store-table-full", String::new()),
        key_value::Error::NoSuchStore => ("no-such-store", String::new()),
        key_value::Error::AccessDenied => ("access-denied", String::new()),
        key_value::Error::Other(message) => ("other", message),
    };
    Failure::Host { error, message }
}

fn spin_kv(op: &str, query: &Query, body: &[u8]) -> Outcome {
    // Validate the request before touching the host, so a malformed request
    // never depends on whether the store opens.
    let key = match op {
        "get" | "set" | "delete" | "exists" => query.key()?,
        "keys" => "",
        _ => return Err(Failure::UnknownOp(op.to_owned())),
    };
    let store = key_value::Store::open(query.store()).map_err(spin_error)?;
    match op {
        "get" => Ok(byte_fields(store.get(key).map_err(spin_error)?.as_deref())),
        "set" => {
            store.set(key, body).map_err(spin_error)?;
            ok_value(Value::Null)
        }
        "delete" => {
            store.delete(key).map_err(spin_error)?;
            ok_value(Value::Null)
        }
        "exists" => ok_value(json!(store.exists(key).map_err(spin_error)?)),
        _ => ok_value(sorted(store.get_keys().map_err(spin_error)?)),
    }
}

// ---------------------------------------------------------------------------
// wasi:keyvalue (2024-10-17)

fn wasi_error(error: store::Error) -> Failure {
    let (error, message) = match error {
        store::Error::NoSuchStore => ("no-such-store", String::new()),
        store::Error::AccessDenied => ("access-denied", String::new()),
        store::Error::Other(message) => ("other", message),
    };
    Failure::Host { error, message }
}

fn wasi_kv(op: &str, query: &Query, body: &[u8]) -> Outcome {
    // Validate the request before touching the host.
    let key = match op {
        "get" | "set" | "delete" | "exists" | "increment" | "cas" | "cas-race" => query.key()?,
        "keys" | "get-many" | "set-many" | "delete-many" => "",
        _ => return Err(Failure::UnknownOp(op.to_owned())),
    };
    let delta = if op == "increment" { query.delta()? } else { 0 };
    let entries = if op == "set-many" {
        set_many_entries(body)?
    } else {
        Vec::new()
    };

    let bucket = store::open(query.store()).map_err(wasi_error)?;
    match op {
        "get" => Ok(byte_fields(bucket.get(key).map_err(wasi_error)?.as_deref())),
        "set" => {
            bucket.set(key, body).map_err(wasi_error)?;
            ok_value(Value::Null)
        }
        "delete" => {
            bucket.delete(key).map_err(wasi_error)?;
            ok_value(Value::Null)
        }
        "exists" => ok_value(json!(bucket.exists(key).map_err(wasi_error)?)),
        "keys" => {
            let response = bucket.list_keys(query.get("cursor")).map_err(wasi_error)?;
            Ok(fields(json!({
                "value": sorted(response.keys),
                "cursor": response.cursor,
            })))
        }
        "increment" => ok_value(json!(
            atomics::increment(&bucket, key, delta).map_err(wasi_error)?
        )),
        "get-many" => {
            let found = batch::get_many(&bucket, &query.keys()).map_err(wasi_error)?;
            let rows: Vec<Value> = found
                .iter()
                .map(|(key, value)| {
                    let (text, hex) = byte_pair(value.as_deref());
                    json!([key, text, hex])
                })
                .collect();
            ok_value(Value::Array(rows))
        }
        "set-many" => {
            batch::set_many(&bucket, &entries).map_err(wasi_error)?;
            ok_value(Value::Null)
        }
        "delete-many" => {
            batch::delete_many(&bucket, &query.keys()).map_err(wasi_error)?;
            ok_value(Value::Null)
        }
        _ => compare_and_swap(&bucket, key, body, op == "cas-race"),
    }
}

/// The body of `set-many`: a JSON object of string values.
fn set_many_entries(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("body is not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key, value.into_bytes())),
            other => Err(bad_request(format!(
                "value of {key} is not a string: {other}"
            ))),
        })
        .collect()
}

/// `Cas::new`, `current`, (for `race`, an intervening plain `set`), `swap`.
fn compare_and_swap(bucket: &store::Bucket, key: &str, body: &[u8], race: bool) -> Outcome {
    let cas = atomics::Cas::new(bucket, key).map_err(wasi_error)?;
    let current = cas.current().map_err(wasi_error)?;
    if race {
        bucket.set(key, b"intruder").map_err(wasi_error)?;
    }
    let mut result = fields(json!({ "current": lossy(current.as_deref()) }));
    match atomics::swap(cas, body) {
        Ok(()) => {
            result.insert("swapped".into(), json!(true));
        }
        Err(atomics::CasError::CasFailed(retry)) => {
            let retry_current = retry.current().map_err(wasi_error)?;
            result.insert("swapped".into(), json!(false));
            result.insert("retry_current".into(), lossy(retry_current.as_deref()));
        }
        Err(atomics::CasError::StoreError(error)) => return Err(wasi_error(error)),
    }
    Ok(result)
}

// ---------------------------------------------------------------------------
// Variables

fn variable(name: &str) -> Outcome {
    match variables::get(name) {
        Ok(value) => ok_value(Value::String(value)),
        Err(error) => {
            let (error, message) = match error {
                variables::Error::InvalidName(message) => ("invalid-name", message),
                variables::Error::Undefined(message) => ("undefined", message),
                variables::Error::Provider(message) => ("provider", message),
                variables::Error::Other(message) => ("other", message),
            };
            Err(Failure::Host { error, message })
        }
    }
}

// ---------------------------------------------------------------------------
// Outbound HTTP and service chaining

async fn get(url: String) -> Result<Response, spin_sdk::http::SendError> {
    spin_sdk::http::send(Request::get(url).build()).await
}

async fn outbound(reply: &Reply, query: &Query) -> Response {
    let Some(url) = query.get("url") else {
        return reply.json(
            400,
            json!({ "error": "bad-request", "message": "missing query parameter `url`" }),
        );
    };
    match get(url.to_owned()).await {
        Ok(response) => reply.json(
            200,
            json!({
                "status": *response.status(),
                "body": String::from_utf8_lossy(response.body()),
            }),
        ),
        Err(error) => reply.json(502, json!({ "error": format!("{error:?}") })),
    }
}

/// `rest` is `<component>/<path…>`; the answer is the chained response's
/// status and body, unchanged.
async fn chain(reply: &Reply, rest: &str, query: &str) -> Response {
    let (component, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut url = format!("http://{component}.spin.internal/{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    match get(url).await {
        Ok(response) => {
            let mut builder = Response::builder();
            builder.status(*response.status());
            if let Some(content_type) = response.header("content-type") {
                builder.header("content-type", content_type.as_str().unwrap_or_default());
            }
            builder.body(response.into_body()).build()
        }
        Err(error) => reply.json(502, json!({ "error": format!("{error:?}") })),
    }
}

// ---------------------------------------------------------------------------
// Echo

fn echo(reply: &Reply, request: &Request) -> Response {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let name = name.to_ascii_lowercase();
        if !(name.starts_with("spin-") || name == "host") {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // A repeated header reads as its values joined, as HTTP allows.
        let joined = match headers.get(&name) {
            Some(Value::String(previous)) => format!("{previous}, {value}"),
            _ => value,
        };
        headers.insert(name, Value::String(joined));
    }
    reply.json(
        200,
        json!({
            "method": request.method().to_string(),
            "path": request.path(),
            "query": request.query(),
            "body_len": request.body().len(),
            "headers": headers,
        }),
    )
}
