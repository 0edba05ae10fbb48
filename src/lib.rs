//! # kinesis-output
//!
//! A WebAssembly component that ships log records to Amazon Kinesis Data Streams. A host opens a
//! sink from a JSON configuration (the names of Fluentd's aws-fluent-plugin-kinesis) and hands it
//! chunks of events; the sink formats each record, picks its partition key, packs the records
//! into `PutRecords` requests, signs them with SigV4 and sends them through `wasi:http`, retrying
//! only the records that failed. Every event gets exactly one outcome: delivered, failed or
//! rejected.
//!
//! ## Layout
//! - [`config`]: parsing and validation; errors name the field and the rule.
//! - [`record`]: formatting and partition keys, per event; [`compact`] lets a record already in
//!   compact form go out as it arrived.
//! - [`wire`]: the PutRecords body, response and error classification.
//! - [`sign`]: SigV4 with `aws-sigv4`.
//! - [`credentials`]: credential sources (static, environment, web identity, shared files,
//!   container, instance profile, credential process, AssumeRole), cached and refreshed.
//! - [`ingest`]: records arriving over HTTP or stdin (the proxy and command worlds): framing,
//!   decoding, limits, event times, and the answer per request.
//! - [`envconfig`]: the configuration from environment variables.
//! - [`sink`]: the delivery loop (batching, retries, backoff, deadline).
//! - [`platform`]: the one trait through which the core reaches clocks, randomness, the
//!   environment and HTTP.
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

pub mod accessor;
pub mod aggregate;
pub mod compact;
pub mod config;
pub mod credentials;
pub mod egress;
pub mod envconfig;
pub mod format;
pub mod ingest;
pub mod outcome;
pub mod platform;
pub mod record;
pub mod sign;
pub mod sink;
pub mod stream_name;
pub mod timefmt;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod component;

pub use config::{Config, ConfigError};
pub use outcome::{Counters, Event, Outcome, PutReport, Rejected, RejectionKind};
pub use platform::{HttpRequest, HttpResponse, Platform, TransportError};
pub use sink::Sink;
