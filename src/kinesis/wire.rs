//! The PutRecords wire format: the request body and the response. What an error code means is
//! [`super::code`]'s to say.

use base64::Engine as _;
use serde::Deserialize;

/// One Kinesis record on its way: its data, its partition key and its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    /// The stream it goes to.
    pub stream: String,
    /// The partition key was longer than Kinesis takes and was cut to 256 characters.
    pub key_cut: bool,
}

impl PreparedRecord {
    /// The size Kinesis counts against its limits: data bytes plus partition-key bytes.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// `X-Amz-Target` of PutRecords.
pub const PUT_RECORDS_TARGET: &str = "Kinesis_20131202.PutRecords";
/// The content type of the Kinesis JSON protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Write the PutRecords body for `records` into `out` (cleared first): base64 straight into the
/// buffer, keys and stream JSON-escaped. `stream` is a stream name, or a stream ARN (`arn:…`,
/// sent as `StreamARN`; a name never holds a `:`).
pub fn encode_put_records<'a>(
    stream: &str,
    records: impl IntoIterator<Item = &'a PreparedRecord>,
    out: &mut Vec<u8>,
) {
    out.clear();
    if stream.starts_with("arn:") {
        out.extend_from_slice(b"{\"StreamARN\":");
    } else {
        out.extend_from_slice(b"{\"StreamName\":");
    }
    write_json_string(stream, out);
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
        out.extend_from_slice(b"\",\"PartitionKey\":");
        write_json_string(&record.partition_key, out);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// One entry of a PutRecords response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Stored {
        shard_id: String,
        sequence_number: String,
    },
    Error {
        code: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct ResponseBody {
    #[serde(rename = "Records")]
    records: Vec<ResponseEntry>,
}

#[derive(Deserialize)]
struct ResponseEntry {
    #[serde(rename = "SequenceNumber")]
    sequence_number: Option<String>,
    #[serde(rename = "ShardId")]
    shard_id: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage")]
    error_message: Option<String>,
}

/// Parse a 200 response to a request of `sent` records. The entries must match the records one
/// for one; anything else is an error with a short reason.
pub fn parse_put_records_response(body: &[u8], sent: usize) -> Result<Vec<EntryResult>, String> {
    read_entries(
        "PutRecords",
        body,
        sent,
        |b: ResponseBody| b.records,
        "a sequence number and shard id",
        |e| match (e.error_code, e.sequence_number, e.shard_id) {
            (Some(code), _, _) => Some(EntryResult::Error {
                code,
                message: e.error_message.unwrap_or_default(),
            }),
            (None, Some(sequence_number), Some(shard_id)) => Some(EntryResult::Stored {
                shard_id,
                sequence_number,
            }),
            _ => None,
        },
    )
}

/// The entries of a 200 answer from `call` to `sent` records, one for each: `list` takes them
/// out of the body, `entry` reads each (`None`: neither an error nor what a stored record
/// carries, named by `stored_carries`). An unreadable body, a count that differs or an entry
/// that says nothing is an error with a short reason.
pub(super) fn read_entries<B: serde::de::DeserializeOwned, E>(
    call: &str,
    body: &[u8],
    sent: usize,
    list: impl FnOnce(B) -> Vec<E>,
    stored_carries: &str,
    entry: impl Fn(E) -> Option<EntryResult>,
) -> Result<Vec<EntryResult>, String> {
    let parsed: B = serde_json::from_slice(body).map_err(|e| format!("unreadable {call} response: {e}"))?;
    let entries = list(parsed);
    if entries.len() != sent {
        return Err(format!(
            "{call} response lists {} records for {sent} sent",
            entries.len()
        ));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            entry(e).ok_or_else(|| {
                format!("{call} response entry {i} has neither an error code nor {stored_carries}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_REQUEST: &str = include_str!("../../tests/fixtures/put-records-request.json");
    const GOLDEN_RESPONSE: &str = include_str!("../../tests/fixtures/put-records-response.json");

    fn rec(data: &str, key: &str) -> PreparedRecord {
        PreparedRecord {
            key_cut: false,
            data: data.as_bytes().to_vec(),
            partition_key: key.to_string(),
            stream: "my-stream".to_string(),
        }
    }

    #[test]
    fn request_body_matches_the_golden_file() {
        let records = [rec("{\"log\":\"hello\"}\n", "pod-a"), rec("x", "k\"ey\u{e9}")];
        let mut out = vec![1, 2, 3];
        encode_put_records("my-stream", &records, &mut out);
        assert_eq!(std::str::from_utf8(&out).unwrap(), GOLDEN_REQUEST.trim_end());
        // The body is what the AWS SDKs would send: it parses back to the same records.
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Records"][1]["PartitionKey"], "k\"eyé");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["Records"][0]["Data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, b"{\"log\":\"hello\"}\n");
    }

    #[test]
    fn response_matches_the_golden_file() {
        let entries = parse_put_records_response(GOLDEN_RESPONSE.as_bytes(), 3).unwrap();
        assert_eq!(
            entries,
            vec![
                EntryResult::Stored {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: "49543463076548007577105092703039560359975228518395019266".into()
                },
                EntryResult::Error {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "Rate exceeded for shard shardId-000000000001 in stream exampleStreamName under account 111111111111.".into()
                },
                EntryResult::Error {
                    code: "InternalFailure".into(),
                    message: "Internal service failure.".into()
                },
            ]
        );
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(parse_put_records_response(b"{\"Records\":[", 1).is_err());
        assert!(parse_put_records_response(b"{\"FailedRecordCount\":0}", 1).is_err());
        let e = parse_put_records_response(GOLDEN_RESPONSE.as_bytes(), 2).unwrap_err();
        assert!(e.contains("3 records for 2 sent"), "{e}");
        assert!(parse_put_records_response(b"{\"Records\":[{}]}", 1).is_err());
    }
}
