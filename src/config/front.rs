//! The front ends' settings: the fields every door reads an event's time from (`time_keys`),
//! and the proxy world's own (`proxy`: body and record limits, the tag header).

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::fields::Fields;

/// Default largest body, after decompression.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 16 * 1024 * 1024;
/// Default most records in one request: as many as the largest body can hold. Agents send
/// whatever their chunk holds (Fluent Bit's 2 MB chunks of short lines carry well over 10,000
/// records) and treat a 413 as final, dropping the records; the body size is the bound.
pub const DEFAULT_MAX_RECORDS: u64 = 1_000_000;
/// The fields an event time is read from, first found wins: Fluent Bit's `json_date_key`,
/// Vector's and Logstash's timestamp fields, Fluentd's `time`.
pub const DEFAULT_TIME_KEYS: &[&str] = &["date", "timestamp", "@timestamp", "time"];
/// The proxy world's `put_deadline` when the configuration sets none: below the 60 s a log
/// agent's HTTP client usually waits (Vector's `request.timeout_secs`).
pub const PROXY_PUT_DEADLINE: Duration = Duration::from_secs(50);

/// What the front ends read besides the sink's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontSettings {
    /// Record fields read for the event time, in order (`time_keys`; the proxy also takes it
    /// as `proxy.time_keys`). A record with none of them gets its time of arrival.
    pub time_keys: Vec<String>,
    /// Largest body accepted, in bytes after decompression (and before it).
    pub max_body_size: usize,
    /// Most records in one request.
    pub max_records: usize,
    /// The request header whose value is the events' tag (Fluent Bit's `header_tag`).
    pub tag_header: String,
    /// The tag when that header is absent.
    pub default_tag: String,
}

impl Default for FrontSettings {
    fn default() -> Self {
        FrontSettings {
            time_keys: DEFAULT_TIME_KEYS.iter().map(|k| k.to_string()).collect(),
            max_body_size: DEFAULT_MAX_BODY_SIZE as usize,
            max_records: DEFAULT_MAX_RECORDS as usize,
            tag_header: "x-tag".to_string(),
            default_tag: "http".to_string(),
        }
    }
}

impl FrontSettings {
    /// Read the top-level `time_keys` and the `proxy` section.
    pub fn read(
        time_keys: Option<Value>,
        proxy: Option<Map<String, Value>>,
    ) -> Result<FrontSettings, ConfigError> {
        let mut settings = FrontSettings::default();
        let top_level = time_keys.is_some();
        if let Some(v) = time_keys {
            settings.time_keys = keys("time_keys", v)?;
        }
        let Some(section) = proxy else {
            return Ok(settings);
        };
        let mut f = Fields::new("proxy", section);
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
            if top_level {
                return Err(ConfigError::new(
                    "proxy.time_keys",
                    "is the older name of time_keys; set one of them",
                ));
            }
            settings.time_keys = keys("proxy.time_keys", v)?;
        }
        f.finish()?;
        Ok(settings)
    }
}

/// A list of field names, or one comma-separated string of them.
fn keys(field: &str, v: Value) -> Result<Vec<String>, ConfigError> {
    let mut keys: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|k| k.trim().to_string()).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(ConfigError::new(field, "must list field names")),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ConfigError::new(
                field,
                "must be a list of field names or a comma-separated string",
            ))
        }
    };
    keys.retain(|k| !k.is_empty());
    Ok(keys)
}
