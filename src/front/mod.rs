//! What every front end shares, so that a record gets the same treatment whichever door it came
//! in by (`kinesis-ship`, `kinesis-ship serve`, the proxy and command worlds, the Fluent Bit
//! plugin): the line rules ([`lines`]), HTTP body framing ([`body`]), Fluent Bit's chunks
//! ([`chunk`]), the event-time rule ([`time`]), the delivery rule and what a door remembers of a
//! chunk between attempts ([`ledger`]), the proxy's answers ([`reply`]) and the one report shape
//! ([`report`]).

pub mod body;
pub mod chunk;
pub mod ledger;
pub mod lines;
pub mod reply;
pub mod report;
pub mod time;

pub use report::{Problem, Tally};

#[cfg(test)]
mod tests;
