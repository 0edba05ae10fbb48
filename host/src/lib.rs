//! # kinesis-ship
//!
//! The product host of kinesis-output: a wasmtime embedding of the component and the
//! `kinesis-ship` command line.
//!
//! ## Layout
//! - [`engine`]: the engine (with wasmtime's code cache when asked), the linker, where the
//!   components are found.
//! - [`sink`]: the `sink` world: instances, the egress policy, the HTTP transport (the network,
//!   or an embedder's [`sink::Transport`]), memory limits, what the service stored (for trap
//!   recovery), and the map from the WIT types to the core's.
//! - [`proxy`]: the `proxy` world, one instance per request.
//! - [`process`]: `credential_process` commands, run for the component.
//! - [`recovery`]: after a trap, which records the service already stored.
//! - [`memory`]: what a door remembers of the chunks and bodies it has not finished (the core's
//!   ledger), on disk with a state folder.
//! - [`transport`]: the host's own HTTP client, for extra trusted CAs and proxies;
//!   [`network`]: `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
//! - [`listener_auth`]: who may send to `serve`, its TLS, and the refusal to listen beyond
//!   loopback without authentication.
//! - [`metrics`]: what `serve` counts, in the Prometheus text format; [`log`]: text or JSON
//!   log lines.
//! - [`setup`]: what a host derives from a configuration: the file, the settings read once
//!   natively, the component's environment, folders and egress policy.
//! - [`ship`], [`serve`], [`envfile`]: the three commands; [`cli`]: the command line.
//! - `faults`: fault injection for tests, compiled only with the `fault-injection` feature.
//!
//! ## Design decisions
//! - **The core decides, the host carries.** Line rules, event times, codes and the report come
//!   from the core's front-end kit (`kinesis_output::front`), so `kinesis-ship` says what every
//!   other door says.
//! - **The configuration is read natively once** (the same code the component runs), for the
//!   buffer, the egress policy and trap recovery; the component reads it again inside its
//!   sandbox.
//! - **Nothing of the test harness ships.** Fakes plug in through [`sink::Transport`] from the
//!   harness crate; the trap switch exists only in `fault-injection` builds.
#![forbid(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod envfile;
mod faults;
pub mod listener_auth;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod process;
pub mod proxy;
pub mod recovery;
pub mod room;
pub mod serve;
pub mod setup;
pub mod ship;
pub mod sink;
pub mod transport;
