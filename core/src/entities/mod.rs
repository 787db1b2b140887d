//! The organisation's configuration and contacts as stored: plain types,
//! their stored spellings and the rules that are theirs alone.
//!
//! The handlers that create and change them (`crate::config`,
//! `crate::templates`, the outbound API) and the code that acts on them
//! (routing, ingest, outbound) both depend on these types, never on each
//! other, so the modules form no cycle.

pub mod activity;
pub mod agent;
pub mod contact;
pub mod outbound_config;
pub mod queue;
pub mod workstream;
