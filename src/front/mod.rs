//! What every front end shares, so that a record gets the same treatment whichever door it came
//! in by (`kinesis-ship`, `kinesis-ship serve`, the proxy and command worlds): the line rules
//! ([`lines`]), HTTP body framing ([`body`]), the event-time rule ([`time`]), the proxy's
//! answers ([`reply`]) and the one report shape ([`report`]).

pub mod body;
pub mod lines;
pub mod reply;
pub mod report;
pub mod time;

pub use report::{Problem, Tally, Verdict};

#[cfg(test)]
mod tests;
