//! # kinesis-output
//!
//! A WebAssembly component that ships log records to Amazon Kinesis Data Streams and Amazon Data
//! Firehose. A host opens a sink from a JSON configuration (the names of Fluentd's
//! aws-fluent-plugin-kinesis) and hands it chunks of events; the sink formats each record, picks
//! its partition key, packs the records into `PutRecords` (Firehose: `PutRecordBatch`) requests,
//! signs them with SigV4 and sends them through `wasi:http`, retrying only the records that
//! failed. The two services share one delivery engine ([`kinesis::Service`] holds what differs). Every event gets exactly one outcome: delivered, failed or
//! rejected.
//!
//! ## Layout
//! The stages, each a folder, in the order a record meets them; each imports only the ones
//! before it:
//! - [`platform`]: the one boundary (environment, clocks, randomness, HTTP) the core reaches the
//!   world through.
//! - [`kinesis`]: the service: limits, regions, the wire format, KPL aggregation, and the codes
//!   of every outcome with their retry classification.
//! - [`shaping`]: from an event to the bytes Kinesis stores: formats, inject, data_key,
//!   compression, partition keys, stream names.
//! - [`auth`]: credentials, fetching and refreshing them, SigV4 signing.
//! - [`config`]: reading and validating every setting once per open, credential sources
//!   included.
//! - [`delivery`]: the sink: batching, retry rounds, backoff, deadlines, outcomes.
//! - [`front`]: what every door shares: line rules, body framing, event times, replies, the
//!   report.
//! - `component` (wasm32 only): the WASI glue, the only module that uses generated bindings.
//!
//! ## Design decisions
//! - **Sans-IO core.** Nothing in the core reads a clock, a random source, the environment or the
//!   network; it asks [`platform::Platform`]. `cargo test` runs every rule natively with fakes.
//! - **Retry rounds, not per-batch recursion.** After each round only the records that failed
//!   with a retryable code stay pending, and they are re-packed into as few requests as the
//!   limits allow; a stored record is never sent again.
//! - **At-least-once, exactly accounted.** A response that is lost or unreadable leaves its
//!   records pending, so they are sent again: the only way a duplicate can arise. No record is
//!   dropped without an outcome.
#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]
#![cfg_attr(target_arch = "wasm32", deny(unsafe_code))]

pub mod platform;

pub mod kinesis;

pub mod shaping;

pub mod auth;

pub mod config;

pub mod delivery;

pub mod front;

#[cfg(target_arch = "wasm32")]
mod component;

pub use config::{Config, ConfigError, Settings};
pub use delivery::Sink;
pub use kinesis::{Code, Counters, Event, Outcome, PutReport, Rejected, RejectionKind};
pub use platform::{Environment, HttpRequest, HttpResponse, Platform, TransportError};
