//! What a `put` reports: one outcome per event, and counters.

/// Why a record was never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    NotJson,
    NotAnObject,
    NoPartitionKey,
    TooLarge,
    /// The `data_key` field is missing or null.
    NoDataKey,
    /// A `stream_name` placeholder could not be filled, or filled to an invalid name.
    NoStreamName,
}

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
        code: String,
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
}

/// The result of one `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    pub outcomes: Vec<Outcome>,
    /// Where the credentials came from, without secrets.
    pub credential_source: String,
    pub counters: Counters,
}

/// One event handed to `put`.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub tag: &'a str,
    pub seconds: i64,
    pub nanoseconds: u32,
    pub record: &'a [u8],
}
