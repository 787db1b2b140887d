//! `devhost`: a local runner for this repository's `spin.toml`, on wasmtime.
//!
//! Spin itself cannot be installed from the registries this project reaches,
//! so the dev host runs the same manifest and the same `.wasm` files with the
//! behaviour of Spin the app relies on, and nothing more: manifest v2, Spin's
//! routing and `spin-*` headers, key-value stores (in-memory and file SQLite,
//! Redis) with Spin's encodings, variables, `allowed_outbound_hosts` and
//! service chaining. It is both the `devhost up` server and a library that
//! tests drive in-process ([`App::send`]), with a guest wall clock tests can
//! move ([`App::clock`]), per-request key-value counts ([`Handled::kv`]) and
//! injected faults ([`App::inject`], see [`Fault`]).

mod app;
mod client;
mod compiled;
mod faults;
mod guest_log;
mod host;
mod kv;
mod manifest;
mod outbound;
mod routes;
mod server;
mod variables;

pub use app::{GuestClock, Handled, Options, DEFAULT_MAX_REQUEST_BODY};
pub use faults::{Fault, FaultSpec};
pub use host::KvCounts;
/// The key-value backends, for a native baseline on the same store as the
/// guests' (the benchmarks).
pub use kv::{Backend, StoreConfig};

use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;

/// A loaded application. Cheap to clone; components are compiled once.
#[derive(Clone)]
pub struct App {
    inner: Arc<app::AppInner>,
}

impl App {
    /// Loads the manifest, opens the stores, resolves variables and compiles
    /// (or reuses) the components. Fails, naming the problem, on anything
    /// Spin would refuse at start-up.
    pub async fn load(options: Options) -> Result<App> {
        Ok(App {
            inner: Arc::new(app::AppInner::load(&options).await?),
        })
    }

    /// The wall clock the guests see.
    pub fn clock(&self) -> &GuestClock {
        self.inner.clock()
    }

    /// Sends one request through the app in-process, as if from
    /// `127.0.0.1:0`, and reads the response to the end.
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<Handled> {
        let (parts, body) = request.into_parts();
        if body.len() > self.inner.max_request_body {
            return Ok(Handled {
                response: server::too_large(self.inner.max_request_body)
                    .map(|_| Bytes::from(server::too_large_body(self.inner.max_request_body))),
                kv: KvCounts::default(),
                faults_fired: Vec::new(),
                fuel: self.inner.count_fuel.then_some(0),
            });
        }
        let dispatched = self.inner.dispatch(parts, body, "127.0.0.1:0").await?;
        app::finish(dispatched, self.inner.count_fuel).await
    }

    /// Arms `fault` for the next request that reaches a component, whichever
    /// it is, counting its steps across its service-chained sub-requests. It
    /// fires at most once; if that request has fewer steps, it is disarmed
    /// unfired ([`Handled::faults_fired`] tells). Faults may be combined.
    pub fn inject(&self, fault: Fault) -> Result<()> {
        self.inner.arm(
            FaultSpec {
                fault,
                component: None,
            },
            false,
        )
    }

    /// Arms `fault` for the next request the component `component` (its id
    /// in spin.toml) handles, counting from that request's start even when it
    /// is service-chained; like [`App::inject`] otherwise.
    pub fn inject_into(&self, component: &str, fault: Fault) -> Result<()> {
        self.inner.arm(
            FaultSpec {
                fault,
                component: Some(component.to_owned()),
            },
            false,
        )
    }

    /// Disarms every fault not yet taken by a request, `Options::faults` too.
    pub fn clear_faults(&self) {
        self.inner.clear_faults();
    }

    /// Serves HTTP/1.1 on the listener until the process ends.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> Result<()> {
        server::serve(self.inner.clone(), listener).await
    }
}
