//! Turning one event into the bytes and partition key that Kinesis stores, or a rejection.

use serde_json::Value;

use crate::config::{json_kind, Config, MAX_PARTITION_KEY_CHARS};
use crate::outcome::{Rejected, RejectionKind};

/// A record ready to be batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
}

impl PreparedRecord {
    /// The size Kinesis counts against its limits: data bytes plus partition-key bytes.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Format `record` (JSON bytes) and choose its partition key. `random` supplies 16 random bytes
/// when the key is random.
pub fn prepare(
    config: &Config,
    record: &[u8],
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<PreparedRecord, Rejected> {
    let value: Value = serde_json::from_slice(record).map_err(|e| Rejected {
        kind: RejectionKind::NotJson,
        message: format!("record is not valid JSON: {e}"),
    })?;
    let Value::Object(fields) = &value else {
        return Err(Rejected {
            kind: RejectionKind::NotAnObject,
            message: format!("record is {}, not a JSON object", json_kind(&value)),
        });
    };

    let partition_key = match &config.partition_key {
        Some(name) => key_from_field(name, fields.get(name))?,
        None => random_key(random),
    };

    let mut data = serde_json::to_vec(&value).expect("a parsed JSON value serialises");
    if config.format.newline {
        data.push(b'\n');
    }

    let prepared = PreparedRecord { data, partition_key };
    if prepared.size() > config.max_record_size {
        return Err(Rejected {
            kind: RejectionKind::TooLarge,
            message: format!(
                "record is {} bytes (data {} + partition key {}), over the max_record_size limit of {}",
                prepared.size(),
                prepared.data.len(),
                prepared.partition_key.len(),
                config.max_record_size
            ),
        });
    }
    Ok(prepared)
}

/// A key from a record field: strings as they are, numbers and booleans as their JSON text,
/// cut to 256 characters (never bytes).
fn key_from_field(name: &str, value: Option<&Value>) -> Result<String, Rejected> {
    let key = match value {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        other => {
            let what = match other {
                None => "is missing".to_string(),
                Some(Value::String(_)) => "is an empty string".to_string(),
                Some(v) => format!("is {}", json_kind(v)),
            };
            return Err(Rejected {
                kind: RejectionKind::NoPartitionKey,
                message: format!("partition key field {name:?} {what}"),
            });
        }
    };
    Ok(truncate_chars(key, MAX_PARTITION_KEY_CHARS))
}

fn truncate_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s,
    }
}

/// 128 random bits as 32 lowercase hex characters, as the seed plugin makes them.
pub fn random_key(random: &mut dyn FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; 16];
    random(&mut bytes);
    let mut key = String::with_capacity(32);
    for b in bytes {
        key.push(char::from_digit(u32::from(b >> 4), 16).unwrap());
        key.push(char::from_digit(u32::from(b & 15), 16).unwrap());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let json = format!(
            r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"{extra}}}"#
        );
        Config::from_json(&json, &mut |_: &str| None).unwrap()
    }

    fn counting() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            for b in buf {
                *b = n;
                n = n.wrapping_add(1);
            }
        }
    }

    #[test]
    fn json_is_compact_in_field_order_with_a_newline() {
        let c = config("");
        let r = prepare(
            &c,
            br#"{ "z": 1, "a": {"b": [1, 2]}, "m": "h\u00e9" }"#,
            &mut counting(),
        )
        .unwrap();
        assert_eq!(r.data, "{\"z\":1,\"a\":{\"b\":[1,2]},\"m\":\"hé\"}\n".as_bytes());
        assert_eq!(r.partition_key, "000102030405060708090a0b0c0d0e0f");
        let c = config(r#","chomp_record":true"#);
        assert_eq!(
            prepare(&c, br#"{"a":1}"#, &mut counting()).unwrap().data,
            b"{\"a\":1}"
        );
    }

    #[test]
    fn keys_come_from_the_named_field() {
        let c = config(r#","partition_key":"k""#);
        let key = |rec: &str| prepare(&c, rec.as_bytes(), &mut counting()).map(|r| r.partition_key);
        assert_eq!(key(r#"{"k":"pod-1"}"#).unwrap(), "pod-1");
        assert_eq!(key(r#"{"k":42}"#).unwrap(), "42");
        assert_eq!(key(r#"{"k":1.5}"#).unwrap(), "1.5");
        assert_eq!(key(r#"{"k":true}"#).unwrap(), "true");
        for (rec, why) in [
            (r#"{"x":1}"#, "is missing"),
            (r#"{"k":null}"#, "is null"),
            (r#"{"k":""}"#, "is an empty string"),
            (r#"{"k":{}}"#, "is an object"),
            (r#"{"k":[1]}"#, "is an array"),
        ] {
            let e = key(rec).unwrap_err();
            assert_eq!(e.kind, RejectionKind::NoPartitionKey);
            assert!(e.message.contains(why), "{rec}: {}", e.message);
        }
    }

    #[test]
    fn long_keys_are_cut_by_characters() {
        let c = config(r#","partition_key":"k""#);
        let long: String = "é".repeat(300);
        let rec = serde_json::json!({ "k": long }).to_string();
        let key = prepare(&c, rec.as_bytes(), &mut counting())
            .unwrap()
            .partition_key;
        assert_eq!(key.chars().count(), 256);
        assert_eq!(key.len(), 512);
        let exact: String = "x".repeat(256);
        let rec = serde_json::json!({ "k": exact }).to_string();
        assert_eq!(
            prepare(&c, rec.as_bytes(), &mut counting())
                .unwrap()
                .partition_key,
            exact
        );
    }

    #[test]
    fn bad_records_are_rejected_with_the_reason() {
        let c = config("");
        let e = prepare(&c, b"not json", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotJson);
        let e = prepare(&c, b"[1,2]", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotAnObject);
        assert!(e.message.contains("an array"));
        let e = prepare(&c, b"\"text\"", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotAnObject);
    }

    #[test]
    fn size_counts_data_and_key_bytes() {
        // {"m":"xxxx"}\n is 13 bytes; the random key 32: 45 in all.
        let c = config(r#","max_record_size":45"#);
        assert!(prepare(&c, br#"{"m":"xxxx"}"#, &mut counting()).is_ok());
        let e = prepare(&c, br#"{"m":"xxxxx"}"#, &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::TooLarge);
        assert!(
            e.message.contains("46 bytes") && e.message.contains("limit of 45"),
            "{}",
            e.message
        );
    }
}
