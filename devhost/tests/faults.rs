//! Fault injection, through the conformance guest (tests/conformance-guest),
//! whose routes each make known key-value calls or one outbound request and
//! report what the host answered: a `probe` component serving every public
//! route, and a private `backend` reached by service chaining.

use bytes::Bytes;
use devhost::{App, Fault, Handled, Options};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The repository, read at run time (see cli.rs).
fn repo() -> PathBuf {
    let devhost_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_owned(),
        Into::into,
    );
    devhost_dir.join("..")
}

/// A folder with the test app's manifest and runtime config (an in-memory
/// store), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let wasm = repo().join("target/wasm32-wasip2/release/conformance_guest.wasm");
        assert!(
            wasm.exists(),
            "build the components first: scripts/build-wasm.sh"
        );
        let dir =
            std::env::temp_dir().join(format!("devhost-faults-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = wasm.canonicalize().unwrap();
        let component = |id: &str, outbound: &str| {
            format!(
                "[component.{id}]\nsource = {source:?}\nkey_value_stores = [\"default\"]\n\
                 allowed_outbound_hosts = [{outbound}]\n[component.{id}.variables]\nname = \"{id}\"\n"
            )
        };
        std::fs::write(
            dir.join("spin.toml"),
            format!(
                "spin_manifest_version = 2\n[application]\nname = \"faults\"\n\
                 [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
                 [[trigger.http]]\nroute = {{ private = true }}\ncomponent = \"backend\"\n{}{}",
                component(
                    "probe",
                    "\"http://backend.spin.internal\", \"http://127.0.0.1:*\""
                ),
                component("backend", ""),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("rc.toml"),
            "[key_value_store.default]\ntype = \"spin\"\n",
        )
        .unwrap();
        Scratch(dir)
    }

    fn options(&self) -> Options {
        let mut options = Options::new(self.0.join("spin.toml"));
        options.runtime_config = Some(self.0.join("rc.toml"));
        options.environment = Some(Default::default());
        options
    }

    async fn app(&self) -> App {
        App::load(self.options()).await.expect("the test app loads")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn send(app: &App, method: &str, path: &str, body: &str) -> Handled {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from(body.to_owned()))
        .unwrap();
    app.send(request).await.expect("the host answers")
}

async fn set(app: &App, key: &str, value: &str) {
    let handled = send(app, "POST", &format!("/kv/spin/set?key={key}"), value).await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
}

async fn value(app: &App, key: &str) -> Value {
    let handled = send(app, "GET", &format!("/kv/spin/get?key={key}"), "").await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    handled.json()["value"].clone()
}

/// A compare-and-swap from `old` to `new`: CAS `new`, `current`, `swap`.
async fn cas(app: &App, key: &str) -> Handled {
    send(app, "POST", &format!("/kv/wasi/cas?key={key}"), "new").await
}

#[tokio::test]
async fn a_store_error_fails_its_operation_without_effect() {
    let scratch = Scratch::new("store-error");
    let app = scratch.app().await;
    set(&app, "k", "old").await;
    let clean = cas(&app, "k").await;
    assert_eq!(clean.status(), 200, "{}", clean.text());
    assert!(clean.faults_fired.is_empty());
    let steps = clean.kv.ops;
    assert_eq!(
        (steps, clean.kv.reads, clean.kv.writes),
        (3, 1, 1),
        "CAS new counts as an operation, not a read or write"
    );

    for at in 1..=steps {
        set(&app, "k", "old").await;
        app.inject(Fault::StoreError { at }).unwrap();
        let faulted = cas(&app, "k").await;
        assert_eq!(faulted.status(), 409, "step {at}: {}", faulted.text());
        let answer = faulted.json();
        assert_eq!(answer["error"], "other", "step {at}");
        assert_eq!(
            answer["message"],
            format!("injected fault: store error at key-value op {at}")
        );
        assert_eq!(faulted.faults_fired, [Fault::StoreError { at }]);
        assert_eq!(faulted.kv.ops, at, "the guest gave up at the error");
        assert_eq!(value(&app, "k").await, "old", "step {at} had no effect");
    }

    // Past the last step: nothing fires, the request runs as before.
    set(&app, "k", "old").await;
    app.inject(Fault::StoreError { at: steps + 1 }).unwrap();
    let past = cas(&app, "k").await;
    assert_eq!((past.status(), past.faults_fired.len()), (200, 0));
    assert_eq!(value(&app, "k").await, "new");

    // fermyon:spin/key-value fails the same way.
    app.inject(Fault::StoreError { at: 1 }).unwrap();
    let refused = send(&app, "POST", "/kv/spin/set?key=s", "x").await;
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json()["error"], "other");
    assert_eq!(value(&app, "s").await, Value::Null);
}

#[tokio::test]
async fn a_crash_keeps_its_operation_and_runs_nothing_after_it() {
    let scratch = Scratch::new("crash");
    let app = scratch.app().await;
    // The swap (step 3) is the only write; a crash after it keeps it.
    for (at, kept) in [(1, "old"), (2, "old"), (3, "new")] {
        set(&app, "k", "old").await;
        app.inject(Fault::Crash { at }).unwrap();
        let crashed = cas(&app, "k").await;
        assert_eq!(crashed.status(), 500, "step {at}");
        assert!(crashed.response.body().is_empty(), "the host's bare 500");
        assert_eq!(crashed.faults_fired, [Fault::Crash { at }]);
        assert_eq!(crashed.kv.ops, at, "no operation after the crash");
        assert_eq!(value(&app, "k").await, kept, "step {at}");
    }

    // With a conflicting write at step 3 the swap (4) fails and the guest
    // reads the retry (5); a crash after the write keeps the write only.
    set(&app, "r", "old").await;
    let race = send(&app, "POST", "/kv/wasi/cas-race?key=r", "new").await;
    assert_eq!(
        (race.json()["swapped"].clone(), race.kv.ops),
        (Value::Bool(false), 5)
    );
    set(&app, "r", "old").await;
    app.inject(Fault::Crash { at: 3 }).unwrap();
    let crashed = send(&app, "POST", "/kv/wasi/cas-race?key=r", "new").await;
    assert_eq!((crashed.status(), crashed.kv.ops), (500, 3));
    assert_eq!(value(&app, "r").await, "intruder");
}

#[tokio::test]
async fn faults_are_one_shot_and_can_be_disarmed() {
    let scratch = Scratch::new("one-shot");
    let app = scratch.app().await;
    app.inject(Fault::StoreError { at: 1 }).unwrap();
    assert_eq!(
        send(&app, "POST", "/kv/spin/set?key=a", "1").await.status(),
        409
    );
    let next = send(&app, "POST", "/kv/spin/set?key=a", "1").await;
    assert_eq!((next.status(), next.faults_fired.len()), (200, 0));

    // Taken by the next request even where it has no such step.
    app.inject(Fault::StoreError { at: 2 }).unwrap();
    let short = send(&app, "POST", "/kv/spin/set?key=a", "2").await;
    assert_eq!((short.status(), short.faults_fired.len()), (200, 0));
    assert_eq!(cas(&app, "a").await.status(), 200, "disarmed with it");

    app.inject(Fault::Crash { at: 1 }).unwrap();
    app.inject_into("backend", Fault::Crash { at: 1 }).unwrap();
    app.clear_faults();
    assert_eq!(
        send(&app, "POST", "/kv/spin/set?key=a", "3").await.status(),
        200
    );
    let chained = send(&app, "GET", "/chain/backend/kv/spin/set?key=a", "").await;
    assert_eq!(chained.status(), 200);

    assert!(
        app.inject(Fault::Crash { at: 0 }).is_err(),
        "steps count from 1"
    );
}

#[tokio::test]
async fn a_component_fault_waits_for_that_component_even_when_chained() {
    let scratch = Scratch::new("component");
    let app = scratch.app().await;
    app.inject_into("backend", Fault::StoreError { at: 1 })
        .unwrap();
    let probe = send(&app, "POST", "/kv/spin/set?key=a", "1").await;
    assert_eq!((probe.status(), probe.faults_fired.len()), (200, 0));

    let chained = send(&app, "GET", "/chain/backend/kv/spin/set?key=b", "").await;
    assert_eq!(chained.status(), 409, "{}", chained.text());
    assert_eq!(chained.json()["component"], "backend");
    assert_eq!(chained.faults_fired, [Fault::StoreError { at: 1 }]);
    assert_eq!(value(&app, "b").await, Value::Null);

    // An app-wide fault counts the chained request's operations too: the
    // backend dies after its write (of the chained GET's empty body), and the
    // probe relays the 500.
    app.inject(Fault::Crash { at: 1 }).unwrap();
    let crashed = send(&app, "GET", "/chain/backend/kv/spin/set?key=c", "").await;
    assert_eq!(crashed.status(), 500);
    assert_eq!(crashed.faults_fired, [Fault::Crash { at: 1 }]);
    assert_eq!(value(&app, "c").await, "");

    assert!(app.inject_into("nobody", Fault::Crash { at: 1 }).is_err());
}

/// A loopback HTTP server answering `200 ok`, counting the requests it got.
async fn provider() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    (url, received)
}

#[tokio::test]
async fn http_faults_refuse_a_request_or_drop_its_answer() {
    let scratch = Scratch::new("http");
    let app = scratch.app().await;
    let (url, received) = provider().await;
    let outbound = format!("/outbound?url={url}");

    let clean = send(&app, "GET", &outbound, "").await;
    assert_eq!(clean.json()["body"], "ok", "{}", clean.text());
    assert_eq!(received.load(Ordering::SeqCst), 1);

    app.inject(Fault::HttpError { at: 1 }).unwrap();
    let refused = send(&app, "GET", &outbound, "").await;
    assert_eq!(refused.status(), 502, "{}", refused.text());
    let error = refused.json()["error"].to_string();
    assert!(error.contains("ConnectionRefused"), "{error}");
    assert_eq!(refused.faults_fired, [Fault::HttpError { at: 1 }]);
    assert_eq!(received.load(Ordering::SeqCst), 1, "never sent");

    app.inject(Fault::HttpTimeout { at: 1 }).unwrap();
    let timed_out = send(&app, "GET", &outbound, "").await;
    assert_eq!(timed_out.status(), 502, "{}", timed_out.text());
    let error = timed_out.json()["error"].to_string();
    assert!(error.contains("ConnectionReadTimeout"), "{error}");
    assert_eq!(timed_out.faults_fired, [Fault::HttpTimeout { at: 1 }]);
    assert_eq!(received.load(Ordering::SeqCst), 2, "sent and handled");

    // Service chaining stays in the app: not an outbound request.
    app.inject(Fault::HttpError { at: 1 }).unwrap();
    let chained = send(&app, "GET", "/chain/backend/hello", "").await;
    assert_eq!((chained.status(), chained.faults_fired.len()), (200, 0));
}

/// `devhost up --fault` over real HTTP: the fault applies to every matching
/// request, each firing is reported, and the client of a crash gets a 500.
#[test]
fn cli_faults_apply_to_every_matching_request() {
    let scratch = Scratch::new("cli");
    let mut child = Command::new(env!("CARGO_BIN_EXE_devhost"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--fault",
            "crash@1:backend",
        ])
        .arg("--from")
        .arg(scratch.0.join("spin.toml"))
        .arg("--runtime-config-file")
        .arg(scratch.0.join("rc.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut start_up = Vec::new();
    let addr = loop {
        let line = lines.next().expect("devhost printed its address").unwrap();
        if let Some(addr) = line.strip_prefix("devhost: serving http://") {
            break addr.to_owned();
        }
        start_up.push(line);
    };
    let request = |method: &str, path: &str, body: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    // The guest chains a GET: the backend writes an empty value.
    let first = request("GET", "/chain/backend/kv/spin/set?key=a", "");
    let second = request("GET", "/chain/backend/kv/spin/set?key=b", "");
    let kept = request("GET", "/kv/spin/get?key=b", "");
    child.kill().unwrap();
    let _ = child.wait();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();

    assert!(
        start_up
            .iter()
            .any(|l| l == "devhost: fault crash@1:backend armed for every matching request"),
        "{start_up:?}"
    );
    for response in [&first, &second] {
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    }
    assert!(
        kept.contains(r#""value":"""#),
        "written, then crashed: {kept}"
    );
    let fired = rest
        .iter()
        .filter(|l| *l == r#"devhost: fault: crash after key-value op 1 of component "backend""#)
        .count();
    assert_eq!(fired, 2, "{rest:?}");
}

#[test]
fn a_malformed_fault_is_refused_with_the_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_devhost"))
        .args(["up", "--fault", "crash@0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("steps count from 1") && stderr.contains("--fault KIND@N[:COMPONENT]"),
        "{stderr}"
    );
}
