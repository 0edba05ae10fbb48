//! Turning one event into the bytes and partition key that Kinesis stores, or a rejection.

use serde_json::{Map, Value};

use super::accessor::Accessor;
use super::format::{json_kind, Formatter, TimeStyle};
use super::stream_name::StreamName;
use crate::kinesis::limits::MAX_PARTITION_KEY_CHARS;
use crate::kinesis::{Event, PreparedRecord, Rejected, RejectionKind, Service};

/// How records are shaped: this stage's settings, as `config` reads them.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Kinesis Data Streams or Firehose (no partition keys; `append_new_line`; `aggregate` joins
    /// records with newlines).
    pub service: Service,
    /// The stream, fixed or with placeholders.
    pub stream_name: StreamName,
    /// The record field (a name or a `$.path`) whose value is the partition key, with its text;
    /// `None` means a random key per record.
    pub partition_key: Option<(String, Accessor)>,
    pub format: Formatter,
    /// Drop one trailing newline of the formatted record.
    pub chomp_record: bool,
    /// Firehose: end each record with exactly one `\n` (one trailing line end chomped, then one
    /// added), before compression, so records stored back to back stay one a line.
    pub append_new_line: bool,
    pub inject: Option<Inject>,
    /// Send this field's value as the record, bypassing the formatter and `inject`.
    pub data_key: Option<(String, Accessor)>,
    pub compression: Option<Compression>,
    /// Messages quoting a record cut it to this many characters (0: no limit).
    pub log_truncate_max_size: usize,
    /// Pack records into KPL aggregates (the seed's `kinesis_streams_aggregated`).
    pub aggregate: bool,
    /// The partition key of every aggregate (`fixed_partition_key`); else `partition_key` groups
    /// records by their key, or each aggregate gets a random key.
    pub fixed_partition_key: Option<String>,
    /// The largest record (data plus partition key) the stream takes.
    pub max_record_size: usize,
}

impl Shape {
    /// Firehose with `aggregate`: consecutive records joined into one, newline-separated.
    pub fn joins_records(&self) -> bool {
        self.aggregate && self.service == Service::Firehose
    }
}

/// Values added to each record before formatting (Fluentd's `inject` section).
#[derive(Debug, Clone, PartialEq)]
pub struct Inject {
    pub tag_key: Option<String>,
    pub time_key: Option<String>,
    pub time: TimeStyle,
}

/// Record compression, applied after formatting; size limits count the compressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zlib,
    Gzip,
    Zstd,
}

/// Format an event's record (JSON bytes) and choose its partition key. `random` supplies 16
/// random bytes when the key is random.
pub fn prepare(
    shape: &Shape,
    event: &Event<'_>,
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<PreparedRecord, Rejected> {
    let (mut data, partition_key, stream) = match as_it_is(shape, event, random) {
        Some(parts) => parts,
        None => general(shape, event, random)?,
    };
    if shape.append_new_line {
        chomp(&mut data);
        data.push(b'\n');
    }
    let data = match shape.compression {
        // Records joined for Firehose are compressed once joined.
        Some(c) if !shape.joins_records() => compress(c, &data),
        _ => data,
    };

    // Kinesis takes 256 characters of key: a longer one is cut (and counted, and the door
    // warns once a put), as the seed did, rather than the record refused.
    let (partition_key, key_cut) = cut_chars(partition_key, MAX_PARTITION_KEY_CHARS);
    let prepared = PreparedRecord {
        data,
        partition_key,
        stream,
        key_cut,
    };
    // Aggregated records are checked when they are packed.
    if !shape.aggregate && prepared.size() > shape.max_record_size {
        return Err(Rejected {
            kind: RejectionKind::TooLarge,
            message: format!(
                "record is {} bytes (data {} + partition key {}), over the max_record_size limit of {}",
                prepared.size(),
                prepared.data.len(),
                prepared.partition_key.len(),
                shape.max_record_size
            ),
        });
    }
    Ok(prepared)
}

/// The fast path: with the `json` format, no `inject`, no `data_key` and a fixed stream, a record
/// already in serde_json's compact form (see [`super::compact`]) is sent as it arrived. `None`
/// whenever the general path is needed, rejections included: it decides those.
fn as_it_is(
    shape: &Shape,
    event: &Event<'_>,
    random: &mut dyn FnMut(&mut [u8]),
) -> Option<(Vec<u8>, String, String)> {
    let Formatter::Json { add_newline } = shape.format else {
        return None;
    };
    if shape.inject.is_some() || shape.data_key.is_some() {
        return None;
    }
    let stream = shape.stream_name.fixed()?;
    let field = match &shape.partition_key {
        Some((_, path)) => Some(path.top_level_key()?),
        None => None,
    };
    let compact = super::compact::scan(event.record, field)?;
    let partition_key = match (&shape.partition_key, compact.field) {
        (Some(_), Some(span)) => {
            let raw = &event.record[span];
            match raw.first()? {
                // A plain non-empty string: its text; escapes and empties go the general way.
                b'"' if raw.len() > 2 && !raw.contains(&b'\\') => {
                    std::str::from_utf8(&raw[1..raw.len() - 1]).ok()?.to_string()
                }
                // Numbers and booleans as their JSON text, which compact form makes canonical.
                b'-' | b'0'..=b'9' | b't' | b'f' => std::str::from_utf8(raw).ok()?.to_string(),
                _ => return None,
            }
        }
        (Some(_), None) => return None,
        (None, _) if shape.aggregate || shape.service == Service::Firehose => {
            shape.fixed_partition_key.clone().unwrap_or_default()
        }
        (None, _) => random_key(random),
    };
    let mut data = Vec::with_capacity(event.record.len() + 1);
    data.extend_from_slice(event.record);
    if add_newline {
        data.push(b'\n');
    }
    if shape.chomp_record {
        chomp(&mut data);
    }
    Some((data, partition_key, stream.to_string()))
}

/// The general path: parse the record, read the key and stream from it, format it.
fn general(
    shape: &Shape,
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
    let quote = |fields: &Map<String, Value>| quote_record(fields, shape.log_truncate_max_size);

    // The key comes from the record as it arrived, before inject (as in the seed).
    let partition_key = match &shape.partition_key {
        Some((name, path)) => key_from_field(name, path.get_in(&fields)).map_err(|mut r| {
            r.message = format!("{} in {}", r.message, quote(&fields));
            r
        })?,
        // Aggregates get their key when they are packed; Firehose records have none.
        None if shape.aggregate || shape.service == Service::Firehose => {
            shape.fixed_partition_key.clone().unwrap_or_default()
        }
        None => random_key(random),
    };
    let stream = shape
        .stream_name
        .render(event.tag, &fields)
        .map_err(|message| Rejected {
            kind: RejectionKind::NoStreamName,
            message,
        })?;
    let mut fields = fields;

    let data = match &shape.data_key {
        Some((name, path)) => match path.get_in(&fields) {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(Value::Null) | None => {
                return Err(Rejected {
                    kind: RejectionKind::NoDataKey,
                    message: format!("data_key field {name:?} is missing or null in {}", quote(&fields)),
                });
            }
            Some(other) => crate::shaping::number::to_json(other),
        },
        None => {
            if let Some(inject) = &shape.inject {
                if let Some(k) = &inject.tag_key {
                    fields.insert(k.clone(), Value::String(event.tag.to_string()));
                }
                if let Some(k) = &inject.time_key {
                    fields.insert(k.clone(), inject.time.value(event.seconds, event.nanoseconds));
                }
            }
            let mut data = shape
                .format
                .format(event.tag, event.seconds, event.nanoseconds, &fields);
            if shape.chomp_record {
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
    let text = String::from_utf8(crate::shaping::number::to_json(fields)).expect("JSON is UTF-8");
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

/// A key from a record field: strings as they are, numbers and booleans as their JSON text
/// (cut to 256 characters by [`prepare`]).
fn key_from_field(name: &str, value: Option<&Value>) -> Result<String, Rejected> {
    let key = match value {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => crate::shaping::number::json_text(n).into_owned(),
        Some(v @ Value::Bool(_)) => v.to_string(),
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
    Ok(key)
}

/// `key` cut to `max` characters (never bytes), and whether it was.
fn cut_chars(mut key: String, max: usize) -> (String, bool) {
    match key.char_indices().nth(max) {
        Some((cut, _)) => {
            key.truncate(cut);
            (key, true)
        }
        None => (key, false),
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
mod tests;
