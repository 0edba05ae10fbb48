//! The two services under one delivery engine: Kinesis Data Streams (`PutRecords`) and Amazon
//! Data Firehose (`PutRecordBatch`). What differs is here: the call's target and signing name,
//! the limits, how a record's size counts, the request body and the answer. Batching, the retry
//! rounds, deadlines and outcomes are the sink's, the same for both.

use base64::Engine as _;
use serde::Deserialize;

use super::limits;
use super::wire::{
    encode_put_records, parse_put_records_response, read_entries, EntryResult, PreparedRecord,
};

/// Which service records go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Kinesis Data Streams: `stream_name` / `stream_arn`, PutRecords, partition keys.
    Streams,
    /// Amazon Data Firehose: `delivery_stream_name`, PutRecordBatch, no partition key.
    Firehose,
}

/// `X-Amz-Target` of PutRecordBatch.
pub const PUT_RECORD_BATCH_TARGET: &str = "Firehose_20150804.PutRecordBatch";

impl Service {
    /// The name metrics and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Service::Streams => "kinesis",
            Service::Firehose => "firehose",
        }
    }

    /// The call, as its `X-Amz-Target` header names it.
    pub fn target(self) -> &'static str {
        match self {
            Service::Streams => super::wire::PUT_RECORDS_TARGET,
            Service::Firehose => PUT_RECORD_BATCH_TARGET,
        }
    }

    /// The call's name, for messages.
    pub fn call(self) -> &'static str {
        match self {
            Service::Streams => "PutRecords",
            Service::Firehose => "PutRecordBatch",
        }
    }

    /// The SigV4 service name (and the endpoints' first label).
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Streams => "kinesis",
            Service::Firehose => "firehose",
        }
    }

    /// The setting that names the stream.
    pub fn stream_setting(self) -> &'static str {
        match self {
            Service::Streams => "stream_name",
            Service::Firehose => "delivery_stream_name",
        }
    }

    /// Records a call takes at most.
    pub fn max_records(self) -> usize {
        match self {
            Service::Streams => limits::MAX_RECORDS_PER_REQUEST,
            Service::Firehose => limits::FIREHOSE_MAX_RECORDS_PER_CALL,
        }
    }

    /// The request size a call takes at most, and the default the sink keeps to.
    pub fn request_bytes(self) -> (usize, usize) {
        match self {
            Service::Streams => (limits::MAX_REQUEST_BYTES, limits::DEFAULT_REQUEST_BYTES),
            Service::Firehose => (limits::FIREHOSE_MAX_CALL_BYTES, limits::FIREHOSE_MAX_CALL_BYTES),
        }
    }

    /// The largest record, and the default: data plus partition key for Streams, data alone
    /// (before base64) for Firehose.
    pub fn record_bytes(self) -> (usize, usize) {
        match self {
            Service::Streams => (limits::MAX_RECORD_BYTES, limits::DEFAULT_RECORD_BYTES),
            Service::Firehose => (
                limits::FIREHOSE_MAX_RECORD_BYTES,
                limits::FIREHOSE_MAX_RECORD_BYTES,
            ),
        }
    }

    /// The longest stream name.
    pub fn max_name_chars(self) -> usize {
        match self {
            Service::Streams => limits::MAX_STREAM_NAME_CHARS,
            Service::Firehose => limits::FIREHOSE_MAX_NAME_CHARS,
        }
    }

    /// The size the service counts of a record against its limits.
    pub fn size(self, record: &PreparedRecord) -> usize {
        match self {
            Service::Streams => record.size(),
            Service::Firehose => record.data.len(),
        }
    }

    /// Write the call's body for `records` into `out` (cleared first). `stream` is the stream's
    /// name (or, for Streams, its ARN).
    pub fn encode<'a>(
        self,
        stream: &str,
        records: impl IntoIterator<Item = &'a PreparedRecord>,
        out: &mut Vec<u8>,
    ) {
        match self {
            Service::Streams => encode_put_records(stream, records, out),
            Service::Firehose => encode_put_record_batch(stream, records, out),
        }
    }

    /// Read a 200 answer to a call of `sent` records: one entry each, in order.
    pub fn parse(self, body: &[u8], sent: usize) -> Result<Vec<EntryResult>, String> {
        match self {
            Service::Streams => parse_put_records_response(body, sent),
            Service::Firehose => parse_put_record_batch_response(body, sent),
        }
    }
}

/// Write the PutRecordBatch body: `{"DeliveryStreamName": …, "Records": [{"Data": …}]}`, base64
/// straight into the buffer.
pub fn encode_put_record_batch<'a>(
    stream: &str,
    records: impl IntoIterator<Item = &'a PreparedRecord>,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"{\"DeliveryStreamName\":");
    serde_json::to_writer(&mut *out, stream).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\"Records\":[");
    for (i, record) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Data\":\"");
        let start = out.len();
        let encoded = base64::encoded_len(record.data.len(), true).expect("record size fits in memory");
        out.resize(start + encoded, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&record.data, &mut out[start..])
            .expect("buffer sized by encoded_len");
        out.truncate(start + written);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

#[derive(Deserialize)]
struct BatchBody {
    #[serde(rename = "RequestResponses")]
    responses: Vec<BatchEntry>,
}

#[derive(Deserialize)]
struct BatchEntry {
    #[serde(rename = "RecordId")]
    record_id: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage")]
    error_message: Option<String>,
}

/// Read a PutRecordBatch answer to `sent` records: `RequestResponses`, one entry each, a
/// `RecordId` or an `ErrorCode`. A stored record's outcome carries its RecordId where a Kinesis
/// record carries its sequence number (and no shard).
pub fn parse_put_record_batch_response(body: &[u8], sent: usize) -> Result<Vec<EntryResult>, String> {
    read_entries(
        "PutRecordBatch",
        body,
        sent,
        |b: BatchBody| b.responses,
        "a record id",
        |e| match (e.error_code, e.record_id) {
            (Some(code), _) => Some(EntryResult::Error {
                code,
                message: e.error_message.unwrap_or_default(),
            }),
            (None, Some(record_id)) => Some(EntryResult::Stored {
                shard_id: String::new(),
                sequence_number: record_id,
            }),
            (None, None) => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_REQUEST: &str = include_str!("../../tests/fixtures/put-record-batch-request.json");
    const GOLDEN_RESPONSE: &str = include_str!("../../tests/fixtures/put-record-batch-response.json");

    fn rec(data: &str) -> PreparedRecord {
        PreparedRecord {
            key_cut: false,
            data: data.as_bytes().to_vec(),
            partition_key: String::new(),
            stream: "logs-to-s3".to_string(),
        }
    }

    #[test]
    fn the_put_record_batch_body_matches_the_golden_file() {
        let mut out = vec![9];
        Service::Firehose.encode(
            "logs-to-s3",
            &[rec("{\"log\":\"hello\"}\n"), rec("x\n")],
            &mut out,
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), GOLDEN_REQUEST.trim_end());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(
            v["Records"][0].get("PartitionKey").is_none(),
            "Firehose takes no key"
        );
    }

    #[test]
    fn the_put_record_batch_answer_matches_the_golden_file() {
        let entries = Service::Firehose.parse(GOLDEN_RESPONSE.as_bytes(), 3).unwrap();
        assert_eq!(
            entries[0],
            EntryResult::Stored {
                shard_id: String::new(),
                sequence_number: "49543463076548007577105092703039560359975228518395012686".into()
            }
        );
        assert_eq!(
            entries[1],
            EntryResult::Error {
                code: "ServiceUnavailableException".into(),
                message: "Slow down.".into()
            }
        );
        assert!(matches!(&entries[2], EntryResult::Error { code, .. } if code == "InternalFailure"));
        assert!(Service::Firehose.parse(GOLDEN_RESPONSE.as_bytes(), 2).is_err());
        assert!(Service::Firehose
            .parse(b"{\"RequestResponses\":[{}]}", 1)
            .is_err());
        assert!(
            Service::Firehose.parse(b"{\"Records\":[]}", 0).is_err(),
            "a PutRecords answer"
        );
    }

    #[test]
    fn sizes_and_limits_count_as_each_service_does() {
        let r = PreparedRecord {
            key_cut: false,
            data: vec![0; 10],
            partition_key: "key".into(),
            stream: "s".into(),
        };
        assert_eq!((Service::Streams.size(&r), Service::Firehose.size(&r)), (13, 10));
        assert_eq!(Service::Firehose.record_bytes().0, 1_024_000);
        assert_eq!(Service::Firehose.request_bytes().0, 4 * 1024 * 1024);
        assert_eq!(Service::Firehose.max_records(), 500);
        assert_eq!(Service::Firehose.target(), "Firehose_20150804.PutRecordBatch");
    }
}
