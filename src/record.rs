//! Turning one event into the bytes and partition key that Kinesis stores, or a rejection.

use serde_json::{Map, Value};

use crate::config::{json_kind, Compression, Config, MAX_PARTITION_KEY_CHARS};
use crate::format::Formatter;
use crate::outcome::{Event, Rejected, RejectionKind};

/// A record ready to be batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    /// The stream it goes to.
    pub stream: String,
}

impl PreparedRecord {
    /// The size Kinesis counts against its limits: data bytes plus partition-key bytes.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Format an event's record (JSON bytes) and choose its partition key. `random` supplies 16
/// random bytes when the key is random.
pub fn prepare(
    config: &Config,
    event: &Event<'_>,
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<PreparedRecord, Rejected> {
    let (data, partition_key, stream) = match as_it_is(config, event, random) {
        Some(parts) => parts,
        None => general(config, event, random)?,
    };
    let data = match config.compression {
        None => data,
        Some(c) => compress(c, &data),
    };

    let prepared = PreparedRecord {
        data,
        partition_key,
        stream,
    };
    // Aggregated records are checked when they are packed.
    if !config.aggregate && prepared.size() > config.max_record_size {
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

/// The fast path: with the `json` format, no `inject`, no `data_key` and a fixed stream, a record
/// already in serde_json's compact form (see [`crate::compact`]) is sent as it arrived. `None`
/// whenever the general path is needed, rejections included: it decides those.
fn as_it_is(
    config: &Config,
    event: &Event<'_>,
    random: &mut dyn FnMut(&mut [u8]),
) -> Option<(Vec<u8>, String, String)> {
    let Formatter::Json { add_newline } = config.format else {
        return None;
    };
    if config.inject.is_some() || config.data_key.is_some() {
        return None;
    }
    let stream = config.stream_name.fixed()?;
    let field = match &config.partition_key {
        Some((_, path)) => Some(path.top_level_key()?),
        None => None,
    };
    let compact = crate::compact::scan(event.record, field)?;
    let partition_key = match (&config.partition_key, compact.field) {
        (Some(_), Some(span)) => {
            let raw = &event.record[span];
            match raw.first()? {
                // A plain non-empty string: its text; escapes and empties go the general way.
                b'"' if raw.len() > 2 && !raw.contains(&b'\\') => {
                    let text = std::str::from_utf8(&raw[1..raw.len() - 1]).ok()?;
                    truncate_chars(text.to_string(), MAX_PARTITION_KEY_CHARS)
                }
                // Numbers and booleans as their JSON text, which compact form makes canonical.
                b'-' | b'0'..=b'9' | b't' | b'f' => truncate_chars(
                    std::str::from_utf8(raw).ok()?.to_string(),
                    MAX_PARTITION_KEY_CHARS,
                ),
                _ => return None,
            }
        }
        (Some(_), None) => return None,
        (None, _) if config.aggregate => config.fixed_partition_key.clone().unwrap_or_default(),
        (None, _) => random_key(random),
    };
    let mut data = Vec::with_capacity(event.record.len() + 1);
    data.extend_from_slice(event.record);
    if add_newline {
        data.push(b'\n');
    }
    if config.chomp_record {
        chomp(&mut data);
    }
    Some((data, partition_key, stream.to_string()))
}

/// The general path: parse the record, read the key and stream from it, format it.
fn general(
    config: &Config,
    event: &Event<'_>,
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<(Vec<u8>, String, String), Rejected> {
    let value: Value = serde_json::from_slice(event.record).map_err(|e| Rejected {
        kind: RejectionKind::NotJson,
        message: format!("record is not valid JSON: {e}"),
    })?;
    let Value::Object(fields) = value else {
        return Err(Rejected {
            kind: RejectionKind::NotAnObject,
            message: format!("record is {}, not a JSON object", json_kind(&value)),
        });
    };
    let quote = |fields: &Map<String, Value>| quote_record(fields, config.log_truncate_max_size);

    // The key comes from the record as it arrived, before inject (as in the seed).
    let partition_key = match &config.partition_key {
        Some((name, path)) => key_from_field(name, path.get_in(&fields)).map_err(|mut r| {
            r.message = format!("{} in {}", r.message, quote(&fields));
            r
        })?,
        // Aggregates get their key when they are packed.
        None if config.aggregate => config.fixed_partition_key.clone().unwrap_or_default(),
        None => random_key(random),
    };
    let stream = config
        .stream_name
        .render(event.tag, &fields)
        .map_err(|message| Rejected {
            kind: RejectionKind::NoStreamName,
            message,
        })?;
    let mut fields = fields;

    let data = match &config.data_key {
        Some((name, path)) => match path.get_in(&fields) {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(Value::Null) | None => {
                return Err(Rejected {
                    kind: RejectionKind::NoDataKey,
                    message: format!("data_key field {name:?} is missing or null in {}", quote(&fields)),
                });
            }
            Some(other) => serde_json::to_vec(other).expect("a JSON value serialises"),
        },
        None => {
            if let Some(inject) = &config.inject {
                if let Some(k) = &inject.tag_key {
                    fields.insert(k.clone(), Value::String(event.tag.to_string()));
                }
                if let Some(k) = &inject.time_key {
                    fields.insert(k.clone(), inject.time.value(event.seconds, event.nanoseconds));
                }
            }
            let mut data = config
                .format
                .format(event.tag, event.seconds, event.nanoseconds, &fields);
            if config.chomp_record {
                chomp(&mut data);
            }
            data
        }
    };
    Ok((data, partition_key, stream))
}

/// Ruby's `chomp`: drop one trailing `\n`, `\r\n` or `\r`.
fn chomp(data: &mut Vec<u8>) {
    if data.ends_with(b"\r\n") {
        data.truncate(data.len() - 2);
    } else if data.ends_with(b"\n") || data.ends_with(b"\r") {
        data.pop();
    }
}

/// A record as JSON for a message, cut to `max` characters (0: whole).
fn quote_record(fields: &Map<String, Value>, max: usize) -> String {
    let text = serde_json::to_string(fields).expect("a JSON object serialises");
    if max == 0 || text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// Compress formatted record bytes.
pub fn compress(kind: Compression, data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    match kind {
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("writing to memory");
            e.finish().expect("writing to memory")
        }
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("writing to memory");
            e.finish().expect("writing to memory")
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
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
    use std::io::Read as _;

    /// An event of tag `kube.app` at 2024-02-29T13:05:09.5Z.
    fn prep(
        c: &Config,
        record: &[u8],
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<PreparedRecord, Rejected> {
        let event = Event {
            tag: "kube.app",
            seconds: 1_709_211_909,
            nanoseconds: 500_000_000,
            record,
        };
        prepare(c, &event, random)
    }

    fn config(extra: &str) -> Config {
        let json = format!(
            r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"{extra}}}"#
        );
        Config::from_json(&json, &mut |_: &str| None).unwrap()
    }

    /// The fast path gives exactly what the general path gives, for every setting it serves.
    #[test]
    fn records_sent_as_they_are_match_the_general_path() {
        let records: &[&[u8]] = &[
            br#"{"pod":"web-1","log":"GET / 200\n","n":1}"#,
            br#"{"pod":42,"log":"x"}"#,
            br#"{"pod":true}"#,
            br#"{"pod":"a\"b"}"#,
            br#"{"pod":""}"#,
            br#"{"pod":null}"#,
            br#"{"pod":{"x":1}}"#,
            br#"{"log":"no key"}"#,
            r#"{"pod":"é✓","f":0.5}"#.as_bytes(),
            br#"{"pod":"p","a":1,"a":2}"#,
            br#"{"pod": "spaced"}"#,
            br#"{"pod":"x","t":"\u0001"}"#,
        ];
        let long_key = format!(r#"{{"pod":"{}"}}"#, "k".repeat(300));
        for extra in [
            r#","partition_key":"pod""#,
            r#","partition_key":"$.pod","chomp_record":true"#,
            r#","partition_key":"pod","compression":"gzip""#,
            r#","format":{"type":"json","add_newline":false}"#,
            "",
        ] {
            let c = config(extra);
            for record in records.iter().copied().chain([long_key.as_bytes()]) {
                let event = Event {
                    tag: "kube.app",
                    seconds: 1,
                    nanoseconds: 0,
                    record,
                };
                let fast = as_it_is(&c, &event, &mut counting());
                let general = general(&c, &event, &mut counting());
                if let Some(parts) = fast {
                    assert_eq!(Ok(parts), general, "{extra} {}", String::from_utf8_lossy(record));
                }
                let through = prep(&c, record, &mut counting());
                match general {
                    Ok(_) => assert!(through.is_ok()),
                    Err(r) => assert_eq!(through.unwrap_err(), r),
                }
            }
        }
        // The common case does take the fast path.
        let c = config(r#","partition_key":"pod""#);
        let event = Event {
            tag: "t",
            seconds: 1,
            nanoseconds: 0,
            record: records[0],
        };
        assert!(as_it_is(&c, &event, &mut counting()).is_some());
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
        let r = prep(
            &c,
            br#"{ "z": 1, "a": {"b": [1, 2]}, "m": "h\u00e9" }"#,
            &mut counting(),
        )
        .unwrap();
        assert_eq!(r.data, "{\"z\":1,\"a\":{\"b\":[1,2]},\"m\":\"hé\"}\n".as_bytes());
        assert_eq!(r.partition_key, "000102030405060708090a0b0c0d0e0f");
        let c = config(r#","chomp_record":true"#);
        assert_eq!(
            prep(&c, br#"{"a":1}"#, &mut counting()).unwrap().data,
            b"{\"a\":1}"
        );
    }

    #[test]
    fn keys_come_from_the_named_field() {
        let c = config(r#","partition_key":"k""#);
        let key = |rec: &str| prep(&c, rec.as_bytes(), &mut counting()).map(|r| r.partition_key);
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
        let key = prep(&c, rec.as_bytes(), &mut counting()).unwrap().partition_key;
        assert_eq!(key.chars().count(), 256);
        assert_eq!(key.len(), 512);
        let exact: String = "x".repeat(256);
        let rec = serde_json::json!({ "k": exact }).to_string();
        assert_eq!(
            prep(&c, rec.as_bytes(), &mut counting()).unwrap().partition_key,
            exact
        );
    }

    #[test]
    fn bad_records_are_rejected_with_the_reason() {
        let c = config("");
        let e = prep(&c, b"not json", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotJson);
        let e = prep(&c, b"[1,2]", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotAnObject);
        assert!(e.message.contains("an array"));
        let e = prep(&c, b"\"text\"", &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NotAnObject);
    }

    #[test]
    fn size_counts_data_and_key_bytes() {
        // {"m":"xxxx"}\n is 13 bytes; the random key 32: 45 in all.
        let c = config(r#","max_record_size":45"#);
        assert!(prep(&c, br#"{"m":"xxxx"}"#, &mut counting()).is_ok());
        let e = prep(&c, br#"{"m":"xxxxx"}"#, &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::TooLarge);
        assert!(
            e.message.contains("46 bytes") && e.message.contains("limit of 45"),
            "{}",
            e.message
        );
    }

    #[test]
    fn nested_partition_keys_use_record_accessor_paths() {
        let c = config(r#","partition_key":"$.kubernetes.labels['app.kubernetes.io/name']""#);
        let rec = br#"{"log":"x","kubernetes":{"labels":{"app.kubernetes.io/name":"web"}}}"#;
        assert_eq!(prep(&c, rec, &mut counting()).unwrap().partition_key, "web");
        let e = prep(&c, br#"{"kubernetes":{}}"#, &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NoPartitionKey);
        assert!(e.message.contains(r#"in {"kubernetes":{}}"#), "{}", e.message);
        let c = config(r#","partition_key":"$.items[1]""#);
        assert_eq!(
            prep(&c, br#"{"items":["a",7]}"#, &mut counting())
                .unwrap()
                .partition_key,
            "7"
        );
    }

    #[test]
    fn inject_adds_tag_and_time_before_formatting() {
        let c = config(r#","inject":{"tag_key":"tag","time_key":"time"}"#);
        let r = prep(&c, br#"{"log":"x"}"#, &mut counting()).unwrap();
        assert_eq!(
            String::from_utf8(r.data).unwrap(),
            "{\"log\":\"x\",\"tag\":\"kube.app\",\"time\":\"2024-02-29T13:05:09.500000000+0000\"}\n"
        );
        let c = config(r#","inject":{"time_key":"t","time_type":"unixtime"}"#);
        assert_eq!(
            prep(&c, br#"{"t":"old","a":1}"#, &mut counting()).unwrap().data,
            b"{\"t\":1709211909,\"a\":1}\n"
        );
        let c = config(r#","inject":{"time_key":"t","time_type":"float"}"#);
        assert_eq!(
            prep(&c, br#"{}"#, &mut counting()).unwrap().data,
            b"{\"t\":1709211909.5}\n"
        );
        let c =
            config(r#","inject":{"time_key":"t","time_format":"%d/%b/%Y:%H:%M:%S %z","timezone":"-05:00"}"#);
        assert_eq!(
            prep(&c, br#"{}"#, &mut counting()).unwrap().data,
            b"{\"t\":\"29/Feb/2024:08:05:09 -0500\"}\n"
        );
    }

    #[test]
    fn data_key_sends_one_field_as_it_is() {
        let c = config(r#","data_key":"log""#);
        assert_eq!(
            prep(&c, br#"{"log":"raw line\n","x":1}"#, &mut counting())
                .unwrap()
                .data,
            b"raw line\n"
        );
        assert_eq!(
            prep(&c, br#"{"log":{"a":[1]}}"#, &mut counting()).unwrap().data,
            br#"{"a":[1]}"#
        );
        assert_eq!(prep(&c, br#"{"log":12}"#, &mut counting()).unwrap().data, b"12");
        for rec in [&br#"{"x":1}"#[..], br#"{"log":null}"#] {
            let e = prep(&c, rec, &mut counting()).unwrap_err();
            assert_eq!(e.kind, RejectionKind::NoDataKey);
            assert!(e.message.contains("data_key field \"log\""), "{}", e.message);
        }
    }

    #[test]
    fn chomp_applies_to_every_format() {
        let c = config(r#","chomp_record":true,"format":{"type":"ltsv"}"#);
        assert_eq!(
            prep(&c, br#"{"a":1,"b":"x"}"#, &mut counting()).unwrap().data,
            b"a:1\tb:x"
        );
        let c = config(r#","chomp_record":true,"format":{"type":"single_value","message_key":"m"}"#);
        assert_eq!(
            prep(&c, br#"{"m":"line\r\n"}"#, &mut counting()).unwrap().data,
            b"line\r\n",
            "one newline only"
        );
    }

    #[test]
    fn compression_shrinks_records_and_limits_count_compressed_bytes() {
        let rec = serde_json::json!({"log": "abc".repeat(2000)}).to_string();
        let plain = {
            let mut v = serde_json::to_vec(&serde_json::from_str::<Value>(&rec).unwrap()).unwrap();
            v.push(b'\n');
            v
        };
        for (kind, check) in [
            ("zlib", [0x78u8].as_slice()),
            ("gzip", [0x1f, 0x8b].as_slice()),
            ("zstd", [0x28, 0xb5, 0x2f, 0xfd].as_slice()),
        ] {
            // 6,012 bytes uncompressed, but the limit counts what is sent.
            let c = config(&format!(r#","compression":"{kind}","max_record_size":1000"#));
            let r = prep(&c, rec.as_bytes(), &mut counting()).unwrap();
            assert!(r.data.starts_with(check), "{kind}");
            assert!(r.data.len() < 500, "{kind}: {}", r.data.len());
            let mut out = Vec::new();
            match kind {
                "zlib" => flate2::read::ZlibDecoder::new(&r.data[..])
                    .read_to_end(&mut out)
                    .unwrap(),
                "gzip" => flate2::read::GzDecoder::new(&r.data[..])
                    .read_to_end(&mut out)
                    .unwrap(),
                _ => ruzstd::decoding::StreamingDecoder::new(&r.data[..])
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap(),
            };
            assert_eq!(out, plain, "{kind} round trip");
        }
    }

    #[test]
    fn quoted_records_are_cut_to_log_truncate_max_size() {
        let c = config(r#","partition_key":"k","log_truncate_max_size":20"#);
        let e = prep(
            &c,
            br#"{"log":"0123456789012345678901234567890"}"#,
            &mut counting(),
        )
        .unwrap_err();
        assert!(
            e.message.ends_with(r#"in {"log":"012345678901…"#),
            "{}",
            e.message
        );
        let c = config(r#","partition_key":"k","log_truncate_max_size":0"#);
        let e = prep(
            &c,
            br#"{"log":"0123456789012345678901234567890"}"#,
            &mut counting(),
        )
        .unwrap_err();
        assert!(
            e.message.ends_with(r#""0123456789012345678901234567890"}"#),
            "{}",
            e.message
        );
    }
}
