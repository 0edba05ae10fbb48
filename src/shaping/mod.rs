//! From an event to the bytes Kinesis stores: Fluentd's formatters ([`format`]), record field
//! paths ([`accessor`]), `inject`, `data_key`, compression and partition keys ([`record`]),
//! stream names with placeholders ([`stream_name`]), and time text both ways ([`timefmt`]).
//! [`compact`] lets a record already in compact JSON go out as it arrived; [`number`] writes
//! numbers as their source wrote them.

pub mod accessor;
pub mod compact;
pub mod format;
pub mod number;
pub mod record;
pub mod stream_name;
pub mod timefmt;

pub use record::{prepare, Shape};
