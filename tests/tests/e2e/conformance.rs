//! The dev host's conformance suite: each Spin behaviour the app relies on,
//! pinned with an accepted and a refused case, through the real
//! `conformance_guest.wasm` (see tests/conformance/spin.toml).

use bytes::Bytes;
use devhost::{App, Options};
use e2e::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn manifest() -> std::path::PathBuf {
    wasm("conformance_guest");
    repo_root().join("tests/conformance/spin.toml")
}

/// The conformance app on the given backend; `required_thing` is provided
/// (a missing required variable is its own test).
fn conformance_options(backend: &Backend, scratch: &Scratch) -> Options {
    let mut options = options(manifest());
    options.runtime_config = Some(scratch.runtime_config(backend, &["default", "other"]));
    options
        .variables
        .insert("required_thing".into(), "provided".into());
    options
}

async fn app_with(backend: &Backend, scratch: &Scratch, tweak: impl FnOnce(&mut Options)) -> App {
    let mut options = conformance_options(backend, scratch);
    tweak(&mut options);
    App::load(options).await.expect("the conformance app loads")
}

async fn app(scratch: &Scratch) -> App {
    app_with(&Backend::Memory, scratch, |_| {}).await
}

async fn json_of(app: &App, request: http::Request<Bytes>) -> (u16, Value) {
    let handled = send(app, request).await;
    (handled.status(), handled.json())
}

fn header<'a>(echo: &'a Value, name: &str) -> &'a str {
    echo["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no header {name} in {echo}"))
}

// ---- routing -------------------------------------------------------------

#[tokio::test]
async fn the_most_specific_route_wins() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    for (path, component) in [
        ("/exact", "probe"),
        ("/exact/", "probe"),
        ("/users/1/books/2", "sealed"),
        ("/users/1/books/2/pages", "backend"),
        ("/users/1", "backend"),
        ("/sealed/x/y", "sealed"),
        ("/anything/else", "probe"),
        ("/", "probe"),
    ] {
        let (status, echo) = json_of(&app, get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(echo["component"], component, "{path}: {echo}");
    }
}

#[tokio::test]
async fn a_path_no_route_matches_is_a_bare_404() {
    let scratch = Scratch::new();
    let manifest = scratch.write(
        "spin.toml",
        &format!(
            r#"spin_manifest_version = 2
[application]
name = "narrow"
[[trigger.http]]
route = "/only/:id"
component = "one"
[component.one]
source = "{}"
[component.one.variables]
name = "one"
"#,
            wasm("conformance_guest").display()
        ),
    );
    let app = App::load(options(manifest)).await.unwrap();
    assert_eq!(send(&app, get("/only/7")).await.status(), 200);
    for path in ["/only", "/only/7/8", "/Only/7", "/other"] {
        let handled = send(&app, get(path)).await;
        assert_eq!(handled.status(), 404, "{path}");
        assert!(handled.response.body().is_empty());
    }
}

#[tokio::test]
async fn spin_headers_for_a_wildcard_route() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let (_, echo) = json_of(&app, get("/users/42/shelf/a/?sort=asc")).await;
    assert_eq!(echo["component"], "backend");
    assert_eq!(
        header(&echo, "spin-full-url"),
        "http://localhost:3000/users/42/shelf/a/?sort=asc"
    );
    assert_eq!(header(&echo, "spin-path-info"), "/shelf/a/");
    assert_eq!(header(&echo, "spin-matched-route"), "/users/:user_id/...");
    assert_eq!(
        header(&echo, "spin-raw-component-route"),
        "/users/:user_id/..."
    );
    assert_eq!(header(&echo, "spin-component-route"), "/users/:user_id");
    assert_eq!(header(&echo, "spin-base-path"), "/");
    assert_eq!(header(&echo, "spin-client-addr"), "127.0.0.1:0");
    assert_eq!(header(&echo, "spin-path-match-user-id"), "42");
    assert_eq!(echo["query"], "sort=asc");
}

#[tokio::test]
async fn spin_headers_for_an_exact_route_with_named_segments() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let (_, echo) = json_of(&app, get("/users/7/books/9")).await;
    assert_eq!(header(&echo, "spin-path-match-user-id"), "7");
    assert_eq!(header(&echo, "spin-path-match-book-id"), "9");
    assert_eq!(header(&echo, "spin-path-info"), "");
    assert_eq!(
        header(&echo, "spin-matched-route"),
        "/users/:user_id/books/:book_id"
    );
    assert_eq!(
        header(&echo, "spin-component-route"),
        "/users/:user_id/books/:book_id"
    );
    // A catch-all route at the root: empty component route, full path info.
    let (_, root) = json_of(&app, get("/a/b")).await;
    assert_eq!(header(&root, "spin-component-route"), "");
    assert_eq!(header(&root, "spin-path-info"), "/a/b");
    assert!(root["headers"].get("spin-path-match-user-id").is_none());
}

#[tokio::test]
async fn the_client_address_is_the_peer_over_real_http() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let addr = serve(&app).await;
    let (status, body) = http_get(addr, "/x", "example.test").await;
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_str(&body).unwrap();
    let client = header(&echo, "spin-client-addr");
    assert!(
        client.starts_with("127.0.0.1:") && client != "127.0.0.1:0",
        "{client}"
    );
    assert_eq!(header(&echo, "spin-full-url"), "http://example.test/x");
}

#[tokio::test]
async fn spin_well_known_endpoints() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let health = send(&app, get("/.well-known/spin/health")).await;
    assert_eq!((health.status(), health.text().as_str()), (200, "OK"));
    assert_eq!(
        send(&app, get("/.well-known/spin/nope")).await.status(),
        404
    );
}

/// The guest's outbound request failed with wasi:http's `HTTP-request-denied`.
fn assert_denied((status, body): (u16, Value)) {
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("HttpRequestDenied"), "{body}");
}

// ---- service chaining ------------------------------------------------------

#[tokio::test]
async fn service_chaining_reaches_a_private_component_in_process() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let (status, echo) = json_of(&app, get("/chain/backend/hello/there?x=1")).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["component"], "backend");
    assert_eq!(header(&echo, "spin-client-addr"), "0.0.0.0:0");
    assert_eq!(header(&echo, "spin-path-info"), "/hello/there");
    assert_eq!(
        header(&echo, "spin-full-url"),
        "http://localhost/hello/there?x=1"
    );
    assert_eq!(header(&echo, "spin-matched-route"), "/...");
}

#[tokio::test]
async fn service_chaining_needs_an_allowed_host_entry() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    // probe may reach backend.spin.internal only.
    assert_denied(json_of(&app, get("/chain/sealed/x")).await);
}

// ---- outbound HTTP -----------------------------------------------------------

/// A one-route HTTP server on loopback that answers `hello from upstream`.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "hello from upstream";
                let _ = stream
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            });
        }
    });
    addr
}

/// Asks the probe component to GET `url` itself.
async fn fetch_through(app: &App, url: &str) -> (u16, Value) {
    json_of(app, get(&format!("/outbound?url={}", encoded(url)))).await
}

fn encoded(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn outbound_http_is_allowed_only_to_listed_hosts() {
    let allowed = upstream().await;
    let denied = upstream().await;
    let scratch = Scratch::new();
    // The allowed host comes from a `{{ upstream }}` template.
    let app = app_with(&Backend::Memory, &scratch, |o| {
        o.variables
            .insert("upstream".into(), format!("http://{allowed}"));
    })
    .await;
    let (status, body) = fetch_through(&app, &format!("http://{allowed}/x")).await;
    assert_eq!(
        (status, body["body"].as_str()),
        (200, Some("hello from upstream")),
        "{body}"
    );

    assert_denied(fetch_through(&app, &format!("http://{denied}/x")).await);
    // The guest saw an error, not a crash: the app still answers.
    assert_eq!(send(&app, get("/exact")).await.status(), 200);
}

#[tokio::test]
async fn an_allowed_host_entry_without_a_scheme_is_refused_at_start_up() {
    let scratch = Scratch::new();
    let mut options = conformance_options(&Backend::Memory, &scratch);
    options
        .variables
        .insert("upstream".into(), "127.0.0.1:8080".into());
    let error = App::load(options).await.err().expect("load must fail");
    let message = format!("{error:#}");
    assert!(message.contains("allowed_outbound_hosts"), "{message}");
    assert!(message.contains("does not contain a scheme"), "{message}");
    // With a scheme, the same host is accepted.
    let mut options = conformance_options(&Backend::Memory, &scratch);
    options
        .variables
        .insert("upstream".into(), "http://127.0.0.1:8080".into());
    assert!(App::load(options).await.is_ok());
}

// ---- variables ---------------------------------------------------------------

#[tokio::test]
async fn variables_resolve_explicit_then_env_then_default() {
    let scratch = Scratch::new();
    let app_default = app(&scratch).await;
    let (_, body) = json_of(&app_default, get("/var/greeting")).await;
    assert_eq!(body["value"], "hello world");
    let (_, secret) = json_of(&app_default, get("/var/secret_thing")).await;
    assert_eq!(secret["value"], "s3cret");

    let from_env = app_with(&Backend::Memory, &scratch, |o| {
        o.environment = Some(HashMap::from([(
            "SPIN_VARIABLE_GREETING".into(),
            "hej".into(),
        )]));
    })
    .await;
    assert_eq!(
        json_of(&from_env, get("/var/greeting")).await.1["value"],
        "hej world"
    );

    let explicit = app_with(&Backend::Memory, &scratch, |o| {
        o.environment = Some(HashMap::from([(
            "SPIN_VARIABLE_GREETING".into(),
            "hej".into(),
        )]));
        o.variables.insert("greeting".into(), "hola".into());
    })
    .await;
    assert_eq!(
        json_of(&explicit, get("/var/greeting")).await.1["value"],
        "hola world"
    );
}

#[tokio::test]
async fn unknown_and_invalid_variable_names_are_errors_for_the_guest() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let (status, body) = json_of(&app, get("/var/nope")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("undefined")),
        "{body}"
    );
    let (status, body) = json_of(&app, get("/var/Greeting")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invalid-name")),
        "{body}"
    );
    // An application variable the component did not map is undefined for it.
    let (status, body) = json_of(&app, get("/var/upstream")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("undefined")),
        "{body}"
    );
}

#[tokio::test]
async fn a_missing_required_variable_stops_start_up_naming_it() {
    let scratch = Scratch::new();
    let mut missing = conformance_options(&Backend::Memory, &scratch);
    missing.variables.clear();
    let error = App::load(missing).await.err().expect("load must fail");
    let message = format!("{error:#}");
    assert!(message.contains("required_thing"), "{message}");
    assert!(
        message.contains("SPIN_VARIABLE_REQUIRED_THING"),
        "{message}"
    );

    let mut from_env = conformance_options(&Backend::Memory, &scratch);
    from_env.variables.clear();
    from_env.environment = Some(HashMap::from([(
        "SPIN_VARIABLE_REQUIRED_THING".into(),
        "set".into(),
    )]));
    let app = App::load(from_env)
        .await
        .expect("the environment provides it");
    assert_eq!(
        json_of(&app, get("/var/required_thing")).await.1["value"],
        "set"
    );
}

// ---- request bodies ------------------------------------------------------------

#[tokio::test]
async fn request_bodies_over_one_mebibyte_are_refused_with_413() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let limit = devhost::DEFAULT_MAX_REQUEST_BODY;
    let at_limit = send(&app, request("POST", "/echo", vec![b'a'; limit])).await;
    assert_eq!(at_limit.status(), 200);
    assert_eq!(at_limit.json()["body_len"], limit);
    let over = send(&app, request("POST", "/echo", vec![b'a'; limit + 1])).await;
    assert_eq!(over.status(), 413);
    assert_eq!(over.json()["error"]["code"], "payload_too_large");

    // Over real HTTP: with a declared length, and chunked without one.
    let addr = serve(&app).await;
    let (declared, chunked) = tokio::task::spawn_blocking(move || {
        let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", limit + 1);
        let declared = http_exchange(addr, &head, &vec![b'a'; limit + 1]);
        let mut body = Vec::new();
        for _ in 0..(limit / 65536 + 1) {
            body.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
            body.extend_from_slice(&vec![b'b'; 65536]);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let chunked = http_exchange(
            addr,
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            &body,
        );
        (declared, chunked)
    })
    .await
    .unwrap();
    assert_eq!(declared.0, 413);
    assert_eq!(chunked.0, 413);
}

// ---- guests failing, logging, clock ----------------------------------------------

#[tokio::test]
async fn a_trapping_guest_answers_500_and_the_next_request_is_served() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let trapped = send(&app, get("/trap")).await;
    assert_eq!(trapped.status(), 500);
    assert!(trapped.response.body().is_empty());
    assert_eq!(send(&app, get("/log")).await.status(), 200);
    assert_eq!(send(&app, get("/exact")).await.status(), 200);
}

#[tokio::test]
async fn tests_can_move_the_guests_wall_clock() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let before = json_of(&app, get("/clock")).await.1["now_ms"]
        .as_i64()
        .unwrap();
    app.clock().advance(Duration::from_secs(25 * 3600));
    let after = json_of(&app, get("/clock")).await.1["now_ms"]
        .as_i64()
        .unwrap();
    let moved = after - before;
    assert!(
        (25 * 3600 * 1000..25 * 3600 * 1000 + 60_000).contains(&moved),
        "moved {moved} ms"
    );
    app.clock().reset();
    let reset = json_of(&app, get("/clock")).await.1["now_ms"]
        .as_i64()
        .unwrap();
    assert!(reset < before + 60_000);
}

// ---- key-value ---------------------------------------------------------------------

async fn kv(app: &App, path: &str) -> (u16, Value) {
    json_of(app, get(path)).await
}

async fn kv_put(app: &App, path: &str, body: &str) -> (u16, Value) {
    json_of(app, request("POST", path, body.to_owned())).await
}

/// get / set / delete / exists / keys through both interfaces, on one backend.
async fn basic_operations(backend: Backend) {
    let scratch = Scratch::new();
    let app = app_with(&backend, &scratch, |_| {}).await;
    for iface in ["spin", "wasi"] {
        let key = format!("k-{iface}");
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/get?key={key}")).await.1["value"],
            Value::Null
        );
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/exists?key={key}")).await.1["value"],
            false
        );
        assert_eq!(
            kv_put(&app, &format!("/kv/{iface}/set?key={key}"), "v1")
                .await
                .0,
            200
        );
        let (_, got) = kv(&app, &format!("/kv/{iface}/get?key={key}")).await;
        assert_eq!(
            (got["value"].as_str(), got["hex"].as_str()),
            (Some("v1"), Some("7631"))
        );
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/exists?key={key}")).await.1["value"],
            true
        );
        let keys = kv(&app, &format!("/kv/{iface}/keys")).await.1["value"].clone();
        assert!(keys.as_array().unwrap().contains(&json!(key)), "{keys}");
        // Stores are separate: the key is not in `other`.
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/get?store=other&key={key}"))
                .await
                .1["value"],
            Value::Null
        );
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/delete?key={key}")).await.0,
            200
        );
        assert_eq!(
            kv(&app, &format!("/kv/{iface}/exists?key={key}")).await.1["value"],
            false
        );
    }
    // A label the component does not list is denied, on both interfaces.
    for iface in ["spin", "wasi"] {
        let (status, body) = kv(&app, &format!("/kv/{iface}/get?store=third&key=x")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("access-denied")),
            "{body}"
        );
    }
    // wasi:keyvalue list-keys has no paging: a cursor is an error, as in Spin.
    let (status, body) = kv(&app, "/kv/wasi/keys?cursor=abc").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("other")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("cursor"));
}

/// `increment` from absent starts at 0; the stored bytes are the backend's.
async fn counters(backend: Backend, encode: fn(i64) -> &'static str) {
    let scratch = Scratch::new();
    let app = app_with(&backend, &scratch, |_| {}).await;
    assert_eq!(
        kv(&app, "/kv/wasi/increment?key=c&delta=0").await.1["value"],
        0
    );
    assert_eq!(
        kv(&app, "/kv/wasi/increment?key=c&delta=5").await.1["value"],
        5
    );
    assert_eq!(
        kv(&app, "/kv/wasi/increment?key=c&delta=-7").await.1["value"],
        -2
    );
    let (_, raw) = kv(&app, "/kv/wasi/get?key=c").await;
    assert_eq!(raw["hex"].as_str(), Some(encode(-2)), "{raw}");
    // A value that is not a counter cannot be incremented.
    kv_put(&app, "/kv/wasi/set?key=text", "hello").await;
    assert_eq!(kv(&app, "/kv/wasi/increment?key=text&delta=1").await.0, 409);
}

fn sqlite_counter(n: i64) -> &'static str {
    Box::leak(
        n.to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_boxed_str(),
    )
}

fn redis_counter(n: i64) -> &'static str {
    Box::leak(
        n.to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_boxed_str(),
    )
}

/// Compare-and-swap, including Spin's quirks per backend.
async fn compare_and_swap(backend: Backend, absent_race_detected: bool) {
    let scratch = Scratch::new();
    let app = app_with(&backend, &scratch, |_| {}).await;
    let (_, fresh) = kv_put(&app, "/kv/wasi/cas?key=a", "first").await;
    assert_eq!(
        (fresh["current"].clone(), fresh["swapped"].clone()),
        (Value::Null, json!(true)),
        "{fresh}"
    );
    let (_, again) = kv_put(&app, "/kv/wasi/cas?key=a", "second").await;
    assert_eq!(
        (again["current"].as_str(), again["swapped"].as_bool()),
        (Some("first"), Some(true))
    );
    // A change between `current` and `swap` is detected on a present key…
    let (_, raced) = kv_put(&app, "/kv/wasi/cas-race?key=a", "third").await;
    assert_eq!(raced["swapped"], false, "{raced}");
    assert_eq!(raced["retry_current"], "intruder", "{raced}");
    assert_eq!(kv(&app, "/kv/wasi/get?key=a").await.1["value"], "intruder");
    // …but on an absent key Spin's SQLite store upserts regardless.
    let (_, absent) = kv_put(&app, "/kv/wasi/cas-race?key=b", "mine").await;
    assert_eq!(absent["swapped"], json!(!absent_race_detected), "{absent}");
}

/// Batch operations: one round trip each.
async fn batches(backend: Backend, get_many_works: bool) {
    let scratch = Scratch::new();
    let app = app_with(&backend, &scratch, |_| {}).await;
    let set = send(
        &app,
        request("POST", "/kv/wasi/set-many", r#"{"x":"1","y":"2","z":"3"}"#),
    )
    .await;
    assert_eq!(set.status(), 200);
    assert_eq!(
        (set.kv.writes, set.kv.reads),
        (1, 0),
        "set-many is one write transaction"
    );
    assert_eq!(kv(&app, "/kv/wasi/get?key=y").await.1["value"], "2");
    let many = send(&app, get("/kv/wasi/get-many?keys=x,absent,z")).await;
    assert_eq!(many.kv.reads, 1);
    if get_many_works {
        let mut pairs: Vec<Value> = many.json()["value"].as_array().unwrap().clone();
        pairs.sort_by_key(|p| p[0].as_str().unwrap().to_owned());
        // Spin's SQLite store leaves absent keys out.
        assert_eq!(
            pairs,
            vec![json!(["x", "1", "31"]), json!(["z", "3", "33"])]
        );
    } else {
        // Spin's Redis store sends KEYS instead of MGET: an error, as on Spin.
        assert_eq!(many.status(), 409, "{}", many.text());
    }
    let deleted = send(&app, get("/kv/wasi/delete-many?keys=x,y")).await;
    assert_eq!((deleted.status(), deleted.kv.writes), (200, 1));
    assert_eq!(kv(&app, "/kv/wasi/exists?key=x").await.1["value"], false);
    assert_eq!(kv(&app, "/kv/wasi/exists?key=z").await.1["value"], true);
}

#[tokio::test]
async fn memory_store_operations() {
    basic_operations(Backend::Memory).await;
    counters(Backend::Memory, sqlite_counter).await;
    compare_and_swap(Backend::Memory, false).await;
    batches(Backend::Memory, true).await;
}

#[tokio::test]
async fn sqlite_file_store_operations() {
    basic_operations(Backend::SqliteFile).await;
    counters(Backend::SqliteFile, sqlite_counter).await;
    compare_and_swap(Backend::SqliteFile, false).await;
    batches(Backend::SqliteFile, true).await;
}

#[tokio::test]
async fn redis_store_operations() {
    let Some(url) = redis_url() else { return };
    basic_operations(Backend::Redis(url.clone())).await;
    counters(Backend::Redis(url.clone()), redis_counter).await;
    compare_and_swap(Backend::Redis(url.clone()), true).await;
    batches(Backend::Redis(url), false).await;
}

#[tokio::test]
async fn the_sqlite_file_uses_spins_table_layout() {
    let scratch = Scratch::new();
    let app = app_with(&Backend::SqliteFile, &scratch, |_| {}).await;
    kv_put(&app, "/kv/spin/set?key=shared", "visible").await;
    kv(&app, "/kv/wasi/increment?key=n&delta=3").await;
    // Read the file the way Spin would: table spin_key_value(store, key, value).
    let db = rusqlite::Connection::open(scratch.dir.path().join("data/default.db")).unwrap();
    let mut rows: Vec<(String, String, Vec<u8>)> = db
        .prepare("SELECT store, key, value FROM spin_key_value ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("default".into(), "n".into(), 3i64.to_le_bytes().to_vec()),
            ("default".into(), "shared".into(), b"visible".to_vec()),
        ]
    );
}

#[tokio::test]
async fn the_sqlite_file_store_persists_across_loads() {
    let scratch = Scratch::new();
    {
        let app = app_with(&Backend::SqliteFile, &scratch, |_| {}).await;
        kv_put(&app, "/kv/spin/set?key=durable", "yes").await;
    }
    let app = app_with(&Backend::SqliteFile, &scratch, |_| {}).await;
    assert_eq!(kv(&app, "/kv/wasi/get?key=durable").await.1["value"], "yes");
}

#[tokio::test]
async fn a_store_label_without_a_backend_stops_start_up() {
    let scratch = Scratch::new();
    let mut options = options(manifest());
    options
        .variables
        .insert("required_thing".into(), "x".into());
    // Only `default` is defined; the probe also lists `other`.
    options.runtime_config = Some(scratch.runtime_config(&Backend::Memory, &["default"]));
    let message = format!(
        "{:#}",
        App::load(options).await.err().expect("load must fail")
    );
    assert!(message.contains("\"other\""), "{message}");
}

#[tokio::test]
async fn key_value_traffic_is_counted_per_request() {
    let scratch = Scratch::new();
    let app = app(&scratch).await;
    let set = send(&app, request("POST", "/kv/wasi/set?key=a", "1")).await;
    assert_eq!((set.kv.reads, set.kv.writes, set.kv.listings), (0, 1, 0));
    let got = send(&app, get("/kv/spin/get?key=a")).await;
    assert_eq!((got.kv.reads, got.kv.writes, got.kv.listings), (1, 0, 0));
    let listed = send(&app, get("/kv/wasi/keys")).await;
    assert_eq!(listed.kv.listings, 1);
    let incremented = send(&app, get("/kv/wasi/increment?key=n&delta=0")).await;
    assert_eq!(
        incremented.kv.writes, 1,
        "increment is a write transaction, even by 0"
    );
    let none = send(&app, get("/exact")).await;
    assert_eq!((none.kv.reads, none.kv.writes), (0, 0));
}

#[tokio::test]
async fn two_apps_on_one_redis_share_state() {
    let Some(url) = redis_url() else { return };
    let scratch = Scratch::new();
    let a = app_with(&Backend::Redis(url.clone()), &scratch, |_| {}).await;
    let b = app_with(&Backend::Redis(url), &scratch, |_| {}).await;
    let key = format!("shared-{}", std::process::id());
    kv(&a, &format!("/kv/wasi/increment?key={key}&delta=2")).await;
    let (_, n) = kv(&b, &format!("/kv/wasi/increment?key={key}&delta=3")).await;
    assert_eq!(n["value"], 5);
}
