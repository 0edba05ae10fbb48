//! The service: its limits, regions and endpoints, the PutRecords wire format, KPL
//! aggregation, and the codes of every outcome with what each means for a retry.

pub mod aggregate;
pub mod code;
pub mod limits;
pub mod outcome;
pub mod region;
pub mod wire;

pub use code::{Code, RejectionKind, Verdict};
pub use outcome::{Counters, Event, Outcome, PutReport, Rejected};
pub use wire::PreparedRecord;
