//! From prepared records to one outcome per event: the [`sink`] (batching, the retry rounds,
//! backoff, deadlines), the arithmetic it uses ([`batch`]), and the endpoints it may reach
//! ([`egress`], for hosts that enforce a policy).

pub mod batch;
pub mod egress;
pub mod sink;

pub use sink::Sink;
