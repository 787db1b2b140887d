//! Shared helpers for the end-to-end tests.
//!
//! The tests run the release `.wasm` files that `scripts/build-wasm.sh`
//! builds once per test run (`scripts/test.sh` calls it first); they are
//! loaded into the dev host in-process, or served on a loopback port when a
//! test needs real HTTP.

pub mod api;
pub mod channels;
pub mod desk;
pub mod outbound;
pub mod recovery;
pub mod sim;
pub mod whatsapp;

use bytes::Bytes;
use devhost::{App, Handled, Options};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The clone the tests run in. Read at run time: clones share one Cargo
/// target folder (scripts/env.sh), and a library built in another clone
/// with identical sources is reused as it is, with that clone's path baked
/// in at compile time; `cargo test` sets the variable for the run.
pub fn repo_root() -> PathBuf {
    let tests_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    tests_dir
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// A release component, with a hint when it has not been built.
pub fn wasm(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-wasm.sh (scripts/test.sh does it for you)",
        path.display()
    );
    path
}

/// Options for a manifest, isolated from the process environment.
pub fn options(manifest: impl Into<PathBuf>) -> Options {
    let mut options = Options::new(manifest);
    options.environment = Some(HashMap::new());
    options
}

/// A scratch folder holding a runtime config and, where a test needs one, a
/// manifest of its own; removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    /// A runtime config file giving every store label the same backend kind.
    pub fn runtime_config(&self, backend: &Backend, labels: &[&str]) -> PathBuf {
        let mut text = String::new();
        for (i, label) in labels.iter().enumerate() {
            text.push_str(&format!("[key_value_store.{label}]\n"));
            match backend {
                Backend::Memory => text.push_str("type = \"spin\"\n"),
                Backend::SqliteFile => {
                    text.push_str(&format!("type = \"spin\"\npath = \"data/{label}.db\"\n"))
                }
                Backend::Redis(url) => {
                    // One Redis database per label, as separate Spin stores would be.
                    text.push_str(&format!("type = \"redis\"\nurl = \"{url}/{}\"\n", i + 1))
                }
            }
        }
        self.write("runtime-config.toml", &text)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    SqliteFile,
    Redis(String),
}

/// The Redis server `scripts/test.sh` started, or `None` with the reason
/// printed, so a machine without Redis still runs every other test.
pub fn redis_url() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED Redis case: SWITCHBOARD_TEST_REDIS_URL is not set (scripts/test.sh sets it when redis-server starts)");
            None
        }
    }
}

pub fn get(path: &str) -> http::Request<Bytes> {
    request("GET", path, Bytes::new())
}

pub fn request(method: &str, path: &str, body: impl Into<Bytes>) -> http::Request<Bytes> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost:3000")
        .body(body.into())
        .expect("valid request")
}

pub async fn send(app: &App, request: http::Request<Bytes>) -> Handled {
    app.send(request)
        .await
        .expect("the dev host handles the request")
}

/// Serves the app on a loopback port for tests that need real HTTP.
pub async fn serve(app: &App) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let app = app.clone();
    tokio::spawn(async move { app.serve(listener).await });
    addr
}

/// `GET path` over real HTTP with the given Host header.
pub async fn http_get(addr: std::net::SocketAddr, path: &str, host: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || http_exchange(addr, &head, b""))
        .await
        .expect("the HTTP exchange ran")
}

/// A raw HTTP/1.1 exchange (`Connection: close`), returning status and body.
pub fn http_exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the dev host");
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before reading everything; ignore a reset.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}
