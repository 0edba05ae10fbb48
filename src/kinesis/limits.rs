//! The services' limits, as PutRecords and PutRecordBatch enforce them. Sizes count the way each
//! service does: a Kinesis record is its data plus its partition key's UTF-8 bytes; a Firehose
//! record is its data, before base64.

/// PutRecords accepts at most this many records in one request.
pub const MAX_RECORDS_PER_REQUEST: usize = 500;
/// The request size PutRecords has accepted for years (data plus partition keys).
pub const DEFAULT_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// The current PutRecords request limit (data plus partition keys).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// A record's data plus partition key may be this large on every stream.
pub const DEFAULT_RECORD_BYTES: usize = 1024 * 1024;
/// Streams may opt in to records of up to this size.
pub const MAX_RECORD_BYTES: usize = 10 * 1024 * 1024;
/// A partition key is 1 to 256 Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Kinesis stream names are 1 to 128 characters of `[a-zA-Z0-9_.-]`.
pub const MAX_STREAM_NAME_CHARS: usize = 128;

/// PutRecordBatch accepts at most this many records in one call.
pub const FIREHOSE_MAX_RECORDS_PER_CALL: usize = 500;
/// PutRecordBatch takes at most 4 MiB a call ("these limits cannot be changed").
pub const FIREHOSE_MAX_CALL_BYTES: usize = 4 * 1024 * 1024;
/// A Firehose record's data is at most 1,000 KiB, before base64.
pub const FIREHOSE_MAX_RECORD_BYTES: usize = 1_000 * 1024;
/// Firehose delivery stream names are 1 to 64 characters of `[a-zA-Z0-9_.-]`.
pub const FIREHOSE_MAX_NAME_CHARS: usize = 64;
/// Firehose bills each record rounded up to this many bytes.
pub const FIREHOSE_BILLING_UNIT: usize = 5 * 1024;
