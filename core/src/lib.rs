//! Switchboard's functional core.
//!
//! Everything the product does lives here, written against small ports
//! ([`ports`]) instead of a particular host. The Wasm components bind the ports
//! to `spin-sdk`; unit tests and benchmarks bind them to the in-memory
//! implementations in [`memory`]. Keeping the core host-agnostic is what lets
//! the same handler run natively as the baseline the Wasm build is measured
//! against.

pub mod admin;
pub mod api;
pub mod auth;
pub mod channel;
pub mod config;
pub mod conversations;
pub mod encoding;
pub mod entities;
pub mod error;
pub mod health;
pub mod input;
pub mod lease;
pub mod locale;
pub mod memory;
pub mod message;
pub mod observe;
pub mod outbound;
pub mod phone;
pub mod ports;
pub mod providers;
pub mod store;
pub mod template_text;
pub mod templates;
pub mod time;
pub mod webhooks;

/// The product version reported by `/health`, taken from the workspace.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
