//! `bench-health`: requests/s and latency of `GET /health` through the dev
//! host over loopback with concurrent keep-alive clients, beside the same
//! handler (`switchboard_core::admin::handle`) served natively by the same
//! kind of hyper server, on `MemoryPorts`' store and on the dev host's own
//! backend the Wasm side uses (in-memory SQLite, or Redis with `--redis`),
//! and beside the benches' no-op component (benches/noop) on the dev host,
//! and the ratios; then the key-value calls and fuel of one health check,
//! on a dev host counting them.
//!
//! Usage: `cargo run --release -p bench --bin bench-health -- [--seconds N]
//! [--connections N] [--redis URL]` (after building the .wasm components),
//! or `scripts/bench.sh [health] [...]`.

use bench_common as common;

use anyhow::{ensure, Result};
use bytes::Bytes;
use common::{load, Settings};
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<()> {
    let settings = common::settings()?;
    let (_app, wasm_addr) = common::dev_host("bench-health", &settings, &[], false).await?;
    let natives = common::native_baselines(&settings, &[]).await?;
    let noop_addr = common::noop_dev_host().await?;

    println!(
        "GET /health, {} keep-alive connections, {} s each, {} cores",
        settings.connections,
        settings.seconds,
        common::cores()
    );
    let duration = Duration::from_secs(settings.seconds);
    // Warm each side up (compilation caches, connection setup) before
    // measuring it.
    health(wasm_addr, &settings, Duration::from_millis(500)).await?;
    let wasm = health(wasm_addr, &settings, duration).await?;
    wasm.print(&format!("wasm on devhost ({} store)", settings.store()));
    health(noop_addr, &settings, Duration::from_millis(500)).await?;
    let noop = health(noop_addr, &settings, duration).await?;
    noop.print("no-op component on devhost");
    let mut outcomes = Vec::new();
    for (label, addr) in &natives {
        health(*addr, &settings, Duration::from_millis(500)).await?;
        let native = health(*addr, &settings, duration).await?;
        native.print(&format!("native core ({label})"));
        outcomes.push((label, native));
    }
    for (label, native) in &outcomes {
        common::print_ratio(&format!("ratio wasm/native ({label})"), &wasm, native);
    }
    common::print_noop_ratio("ratio wasm/no-op", &wasm, &noop);

    let (probe, _) = common::dev_host("bench-health-fuel", &settings, &[], true).await?;
    let handled = probe
        .send(
            http::Request::get("/health")
                .header("host", "bench")
                .body(Bytes::new())?,
        )
        .await?;
    ensure!(handled.status() == 200, "GET /health: {}", handled.text());
    let kv = handled.kv;
    println!(
        "per health check: {} key-value reads, {} writes, {} listings, {} fuel",
        kv.reads,
        kv.writes,
        kv.listings,
        common::thousands(handled.fuel.unwrap_or_default() as f64)
    );
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
