//! The `buffer` section (Fluentd's names): how a host that holds records (`kinesis-ship`) cuts
//! them into chunks. The component itself holds nothing between calls; hosts read this.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;

/// The `buffer` settings our hosts honour.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferSettings {
    /// Flush a chunk when it holds this many records (`chunk_limit_records`, default: no limit).
    pub chunk_limit_records: Option<usize>,
    /// Flush a chunk when its records reach this many bytes (`chunk_limit_size`, default 8 MiB).
    pub chunk_limit_size: usize,
    /// Flush a chunk this long after its first record arrived (`flush_interval`, default 60 s).
    pub flush_interval: Duration,
    /// At most this many bytes buffered (`total_limit_size`, default 512 MiB); must be at least
    /// `chunk_limit_size`. `kinesis-ship` holds at most `flush_thread_count` + 1 chunks;
    /// `kinesis-ship serve` holds at most this many bytes of request bodies at once.
    pub total_limit_size: usize,
    /// What happens past `total_limit_size`. `kinesis-ship` reads its input only as fast as it
    /// ships, so it never overflows and always behaves as `block`; `kinesis-ship serve` answers
    /// 503 (`throw_exception`, and `drop_oldest_chunk`: it holds no queued chunk to drop, only
    /// requests being shipped) or makes the request wait for room (`block`).
    pub overflow_action: Overflow,
    /// Chunks shipped at once (`flush_thread_count`, default 1, at most
    /// [`MAX_FLUSH_THREADS`]): `kinesis-ship` runs this many instances side by side, each
    /// putting one chunk. Above 1 chunks may be stored out of input order (as in Fluentd), so
    /// `preserve_order` needs 1. `kinesis-ship serve` ships requests concurrently anyway (its
    /// `--max-requests`).
    pub flush_thread_count: usize,
    /// How long a door keeps asking for records that may still be stored (`retry_forever`,
    /// `retry_max_times`, `retry_timeout`): see [`RetryBound`].
    pub retry: RetryBound,
}

/// How long a door keeps a record that failed in a way a later attempt can fix (Fluentd's
/// `retry_forever`, `retry_max_times` and `retry_timeout`, applied to the records a put could
/// not store, not to whole chunks): while it allows, the door asks its sender to retry (or
/// retries itself) and sends only what is not stored; after, what is left is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBound {
    /// `retry_forever` (default false): never give up.
    pub forever: bool,
    /// `retry_max_times` (default: no limit): at most this many retries after the first attempt.
    pub max_times: Option<u32>,
    /// `retry_timeout` (default 72h, Fluentd's): no retry starts this long after the first
    /// attempt.
    pub timeout: Duration,
}

/// Fluentd's default `retry_timeout`.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(72 * 3600);

impl Default for RetryBound {
    fn default() -> Self {
        RetryBound {
            forever: false,
            max_times: None,
            timeout: DEFAULT_RETRY_TIMEOUT,
        }
    }
}

impl RetryBound {
    /// Whether another attempt may follow `attempts` attempts (the first one included) made
    /// over `since_first`.
    pub fn allows(&self, attempts: u32, since_first: Duration) -> bool {
        self.forever || (self.max_times.is_none_or(|max| attempts <= max) && since_first < self.timeout)
    }

    /// Why no more attempts follow, for the records given up.
    pub fn exhausted_reason(&self, attempts: u32) -> String {
        match self.max_times {
            Some(max) if attempts > max => format!("gave up after {max} retries (buffer.retry_max_times)"),
            _ => format!(
                "gave up: buffer.retry_timeout of {:?} has passed since the first attempt",
                self.timeout
            ),
        }
    }
}

/// The most `flush_thread_count` takes.
pub const MAX_FLUSH_THREADS: u64 = 16;

/// Fluentd's `overflow_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    ThrowException,
    Block,
    DropOldestChunk,
}

impl Default for BufferSettings {
    fn default() -> Self {
        BufferSettings {
            chunk_limit_records: None,
            chunk_limit_size: 8 * 1024 * 1024,
            flush_interval: Duration::from_secs(60),
            total_limit_size: 512 * 1024 * 1024,
            overflow_action: Overflow::ThrowException,
            flush_thread_count: 1,
            retry: RetryBound::default(),
        }
    }
}

/// Every other key of Fluentd's `<buffer>` section (its output plugin base, `Buffer` and the
/// `file`/`file_single` buffers) and of the logging-operator's `Buffer` type: accepted, and named
/// in a warning, since our hosts have no use for them.
const FLUENTD_ONLY_BUFFER_KEYS: &[&str] = &[
    // The operator's own keys beside Fluentd's.
    "type",
    "@type",
    "@id",
    "@log_level",
    "disabled",
    "tags",
    "chunk_keys",
    // Chunking by time and queueing.
    "timekey",
    "timekey_wait",
    "timekey_use_utc",
    "timekey_zone",
    "chunk_full_threshold",
    "queue_limit_length",
    "queued_chunks_limit_size",
    "compress",
    // Flushing threads.
    "flush_mode",
    "flush_thread_interval",
    "flush_thread_burst_interval",
    "flush_at_shutdown",
    "delayed_commit_timeout",
    // Retries (the sink's own retry settings apply to each put; retry_forever, retry_max_times
    // and retry_timeout bound the door's, see RetryBound).
    "retry_secondary_threshold",
    "retry_type",
    "retry_wait",
    "retry_max_interval",
    "retry_exponential_backoff_base",
    "retry_randomize",
    "disable_chunk_backup",
    // File buffers.
    "path",
    "path_suffix",
    "file_permission",
    "dir_permission",
    "calc_num_records",
    "chunk_format",
];

/// The settings this section applies.
const APPLIED: &[&str] = &[
    "chunk_limit_records",
    "chunk_limit_size",
    "total_limit_size",
    "flush_interval",
    "overflow_action",
    "flush_thread_count",
    "retry_forever",
    "retry_max_times",
    "retry_timeout",
];

/// A number or a string, as the text Fluentd's notation is read from (lower case).
fn notation(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_ascii_lowercase()),
        _ => None,
    }
}

/// A size in Fluentd's notation: a number with an optional `k`, `m`, `g` or `t` suffix
/// (1024-based).
pub fn parse_size(field: &str, v: &Value) -> Result<usize, ConfigError> {
    let bad = |why: String| ConfigError::new(field, why);
    let text = notation(v).ok_or_else(|| bad("must be a size like 8m or 1048576".into()))?;
    let text = text.trim_end_matches('b');
    let (digits, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        _ => return Err(bad(format!("unknown size unit {unit:?} (use k, m, g or t)"))),
    };
    let number: f64 = digits
        .trim()
        .parse()
        .map_err(|_| bad(format!("{v} is not a size like 8m or 1048576")))?;
    if !(number.is_finite() && number > 0.0) {
        return Err(bad("must be above zero".into()));
    }
    Ok((number * multiplier) as usize)
}

/// A duration in Fluentd's notation: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_duration(field: &str, v: &Value) -> Result<Duration, ConfigError> {
    let bad = |why: String| ConfigError::new(field, why);
    let text = notation(v).ok_or_else(|| bad("must be a duration like 60s or 1m".into()))?;
    let (digits, factor) = match text.chars().last() {
        Some('s') => (&text[..text.len() - 1], 1.0),
        Some('m') => (&text[..text.len() - 1], 60.0),
        Some('h') => (&text[..text.len() - 1], 3600.0),
        Some('d') => (&text[..text.len() - 1], 86400.0),
        _ => (text.as_str(), 1.0),
    };
    let n: f64 = digits
        .trim()
        .parse()
        .map_err(|_| bad(format!("{v} is not a duration like 60s or 1m")))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(bad("must not be negative".into()));
    }
    Ok(Duration::from_secs_f64(n * factor))
}

impl BufferSettings {
    /// Read a `buffer` section; returns the settings and a warning for each Fluentd-only key.
    pub fn read(section: Option<Map<String, Value>>) -> Result<(BufferSettings, Vec<String>), ConfigError> {
        let mut settings = BufferSettings::default();
        let mut warnings = Vec::new();
        let Some(map) = section else {
            return Ok((settings, warnings));
        };
        for (key, value) in &map {
            let field = format!("buffer.{key}");
            match key.as_str() {
                "chunk_limit_records" => {
                    let n = value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ConfigError::new(&field, "must be a whole number above zero"))?;
                    settings.chunk_limit_records = Some(n as usize);
                }
                "flush_thread_count" => {
                    let n = value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|n| (1..=MAX_FLUSH_THREADS).contains(n))
                        .ok_or_else(|| {
                            ConfigError::new(
                                &field,
                                format!("must be a whole number from 1 to {MAX_FLUSH_THREADS}"),
                            )
                        })?;
                    settings.flush_thread_count = n as usize;
                }
                "retry_forever" => {
                    settings.retry.forever = match value {
                        Value::Bool(b) => *b,
                        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => true,
                        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => false,
                        _ => return Err(ConfigError::new(&field, "must be true or false")),
                    }
                }
                "retry_max_times" => {
                    let n = value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|n| *n <= u64::from(u32::MAX))
                        .ok_or_else(|| ConfigError::new(&field, "must be a whole number, 0 or more"))?;
                    settings.retry.max_times = Some(n as u32);
                }
                "retry_timeout" => settings.retry.timeout = parse_duration(&field, value)?,
                "chunk_limit_size" => settings.chunk_limit_size = parse_size(&field, value)?,
                "total_limit_size" => settings.total_limit_size = parse_size(&field, value)?,
                "flush_interval" => settings.flush_interval = parse_duration(&field, value)?,
                "overflow_action" => {
                    settings.overflow_action = match value.as_str().unwrap_or_default() {
                        "throw_exception" => Overflow::ThrowException,
                        "block" => Overflow::Block,
                        "drop_oldest_chunk" => Overflow::DropOldestChunk,
                        _ => {
                            return Err(ConfigError::new(
                                field,
                                "must be throw_exception, block or drop_oldest_chunk",
                            ))
                        }
                    }
                }
                k if FLUENTD_ONLY_BUFFER_KEYS.contains(&k) => warnings.push(format!(
                    "{field} is a Fluentd setting that kinesis-output's hosts do not apply"
                )),
                k => {
                    let known = APPLIED.iter().chain(FLUENTD_ONLY_BUFFER_KEYS).copied();
                    let message = match super::fields::nearest(k, known) {
                        Some(near) => format!("unknown setting; did you mean buffer.{near}?"),
                        None => "unknown setting".to_string(),
                    };
                    return Err(ConfigError::new(field, message));
                }
            }
        }
        if settings.total_limit_size < settings.chunk_limit_size {
            return Err(ConfigError::new(
                "buffer.total_limit_size",
                format!(
                    "{} is below chunk_limit_size ({})",
                    settings.total_limit_size, settings.chunk_limit_size
                ),
            ));
        }
        Ok((settings, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<(BufferSettings, Vec<String>), ConfigError> {
        let Value::Object(map) = v else { unreachable!() };
        BufferSettings::read(Some(map))
    }

    #[test]
    fn sizes_and_durations_read_like_fluentd() {
        assert_eq!(parse_size("f", &json!("8m")).unwrap(), 8 * 1024 * 1024);
        assert_eq!(parse_size("f", &json!("256k")).unwrap(), 256 * 1024);
        assert_eq!(parse_size("f", &json!("1MB")).unwrap(), 1024 * 1024);
        assert_eq!(parse_size("f", &json!(1000)).unwrap(), 1000);
        assert!(parse_size("f", &json!("8x")).is_err());
        assert!(parse_size("f", &json!("0")).is_err());
        assert_eq!(
            parse_duration("f", &json!("60s")).unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_duration("f", &json!("2m")).unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(
            parse_duration("f", &json!(0.5)).unwrap(),
            Duration::from_millis(500)
        );
        assert!(parse_duration("f", &json!("soon")).is_err());
    }

    /// Every key of the logging-operator's `Buffer` type (pkg/sdk/logging/model/output/buffer.go)
    /// and of Fluentd's `<buffer>` section is accepted: applied, or named in a warning.
    #[test]
    fn every_operator_and_fluentd_buffer_key_is_accepted() {
        let operator = [
            "disabled",
            "type",
            "tags",
            "path",
            "chunk_limit_size",
            "chunk_limit_records",
            "total_limit_size",
            "queue_limit_length",
            "chunk_full_threshold",
            "queued_chunks_limit_size",
            "compress",
            "flush_at_shutdown",
            "flush_mode",
            "flush_interval",
            "flush_thread_count",
            "flush_thread_interval",
            "flush_thread_burst_interval",
            "delayed_commit_timeout",
            "overflow_action",
            "retry_timeout",
            "retry_forever",
            "retry_max_times",
            "retry_secondary_threshold",
            "retry_type",
            "retry_wait",
            "retry_exponential_backoff_base",
            "retry_max_interval",
            "retry_randomize",
            "disable_chunk_backup",
            "timekey",
            "timekey_wait",
            "timekey_use_utc",
            "timekey_zone",
        ];
        let fluentd = [
            "@type",
            "@id",
            "@log_level",
            "chunk_keys",
            "path_suffix",
            "file_permission",
            "dir_permission",
            "calc_num_records",
            "chunk_format",
        ];
        for key in operator.iter().chain(&fluentd) {
            let value = match *key {
                "chunk_limit_size" | "total_limit_size" => json!("8m"),
                "chunk_limit_records" => json!(10),
                "flush_interval" => json!("5s"),
                "overflow_action" => json!("block"),
                "flush_thread_count" => json!(2),
                "retry_forever" => json!(true),
                "retry_max_times" => json!(5),
                "retry_timeout" => json!("1h"),
                _ => json!("x"),
            };
            let (_, warnings) = read(json!({ *key: value })).unwrap_or_else(|e| panic!("{key}: {e}"));
            let applied = APPLIED.contains(key);
            assert_eq!(warnings.is_empty(), applied, "{key}: {warnings:?}");
        }
    }

    #[test]
    fn buffer_settings_are_checked_and_fluentd_only_keys_named() {
        let (b, w) = read(json!({
            "chunk_limit_records": 100, "chunk_limit_size": "1m", "flush_interval": "5s",
            "timekey": "10m", "overflow_action": "block"
        }))
        .unwrap();
        assert_eq!(b.chunk_limit_records, Some(100));
        assert_eq!(b.flush_thread_count, 1);
        assert_eq!(
            read(json!({"flush_thread_count": "4"}))
                .unwrap()
                .0
                .flush_thread_count,
            4
        );
        for bad in [json!(0), json!(17), json!("many")] {
            let e = read(json!({ "flush_thread_count": bad })).unwrap_err();
            assert_eq!(e.field, "buffer.flush_thread_count");
            assert!(e.message.contains("from 1 to 16"), "{e}");
        }
        assert_eq!(b.chunk_limit_size, 1024 * 1024);
        assert_eq!(b.flush_interval, Duration::from_secs(5));
        assert_eq!(
            w,
            vec!["buffer.timekey is a Fluentd setting that kinesis-output's hosts do not apply"]
        );
        let e = read(json!({"chunk_limit_recs": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "buffer.chunk_limit_recs: unknown setting; did you mean buffer.chunk_limit_records?"
        );
        let e = read(json!({"overflow_action": "panic"})).unwrap_err();
        assert_eq!(e.field, "buffer.overflow_action");
        let e = read(json!({"chunk_limit_size": "8m", "total_limit_size": "1m"})).unwrap_err();
        assert_eq!(e.field, "buffer.total_limit_size");
        assert_eq!(BufferSettings::read(None).unwrap().0, BufferSettings::default());
    }

    #[test]
    fn the_retry_bound_reads_fluentd_names_and_counts_attempts() {
        let b = read(json!({"retry_max_times": "2", "retry_timeout": "1h"}))
            .unwrap()
            .0
            .retry;
        let hour = Duration::from_secs(3600);
        assert!(b.allows(1, Duration::ZERO) && b.allows(2, Duration::ZERO));
        assert!(
            !b.allows(3, Duration::ZERO),
            "two retries after the first attempt"
        );
        assert!(!b.allows(1, hour), "retry_timeout passed");
        assert!(b.exhausted_reason(3).contains("after 2 retries"));
        assert!(b.exhausted_reason(1).contains("retry_timeout"));
        let forever = read(json!({"retry_forever": "true", "retry_max_times": 0}))
            .unwrap()
            .0
            .retry;
        assert!(forever.allows(1_000_000, hour * 1000));
        let default = RetryBound::default();
        assert!(default.allows(10_000, hour * 71) && !default.allows(1, hour * 72));
        for (key, bad) in [("retry_forever", json!("maybe")), ("retry_max_times", json!(-1))] {
            assert_eq!(
                read(json!({ key: bad })).unwrap_err().field,
                format!("buffer.{key}")
            );
        }
    }
}
