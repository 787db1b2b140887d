//! `devhost up` as a user runs it: flags like `spin up`, start-up errors that
//! name the problem, and serving the repository's app on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn devhost() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devhost"));
    // At run time: clones sharing the Cargo target folder reuse each
    // other's test binaries, whose compile-time path names another clone.
    let devhost_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_owned(),
        Into::into,
    );
    command.current_dir(devhost_dir.join(".."));
    command
}

#[test]
fn a_missing_required_variable_fails_start_up_naming_it() {
    let output = devhost()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--from",
            "tests/conformance/spin.toml",
        ])
        .env_remove("SPIN_VARIABLE_REQUIRED_THING")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("required_thing"), "{stderr}");
    assert!(stderr.contains("SPIN_VARIABLE_REQUIRED_THING"), "{stderr}");
}

#[test]
fn unknown_flags_print_the_usage() {
    let output = devhost().args(["up", "--port", "3000"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown argument \"--port\"") && stderr.contains("usage: devhost up"),
        "{stderr}"
    );
}

#[test]
fn up_serves_the_apps_health_on_loopback() {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/admin.wasm");
    assert!(
        wasm.exists(),
        "build the components first: scripts/build-wasm.sh"
    );
    let scratch = tempfile_dir();
    std::fs::write(
        scratch.join("rc.toml"),
        "[key_value_store.default]\ntype = \"spin\"\n",
    )
    .unwrap();
    let mut child = devhost()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--from",
            "spin.toml",
            "--runtime-config-file",
        ])
        .arg(scratch.join("rc.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("devhost printed its address").unwrap();
        if let Some(addr) = line.strip_prefix("devhost: serving http://") {
            break addr.to_owned();
        }
    };
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"reachable\""), "{response}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("devhost-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
