//! `bench-health`: requests/s and latency of `GET /health` through the dev
//! host over loopback with concurrent keep-alive clients, beside the same
//! handler (`switchboard_core::admin::handle`, in-memory store) served
//! natively by the same kind of hyper server, and the ratio of the two.
//!
//! Usage: `cargo run --release -p bench --bin bench-health -- [--seconds N]
//! [--connections N] [--redis URL]` (after scripts/build-wasm.sh). With
//! `--redis` the Wasm side uses a Redis store; the native side stays in
//! memory, so the ratio then includes Redis round trips.

use bench_common as common;

use anyhow::Result;
use bytes::Bytes;
use common::{load, Settings};
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_core::memory::MemoryPorts;

#[tokio::main]
async fn main() -> Result<()> {
    let settings = common::settings()?;
    let (_app, wasm_addr) = common::dev_host("bench-health", &settings, &[]).await?;
    let native_addr = serve_native().await?;

    let store = settings.store();
    println!(
        "GET /health, {} keep-alive connections, {} s each, {} cores",
        settings.connections,
        settings.seconds,
        common::cores()
    );
    // Warm both up (compilation caches, connection setup) before measuring.
    health(wasm_addr, &settings, Duration::from_millis(500)).await?;
    health(native_addr, &settings, Duration::from_millis(500)).await?;
    let duration = Duration::from_secs(settings.seconds);
    let wasm = health(wasm_addr, &settings, duration).await?;
    wasm.print(&format!("wasm on devhost ({store} store)"));
    let native = health(native_addr, &settings, duration).await?;
    native.print("native core (in-memory store)");
    common::print_ratio(&wasm, &native);
    Ok(())
}

/// `GET /health` back to back; every response must be a 200.
async fn health(
    addr: SocketAddr,
    settings: &Settings,
    duration: Duration,
) -> Result<common::Outcome> {
    load(addr, settings.connections, duration, || {
        Ok(hyper::Request::get("/health").body(Full::<Bytes>::default())?)
    })
    .await
}

/// The admin handler on in-memory ports, behind the same hyper server kind.
async fn serve_native() -> Result<SocketAddr> {
    let ports = MemoryPorts::default();
    // `/health` never awaits; the core's ports are not `Send`.
    common::serve_native(move |request| {
        switchboard_core::memory::block_on(switchboard_core::admin::handle(
            &request,
            &ports.ports(),
        ))
    })
    .await
}
