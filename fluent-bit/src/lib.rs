//! # kinesis_wasm, a Fluent Bit output plugin
//!
//! Fluent Bit runs the kinesis-output component in process: this shared library implements
//! Fluent Bit's Go-proxy plugin interface (no Go needed: any library exporting its C symbols
//! works) on the product host's wasmtime embedding (`kinesis_ship`), running the `sink` world.
//! Records arrive as Fluent Bit's msgpack chunks (read by the core's `front::chunk`); settings come from the plugin's
//! properties ([`settings`]); each flush ships its chunk and answers Fluent Bit so that its retry
//! can never duplicate a stored record ([`output`]); [`abi`] is the C boundary.
//!
//! ## Design decisions
//! - **One instance per flush in progress.** With `workers N` Fluent Bit flushes one output on
//!   N threads at once; each flush takes an instance from the output's pool (or opens one) and
//!   gives it back, so flushes never share a store.
//! - **No signal handlers.** Fluent Bit owns SIGSEGV (its handler aborts); the engine checks
//!   guest memory accesses explicitly instead, so a guest trap is reported, not an abort.
//! - **Compiled code from wasmtime's cache**, so a Fluent Bit start does not pay the Cranelift
//!   compile each time.
#![deny(unsafe_code)]

pub mod abi;
pub mod metrics;
pub mod output;
pub mod settings;
