//! The PutRecords wire format: the request body, the response, and what each error means.

use base64::Engine as _;
use serde::Deserialize;

use crate::record::PreparedRecord;

/// `X-Amz-Target` of PutRecords.
pub const PUT_RECORDS_TARGET: &str = "Kinesis_20131202.PutRecords";
/// The content type of the Kinesis JSON protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Write the PutRecords body for `records` into `out` (cleared first): base64 straight into the
/// buffer, keys and stream name JSON-escaped.
pub fn encode_put_records<'a>(
    stream_name: &str,
    records: impl IntoIterator<Item = &'a PreparedRecord>,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"{\"StreamName\":");
    write_json_string(stream_name, out);
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
    let parsed: ResponseBody =
        serde_json::from_slice(body).map_err(|e| format!("unreadable PutRecords response: {e}"))?;
    if parsed.records.len() != sent {
        return Err(format!(
            "PutRecords response lists {} records for {} sent",
            parsed.records.len(),
            sent
        ));
    }
    parsed
        .records
        .into_iter()
        .enumerate()
        .map(|(i, e)| match (e.error_code, e.sequence_number, e.shard_id) {
            (Some(code), _, _) => Ok(EntryResult::Error {
                code,
                message: e.error_message.unwrap_or_default(),
            }),
            (None, Some(sequence_number), Some(shard_id)) => Ok(EntryResult::Stored {
                shard_id,
                sequence_number,
            }),
            _ => Err(format!(
                "PutRecords response entry {i} has neither an error code nor a sequence number and shard id"
            )),
        })
        .collect()
}

/// Per-record error codes worth sending again.
pub fn is_retryable_record_error(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "InternalFailure"
            | "KMSThrottlingException"
            | "ServiceUnavailable"
    )
}

/// Codes that mean the caller is sending too fast.
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "SlowDown"
            | "Throttling"
            | "TooManyRequests"
    )
}

/// How a whole request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    pub throttled: bool,
    /// The credentials have expired: refresh them before retrying.
    pub expired_token: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_upper: Option<String>,
}

/// Classify a non-200 response from its status and AWS JSON error body.
pub fn classify_error_response(status: u16, body: &[u8]) -> RequestError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(b) => (
            b.kind
                .map(|k| k.rsplit('#').next().unwrap_or_default().to_string()),
            b.message.or(b.message_upper),
        ),
        None => (None, None),
    };
    let code = code
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(200).collect();
        if text.trim().is_empty() {
            format!("HTTP status {status}")
        } else {
            format!("HTTP status {status}: {}", text.trim())
        }
    });
    let throttled = status == 429 || is_throttling(&code);
    let expired_token = matches!(code.as_str(), "ExpiredTokenException" | "ExpiredToken");
    let expired = expired_token || code == "RequestExpired";
    let retryable = status >= 500
        || throttled
        || expired
        || matches!(
            code.as_str(),
            "InternalFailure" | "ServiceUnavailable" | "RequestTimeout" | "RequestTimeoutException"
        );
    RequestError {
        code,
        message,
        retryable,
        throttled,
        expired_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_REQUEST: &str = include_str!("../tests/fixtures/put-records-request.json");
    const GOLDEN_RESPONSE: &str = include_str!("../tests/fixtures/put-records-response.json");

    fn rec(data: &str, key: &str) -> PreparedRecord {
        PreparedRecord {
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

    #[test]
    fn whole_request_errors_are_classified() {
        let e = classify_error_response(
            400,
            br#"{"__type":"ResourceNotFoundException","message":"Stream s under account 1 not found."}"#,
        );
        assert_eq!(e.code, "ResourceNotFoundException");
        assert!(!e.retryable);
        assert!(e.message.contains("not found"));
        let e = classify_error_response(
            400,
            br#"{"__type":"com.amazonaws.kinesis.v20131202#AccessDeniedException","Message":"no"}"#,
        );
        assert_eq!(e.code, "AccessDeniedException");
        assert_eq!(e.message, "no");
        assert!(!e.retryable);
        for code in [
            "ValidationException",
            "InvalidArgumentException",
            "KMSAccessDeniedException",
            "InvalidSignatureException",
        ] {
            let body = format!(r#"{{"__type":"{code}","message":"m"}}"#);
            assert!(!classify_error_response(400, body.as_bytes()).retryable, "{code}");
        }
        let e = classify_error_response(
            400,
            br#"{"__type":"LimitExceededException","message":"Rate exceeded"}"#,
        );
        assert!(e.retryable && e.throttled);
        let e = classify_error_response(403, br#"{"__type":"ExpiredTokenException","message":"expired"}"#);
        assert!(e.retryable && !e.throttled && e.expired_token);
        let e = classify_error_response(503, b"<html>Service Unavailable</html>");
        assert_eq!(e.code, "HTTP503");
        assert!(e.retryable);
        assert!(e.message.contains("Service Unavailable"));
        let e = classify_error_response(500, b"");
        assert_eq!(e.message, "HTTP status 500");
        assert!(classify_error_response(429, b"").throttled);
    }

    #[test]
    fn record_error_codes() {
        assert!(is_retryable_record_error(
            "ProvisionedThroughputExceededException"
        ));
        assert!(is_retryable_record_error("InternalFailure"));
        assert!(is_retryable_record_error("KMSThrottlingException"));
        assert!(!is_retryable_record_error("KMSAccessDeniedException"));
        assert!(!is_retryable_record_error("KMSNotFoundException"));
    }
}
