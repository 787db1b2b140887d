//! The end-to-end suite: the real `.wasm` components on the dev host, spoken
//! to over HTTP. One test binary with a module per area, because each binary
//! links wasmtime: sixteen binaries spent more time linking than testing.
//! Run one area with `cargo test --release -p e2e --test e2e -- <module>::`.

mod bots;
mod bounds;
mod channels;
mod config;
mod conformance;
mod console;
mod contract;
mod conversations;
mod credentials;
mod facebook_pages;
mod fuel;
mod health;
mod manifest;
mod operations;
mod outbound;
mod provider_requests;
mod recovery;
mod simulators;
mod templates;
mod twilio_sms;
