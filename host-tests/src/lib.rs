//! The test harness of kinesis-output: the product's wasmtime embedding with the fakes plugged in
//! ([`runtime`]), an in-process fake Kinesis with an independent SigV4 verifier
//! ([`fake_kinesis`], [`sigv4`]), kinesalite and moto, real local Kinesis and Firehose
//! ([`kinesalite`], [`moto`]), the transcripts and secret scan ([`transcript`]), and the
//! benchmark's support ([`bench`]), a forward proxy that logs what went through it
//! ([`connect_proxy`]). The product host itself is the `kinesis-ship` crate
//! (`host/`); nothing here ships.
#![forbid(unsafe_code)]

pub mod bench;
pub mod connect_proxy;
pub mod fake_kinesis;
pub mod fluent_bit;
pub mod kinesalite;
pub mod listener;
pub mod moto;
pub mod runtime;
pub mod sigv4;
pub mod transcript;
