//! The services: their limits, regions and endpoints, the PutRecords and PutRecordBatch wire
//! formats ([`service`]), KPL aggregation, and the codes of every outcome with what each means
//! for a retry.

pub mod aggregate;
pub mod code;
pub mod limits;
pub mod outcome;
pub mod packed;
pub mod region;
pub mod service;
pub mod wire;

pub use code::{Code, RejectionKind, Verdict};
pub use outcome::{Counters, Event, Outcome, PutReport, Rejected};
pub use service::Service;
pub use wire::PreparedRecord;
