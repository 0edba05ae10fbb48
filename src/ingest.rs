//! Records arriving over HTTP (the proxy world) or on standard input (the command world): body
//! framing and decoding, limits, event times, and the answer once every record has an outcome.
//!
//! Everything here is plain data in, plain data out; the component's glue moves the bytes.
//!
//! ## How a request is answered
//! The proxy answers only when every record of the body has an outcome, and picks the status so
//! that a log agent that re-sends on failure can never duplicate a record the service accepted:
//!
//! | status | when | the agent |
//! |---|---|---|
//! | 200 | every record delivered | done |
//! | 202 | some delivered, the others rejected or failed; the body lists each of those lines | done: re-sending would duplicate the delivered ones |
//! | 503 + `Retry-After` | nothing delivered, at least one record failed (throttled, network, …) | re-sends the body; nothing in it was stored |
//! | 422 | nothing delivered, every record rejected (no partition key, too large, …) | gives up: re-sending cannot help |
//! | 400 | the body is not what its headers claim (with the line) | gives up |
//! | 413 | the body or its record count exceeds the limits | gives up |
//!
//! 202 and not 207 for a partial delivery: Fluent Bit re-sends anything outside 200–205.

use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Map, Value};

use crate::config::{ConfigError, Fields};
use crate::outcome::{Outcome, RejectionKind};

/// Default largest body, after decompression.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 16 * 1024 * 1024;
/// Default most records in one request.
pub const DEFAULT_MAX_RECORDS: u64 = 10_000;
/// The fields an event time is read from, first found wins: Fluent Bit's `json_date_key`,
/// Vector's and Logstash's timestamp fields, Fluentd's `time`.
pub const DEFAULT_TIME_KEYS: &[&str] = &["date", "timestamp", "@timestamp", "time"];
/// The proxy world's `put_deadline` when the configuration sets none: below the 60 s a log
/// agent's HTTP client usually waits (Vector's `request.timeout_secs`).
pub const PROXY_PUT_DEADLINE_SECS: u64 = 50;

/// The proxy world's own settings: the `proxy` section of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Largest body accepted, in bytes after decompression (and before it).
    pub max_body_size: usize,
    /// Most records in one request.
    pub max_records: usize,
    /// The request header whose value is the events' tag (Fluent Bit's `header_tag`).
    pub tag_header: String,
    /// The tag when that header is absent.
    pub default_tag: String,
    /// Record fields read for the event time, in order.
    pub time_keys: Vec<String>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            max_body_size: DEFAULT_MAX_BODY_SIZE as usize,
            max_records: DEFAULT_MAX_RECORDS as usize,
            tag_header: "x-tag".to_string(),
            default_tag: "http".to_string(),
            time_keys: DEFAULT_TIME_KEYS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

impl ProxySettings {
    /// Read the `proxy` section of a configuration (the sink reads the rest).
    pub fn from_config(config_json: &str) -> Result<ProxySettings, ConfigError> {
        let value: Value = serde_json::from_str(config_json)
            .map_err(|e| ConfigError::new("", format!("the configuration is not valid JSON: {e}")))?;
        let mut settings = ProxySettings::default();
        let Some(section) = value.get("proxy") else {
            return Ok(settings);
        };
        let Value::Object(map) = section.clone() else {
            return Err(ConfigError::new("proxy", "must be an object"));
        };
        let mut f = Fields::new("proxy", map);
        if let Some(v) = f.integer("max_body_size", 1, 1 << 30)? {
            settings.max_body_size = v as usize;
        }
        if let Some(v) = f.integer("max_records", 1, 1_000_000)? {
            settings.max_records = v as usize;
        }
        if let Some(v) = f.string("tag_header")? {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::new(
                    "proxy.tag_header",
                    "must be a header name (letters, digits, - and _)",
                ));
            }
            settings.tag_header = v.to_ascii_lowercase();
        }
        if let Some(v) = f.string("default_tag")? {
            settings.default_tag = v;
        }
        if let Some(v) = f.take("time_keys") {
            settings.time_keys = match v {
                Value::String(s) => s.split(',').map(|k| k.trim().to_string()).collect(),
                Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s),
                        _ => Err(ConfigError::new("proxy.time_keys", "must list field names")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ConfigError::new(
                        "proxy.time_keys",
                        "must be a list of field names or a comma-separated string",
                    ))
                }
            };
            settings.time_keys.retain(|k| !k.is_empty());
        }
        f.finish()?;
        Ok(settings)
    }
}

/// The configuration the proxy world opens its sink with: `put_deadline` defaults to
/// [`PROXY_PUT_DEADLINE_SECS`] so that an agent gets an answer before its own timeout.
pub fn proxy_sink_config(config_json: &str) -> String {
    match serde_json::from_str::<Value>(config_json) {
        Ok(Value::Object(mut map)) => {
            map.entry("put_deadline")
                .or_insert_with(|| json!(PROXY_PUT_DEADLINE_SECS));
            Value::Object(map).to_string()
        }
        // Left for the sink to refuse with its own message.
        _ => config_json.to_string(),
    }
}

/// Why a request body cannot be taken: the status and a message for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError {
    pub status: u16,
    pub message: String,
    /// The 1-based line of the body the message is about.
    pub line: Option<usize>,
}

impl BodyError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        BodyError {
            status,
            message: message.into(),
            line: None,
        }
    }
}

/// How the records are laid out in a body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// One JSON value a line (`application/x-ndjson`).
    Lines,
    /// `application/json`: a JSON array of records, one object, or (as Fluent Bit's
    /// `json_lines` sends under this type) one value a line.
    Json,
}

/// The framing a `Content-Type` announces; absent means [`Framing::Json`].
pub fn framing(content_type: Option<&str>) -> Result<Framing, BodyError> {
    let Some(ct) = content_type else {
        return Ok(Framing::Json);
    };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonlines"
        | "application/x-jsonlines"
        | "application/json-lines"
        | "application/jsonl"
        | "text/x-ndjson" => Ok(Framing::Lines),
        "application/json" | "text/json" | "text/plain" | "" => Ok(Framing::Json),
        other => Err(BodyError::new(
            415,
            format!("Content-Type {other} is not supported; send application/x-ndjson or application/json"),
        )),
    }
}

/// Undo a `Content-Encoding` (none, `identity`, `gzip`, `zstd`, `deflate`), refusing bodies
/// that grow beyond `max` bytes.
pub fn decode(content_encoding: Option<&str>, body: Vec<u8>, max: usize) -> Result<Vec<u8>, BodyError> {
    let too_large = || BodyError::new(413, format!("the body exceeds {max} bytes"));
    let encoding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match encoding.as_str() {
        "" | "identity" => {
            return if body.len() > max {
                Err(too_large())
            } else {
                Ok(body)
            }
        }
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        "zstd" => Box::new(
            ruzstd::decoding::StreamingDecoder::new(&body[..])
                .map_err(|e| BodyError::new(400, format!("the body is not valid zstd: {e}")))?,
        ),
        other => {
            return Err(BodyError::new(
                415,
                format!("Content-Encoding {other} is not supported; use gzip, zstd or deflate"),
            ))
        }
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::new(400, format!("the body is not valid {encoding}: {e}")))?;
    if out.len() > max {
        return Err(too_large());
    }
    Ok(out)
}

/// One record of a body: where it is, on which line, and the time read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// 1-based line of the body where the record starts.
    pub line: usize,
    pub start: usize,
    pub end: usize,
    /// Seconds and nanoseconds since the epoch, when a time field held a readable time.
    pub time: Option<(i64, u32)>,
}

/// Split a decoded body into records, checking that each is JSON and reading its time.
pub fn split(framing: Framing, body: &[u8], settings: &ProxySettings) -> Result<Vec<Item>, BodyError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let items = match (framing, first.map(|i| body[i])) {
        (_, None) => Vec::new(),
        (Framing::Json, Some(b'[')) => split_array(body, settings)?,
        (Framing::Json, Some(_)) => {
            // One object (perhaps pretty-printed over several lines), else one value a line.
            let mut de = serde_json::Deserializer::from_slice(body);
            let whole = TimeScan(&settings.time_keys)
                .deserialize(&mut de)
                .and_then(|t| de.end().map(|_| t));
            match whole {
                Ok(time) => {
                    let start = first.unwrap_or(0);
                    let end = body.len() - body.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
                    vec![Item {
                        line: line_of(body, start),
                        start,
                        end,
                        time,
                    }]
                }
                Err(_) => split_lines(body, settings)?,
            }
        }
        (Framing::Lines, Some(_)) => split_lines(body, settings)?,
    };
    if items.len() > settings.max_records {
        return Err(BodyError::new(
            413,
            format!(
                "the body holds {} records, more than the {} allowed",
                items.len(),
                settings.max_records
            ),
        ));
    }
    Ok(items)
}

fn line_of(body: &[u8], offset: usize) -> usize {
    1 + body[..offset].iter().filter(|b| **b == b'\n').count()
}

fn split_lines(body: &[u8], settings: &ProxySettings) -> Result<Vec<Item>, BodyError> {
    let mut items = Vec::new();
    let mut start = 0;
    for (index, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line_start = start;
        start += raw.len() + 1;
        let trimmed_end = raw.len() - raw.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
        let lead = raw[..trimmed_end]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if lead == trimmed_end {
            continue; // blank line
        }
        if items.len() >= settings.max_records {
            // Counted, not parsed: the limit answer does not need the rest.
            items.push(Item {
                line: index + 1,
                start: line_start + lead,
                end: line_start + trimmed_end,
                time: None,
            });
            continue;
        }
        let record = &raw[lead..trimmed_end];
        let time = scan_time(record, &settings.time_keys).map_err(|e| BodyError {
            status: 400,
            message: format!("line {} is not JSON: {e}", index + 1),
            line: Some(index + 1),
        })?;
        items.push(Item {
            line: index + 1,
            start: line_start + lead,
            end: line_start + trimmed_end,
            time,
        });
    }
    Ok(items)
}

fn split_array(body: &[u8], settings: &ProxySettings) -> Result<Vec<Item>, BodyError> {
    let elements: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| BodyError {
            status: 400,
            message: format!("the body is not a JSON array of records: {e}"),
            line: Some(e.line()),
        })?;
    let base = body.as_ptr() as usize;
    elements
        .iter()
        .map(|raw| {
            let text = raw.get();
            let start = text.as_ptr() as usize - base;
            let time = scan_time(text.as_bytes(), &settings.time_keys).unwrap_or(None);
            Ok(Item {
                line: line_of(body, start),
                start,
                end: start + text.len(),
                time,
            })
        })
        .collect()
}

/// Check that `record` is one JSON value and read its time, if it is an object with one.
pub fn scan_time(record: &[u8], keys: &[String]) -> Result<Option<(i64, u32)>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(record);
    let time = TimeScan(keys).deserialize(&mut de)?;
    de.end()?;
    Ok(time)
}

/// Walks one JSON value; for an object, keeps the first readable time among `keys` (in their
/// order) and skips everything else without building it.
struct TimeScan<'k>(&'k [String]);

impl<'de> DeserializeSeed<'de> for TimeScan<'_> {
    type Value = Option<(i64, u32)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeScan<'_> {
    type Value = Option<(i64, u32)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut best: Option<(usize, (i64, u32))> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.iter().position(|k| *k == key) {
                Some(rank) if best.is_none_or(|(b, _)| rank < b) => {
                    let value: Value = map.next_value()?;
                    if let Some(t) = parse_time(&value) {
                        best = Some((rank, t));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(best.map(|(_, t)| t))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A time field's value as seconds and nanoseconds. Numbers are epoch times; their size says the
/// unit (seconds, or milli-, micro-, nanoseconds from 10^11, 10^14, 10^17 on), so Fluent Bit's
/// `double`, `epoch` and `epoch_ms` and Vector's `unix*` formats all read right. Strings are
/// ISO 8601 / RFC 3339 (`iso8601`, Vector's default) or `2024-05-01 12:00:00.123` (Fluent Bit's
/// `java_sql_timestamp`, read as UTC), or a number in text.
pub fn parse_time(value: &Value) -> Option<(i64, u32)> {
    match value {
        Value::Number(n) => parse_epoch(&n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            if s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') && s.len() >= 9 {
                return parse_epoch(s);
            }
            let t = crate::credentials::parse_timestamp(s)?;
            let (seconds, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(e) => {
                    let d = e.duration();
                    let mut secs = -(d.as_secs() as i64);
                    let mut nanos = d.subsec_nanos();
                    if nanos > 0 {
                        secs -= 1;
                        nanos = 1_000_000_000 - nanos;
                    }
                    (secs, nanos)
                }
            };
            Some((seconds, nanos))
        }
        _ => None,
    }
}

/// An epoch time written in decimal, read digit by digit so that `1700000000.123456` keeps
/// its microseconds exactly.
fn parse_epoch(text: &str) -> Option<(i64, u32)> {
    if text.contains(['e', 'E']) {
        let v: f64 = text.parse().ok()?;
        return parse_epoch(&format!("{v:.9}"));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if negative {
        return None; // before 1970: not a log time
    }
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    // Scale to nanoseconds by the magnitude of the whole part.
    let (unit_digits, scale): (usize, u128) = match whole {
        w if w >= 100_000_000_000_000_000 => (0, 1),
        w if w >= 100_000_000_000_000 => (3, 1_000),
        w if w >= 100_000_000_000 => (6, 1_000_000),
        _ => (9, 1_000_000_000),
    };
    let frac_digits: String = frac.chars().take(unit_digits).collect();
    let frac_value: u128 = if frac_digits.is_empty() {
        0
    } else {
        format!("{frac_digits:0<unit_digits$}").parse().ok()?
    };
    let total = whole.checked_mul(scale)?.checked_add(frac_value)?;
    let seconds = i64::try_from(total / 1_000_000_000).ok()?;
    Some((seconds, (total % 1_000_000_000) as u32))
}

/// An HTTP answer: status, extra headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Reply {
        let mut text = body.to_string();
        text.push('\n');
        Reply {
            status,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: text.into_bytes(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The answer to a body that could not be taken.
pub fn body_error_reply(e: &BodyError) -> Reply {
    let mut body = json!({ "error": e.message });
    if let Some(line) = e.line {
        body["line"] = json!(line);
    }
    Reply::json(e.status, &body)
}

/// The answer to a configuration the sink refused: 500, so that agents keep the records and
/// retry while the operator fixes it.
pub fn config_error_reply(e: &ConfigError) -> Reply {
    Reply::json(
        500,
        &json!({ "error": "the proxy's configuration is invalid", "field": e.field, "message": e.message }),
    )
    .with_header("retry-after", "30")
}

/// The seconds a client should wait before re-sending a body none of whose records was stored.
pub const RETRY_AFTER_THROTTLED: u32 = 1;
pub const RETRY_AFTER_OTHER: u32 = 5;

/// The answer once every record of the body has an outcome (`outcomes[i]` is `items[i]`'s); see
/// the module documentation for the statuses.
pub fn outcome_reply(items: &[Item], outcomes: &[Outcome]) -> Reply {
    let (mut delivered, mut failed, mut rejected, mut throttled) = (0usize, 0usize, 0usize, false);
    let mut lines = Vec::new();
    for (item, outcome) in items.iter().zip(outcomes) {
        match outcome {
            Outcome::Delivered { .. } => delivered += 1,
            Outcome::Failed { code, message, .. } => {
                failed += 1;
                throttled |=
                    code == "ProvisionedThroughputExceededException" || code == "ThrottlingException";
                lines.push(
                    json!({ "line": item.line, "outcome": "failed", "code": code, "message": message }),
                );
            }
            Outcome::Rejected(r) => {
                rejected += 1;
                lines.push(json!({
                    "line": item.line, "outcome": "rejected", "code": rejection_code(r.kind), "message": r.message,
                }));
            }
        }
    }
    let mut body = Map::new();
    body.insert("delivered".into(), json!(delivered));
    body.insert("failed".into(), json!(failed));
    body.insert("rejected".into(), json!(rejected));
    let status = if failed == 0 && rejected == 0 {
        200
    } else if delivered > 0 {
        body.insert(
            "note".into(),
            json!("delivered records are stored; do not re-send this body, the lines below were not stored"),
        );
        202
    } else if failed > 0 {
        body.insert(
            "note".into(),
            json!("no record of this body was stored; re-sending it creates no duplicates"),
        );
        503
    } else {
        422
    };
    if !lines.is_empty() {
        body.insert("lines".into(), Value::Array(lines));
    }
    let reply = Reply::json(status, &Value::Object(body));
    if status == 503 {
        let after = if throttled {
            RETRY_AFTER_THROTTLED
        } else {
            RETRY_AFTER_OTHER
        };
        reply.with_header("retry-after", after.to_string())
    } else {
        reply
    }
}

/// The stable name of a rejection, as reports print it.
pub fn rejection_code(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::NotJson => "NotJson",
        RejectionKind::NotAnObject => "NotAnObject",
        RejectionKind::NoPartitionKey => "NoPartitionKey",
        RejectionKind::TooLarge => "TooLarge",
        RejectionKind::NoDataKey => "NoDataKey",
        RejectionKind::NoStreamName => "NoStreamName",
    }
}

/// A line of text input as a record: a JSON object as it is, anything else (plain text, other
/// JSON values) as `{"message": line}`, so a stray line still ships.
pub fn line_to_record(line: &str) -> Vec<u8> {
    if line.trim_start().starts_with('{') && scan_time(line.as_bytes(), &[]).is_ok() {
        return line.as_bytes().to_vec();
    }
    let mut m = Map::new();
    m.insert("message".to_string(), Value::String(line.to_string()));
    serde_json::to_vec(&Value::Object(m)).expect("a map of strings serialises")
}

#[cfg(test)]
mod tests;
