//! The host side of kinesis-output: a wasmtime harness that runs the component ([`runtime`]),
//! an in-process fake Kinesis with an independent SigV4 verifier ([`fake_kinesis`], [`sigv4`]),
//! and the reference host `kinesis-ship` ([`ship`], [`serve`] for the proxy world).
#![forbid(unsafe_code)]

pub mod bench;
pub mod fake_kinesis;
pub mod process;
pub mod runtime;
pub mod serve;
pub mod ship;
pub mod sigv4;
pub mod transcript;
