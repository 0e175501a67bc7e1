//! tandem, the daemon: when and how reliably leads move. Platforms' wire formats live in the
//! `tandem-connectors` crate; this crate knows config, durability, scheduling and lifecycle.
//!
//! - [`config`]: the TOML file, secrets, validation with precise errors.
//! - [`mapping`]: field templates (flow `fields`, webhook `fields`).
//! - [`identity`]: email/phone normalisation and the person key.
//! - [`store`]: the durable state (leads, people, outbox, dead letters) behind the `Store` trait.
//! - [`intake`]: the HTTP server: webhooks, health, metrics, admin API.
//! - [`engine`]: delivery workers: claim, batch, rate-limit, call, retry, dead-letter.
//! - [`outcomes`]: the closed loop: deal milestones, write-back plans.
//! - [`daemon`]: wiring and lifecycle (signals, reload, sd-notify).
//! - [`cli`]: the command line.

pub mod attribution;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod identity;
pub mod intake;
pub mod mapping;
pub mod outcomes;
pub mod store;
