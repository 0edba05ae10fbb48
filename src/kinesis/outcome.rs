//! What a `put` takes and reports: events in; one outcome per event, and counters, out.

use super::code::{Code, RejectionKind};

/// A record that was never sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub kind: RejectionKind,
    pub message: String,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored by the service.
    Delivered {
        shard_id: String,
        sequence_number: String,
    },
    /// Sent but not stored: the service refused it or retries ran out.
    Failed {
        code: Code,
        message: String,
        attempts: u32,
    },
    /// Never sent.
    Rejected(Rejected),
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    /// Why the record was not delivered; `None` when it was.
    pub fn code(&self) -> Option<Code> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Failed { code, .. } => Some(code.clone()),
            Outcome::Rejected(r) => Some(Code::Rejected(r.kind)),
        }
    }
}

/// Counters of one `put`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// PutRecords requests sent, retries included.
    pub requests: u64,
    /// Records sent again after a retryable failure.
    pub retries: u64,
    /// Record failures that were throttling, per record or for a whole request.
    pub throttled_records: u64,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Credentials fetched from their source (not from the cache; static keys never count).
    pub credential_refreshes: u64,
    /// Records whose partition key was longer than 256 characters and was cut to 256.
    pub partition_keys_truncated: u64,
}

/// The result of one `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    pub outcomes: Vec<Outcome>,
    /// Where the credentials came from, without secrets.
    pub credential_source: String,
    pub counters: Counters,
    /// The first event whose partition key was cut to 256 characters (its index in the
    /// events put), for the one warning a door logs per put.
    pub first_key_cut: Option<usize>,
}

/// One event handed to `put`.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub tag: &'a str,
    pub seconds: i64,
    pub nanoseconds: u32,
    pub record: &'a [u8],
}
