//! The sink's configuration: parsed once from JSON, with the names of Fluentd's
//! aws-fluent-plugin-kinesis, and validated completely before a sink exists.
//!
//! Every error names the field and the rule it broke ([`ConfigError`]); no error ever quotes a
//! secret's value.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

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

const DEFAULT_RETRIES: u32 = 8;
const MAX_RETRIES: u64 = 1000;
const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(300);
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
const DEFAULT_PUT_DEADLINE: Duration = Duration::from_secs(300);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_CONCURRENT_REQUESTS: u64 = 64;

/// A configuration the sink refuses: which field, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, as a dotted path for nested ones (`format.type`); empty for the document.
    pub field: String,
    /// The rule that was broken, never containing a secret's value.
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A secret string. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(** redacted **)")
    }
}

/// Static AWS credentials and where they came from.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// `config` or `environment`.
    pub source: &'static str,
}

/// How a record is turned into bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// End each record with `\n` (Fluentd's `add_newline`, default true; `chomp_record` turns it off).
    pub newline: bool,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub stream_name: String,
    pub region: String,
    /// `scheme://authority` of the Kinesis endpoint, no trailing slash.
    pub endpoint: String,
    pub credentials: StaticCredentials,
    /// The record field whose value is the partition key; `None` means a random key per record.
    pub partition_key: Option<String>,
    pub format: Format,
    pub max_record_size: usize,
    pub batch_request_max_count: usize,
    pub batch_request_max_size: usize,
    pub retries_on_batch_request: u32,
    pub reset_backoff_if_success: bool,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub put_deadline: Duration,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
}

/// Settings that belong to other parts of a deployment or to later versions.
const NOT_SUPPORTED_YET: &[(&str, &str)] = &[
    (
        "assume_role_credentials",
        "AssumeRole credentials are not supported yet; give static keys (aws_key_id, aws_sec_key) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
    (
        "process_credentials",
        "process credentials are not supported yet; give static keys (aws_key_id, aws_sec_key) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
    (
        "aws_iam_retries",
        "EC2 instance-profile credentials, which this setting tunes, are not supported yet",
    ),
];

impl Config {
    /// Parse and validate a JSON configuration. `env` looks up environment variables (region and
    /// credential fallbacks).
    pub fn from_json(text: &str, env: &mut dyn FnMut(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("", format!("the configuration is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ConfigError::new("", "the configuration must be a JSON object"));
        };
        let mut fields = Fields::new("", map);

        for (name, why) in NOT_SUPPORTED_YET {
            if fields.map.contains_key(*name) {
                return Err(ConfigError::new(*name, *why));
            }
        }

        let stream_name = fields
            .string("stream_name")?
            .ok_or_else(|| ConfigError::new("stream_name", "is required"))?;
        check_stream_name(&stream_name)?;

        let region = match fields.string("region")? {
            Some(r) => r,
            None => env_nonempty(env, "AWS_REGION")
                .or_else(|| env_nonempty(env, "AWS_DEFAULT_REGION"))
                .ok_or_else(|| {
                    ConfigError::new(
                        "region",
                        "is required: set it, or AWS_REGION or AWS_DEFAULT_REGION in the environment",
                    )
                })?,
        };
        check_region(&region)?;

        let endpoint = match fields.string("endpoint")? {
            Some(url) => parse_endpoint(&url)?,
            None => default_endpoint(&region),
        };

        let credentials = credentials(&mut fields, env)?;

        let partition_key = fields.string("partition_key")?;
        if partition_key.as_deref() == Some("") {
            return Err(ConfigError::new(
                "partition_key",
                "must name a record field; leave it out for random keys",
            ));
        }

        let chomp_record = fields.boolean("chomp_record")?.unwrap_or(false);
        let mut format = Format {
            newline: !chomp_record,
        };
        if let Some(section) = fields.object("format")? {
            let mut f = Fields::new("format", section);
            let kind = f.string("type")?.unwrap_or_else(|| "json".to_string());
            match kind.as_str() {
                "json" => {}
                "ltsv" | "csv" | "single_value" | "msgpack" | "out_file" | "hash" => {
                    return Err(ConfigError::new(
                        "format.type",
                        format!("{kind:?} is not supported yet; only \"json\" is"),
                    ))
                }
                other => {
                    return Err(ConfigError::new(
                        "format.type",
                        format!("unknown format {other:?}; the supported format is \"json\""),
                    ))
                }
            }
            if let Some(add_newline) = f.boolean("add_newline")? {
                format.newline = add_newline && !chomp_record;
            }
            f.finish()?;
        }

        let max_record_size = fields
            .integer("max_record_size", 1, MAX_RECORD_BYTES as u64)?
            .map_or(DEFAULT_RECORD_BYTES, |v| v as usize);
        let batch_request_max_count = fields
            .integer("batch_request_max_count", 1, MAX_RECORDS_PER_REQUEST as u64)?
            .map_or(MAX_RECORDS_PER_REQUEST, |v| v as usize);
        let batch_request_max_size = fields
            .integer("batch_request_max_size", 1, MAX_REQUEST_BYTES as u64)?
            .map_or(DEFAULT_REQUEST_BYTES, |v| v as usize);
        if max_record_size > batch_request_max_size {
            return Err(ConfigError::new(
                "max_record_size",
                format!(
                    "{max_record_size} exceeds batch_request_max_size ({batch_request_max_size}): such a record could never be sent"
                ),
            ));
        }
        let retries_on_batch_request = fields
            .integer("retries_on_batch_request", 0, MAX_RETRIES)?
            .map_or(DEFAULT_RETRIES, |v| v as u32);
        let reset_backoff_if_success = fields.boolean("reset_backoff_if_success")?.unwrap_or(true);
        let retry_base_delay = fields
            .seconds("retry_base_delay", 0.0, 60.0)?
            .unwrap_or(DEFAULT_BASE_DELAY);
        let retry_max_delay = fields
            .seconds("retry_max_delay", 0.0, 3600.0)?
            .unwrap_or(DEFAULT_MAX_DELAY);
        let put_deadline = fields
            .seconds("put_deadline", 0.001, 86400.0)?
            .unwrap_or(DEFAULT_PUT_DEADLINE);
        let request_timeout = fields
            .seconds("request_timeout", 0.001, 3600.0)?
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let max_concurrent_requests = fields
            .integer("max_concurrent_requests", 1, MAX_CONCURRENT_REQUESTS)?
            .map_or(1, |v| v as usize);

        // The host's buffer settings travel in the same file; the component only checks their shape.
        fields.object("buffer")?;

        fields.finish()?;

        Ok(Config {
            stream_name,
            region,
            endpoint,
            credentials,
            partition_key,
            format,
            max_record_size,
            batch_request_max_count,
            batch_request_max_size,
            retries_on_batch_request,
            reset_backoff_if_success,
            retry_base_delay,
            retry_max_delay,
            put_deadline,
            request_timeout,
            max_concurrent_requests,
        })
    }
}

fn env_nonempty(env: &mut dyn FnMut(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

fn credentials(
    fields: &mut Fields,
    env: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<StaticCredentials, ConfigError> {
    let key_id = fields.secret_string("aws_key_id")?;
    let secret = fields.secret_string("aws_sec_key")?;
    let token = fields.secret_string("aws_ses_token")?;
    match (key_id, secret) {
        (Some(access_key_id), Some(secret)) => Ok(StaticCredentials {
            access_key_id,
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
            source: "config",
        }),
        (Some(_), None) => Err(ConfigError::new(
            "aws_sec_key",
            "is required when aws_key_id is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "aws_key_id",
            "is required when aws_sec_key is set",
        )),
        (None, None) => {
            if token.is_some() {
                return Err(ConfigError::new(
                    "aws_ses_token",
                    "needs aws_key_id and aws_sec_key beside it",
                ));
            }
            match (
                env_nonempty(env, "AWS_ACCESS_KEY_ID"),
                env_nonempty(env, "AWS_SECRET_ACCESS_KEY"),
            ) {
                (Some(access_key_id), Some(secret)) => Ok(StaticCredentials {
                    access_key_id,
                    secret_access_key: Secret::new(secret),
                    session_token: env_nonempty(env, "AWS_SESSION_TOKEN").map(Secret::new),
                    source: "environment",
                }),
                _ => Err(ConfigError::new(
                    "aws_key_id",
                    "no credentials: set aws_key_id and aws_sec_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
                )),
            }
        }
    }
}

fn check_stream_name(name: &str) -> Result<(), ConfigError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_STREAM_NAME_CHARS {
        return Err(ConfigError::new(
            "stream_name",
            format!("must be 1 to {MAX_STREAM_NAME_CHARS} characters, got {chars}"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ConfigError::new(
            "stream_name",
            format!("may hold only letters, digits, '_', '.' and '-'; found {bad:?}"),
        ));
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "region",
            format!("{region:?} is not a region name like us-east-1"),
        ))
    }
}

/// The public endpoint of Kinesis in `region`, with the DNS suffix of its partition.
pub fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-isof-") {
        "csp.hci.ic.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else if region.starts_with("eu-isoe-") {
        "cloud.adc-e.uk"
    } else {
        "amazonaws.com"
    };
    format!("https://kinesis.{region}.{suffix}")
}

fn parse_endpoint(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new("endpoint", format!("{url:?} {why}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("must not carry user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must have no path or query; Kinesis is served at /"));
    }
    Ok(format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        authority.as_str()
    ))
}

/// A JSON object being read field by field, so that what is left at the end is unknown.
struct Fields {
    prefix: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    fn new(prefix: &'static str, map: Map<String, Value>) -> Self {
        Fields { prefix, map }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ConfigError::new(
                self.path(name),
                format!("must be a string, got {}", json_kind(&other)),
            )),
        }
    }

    /// A non-empty string. Errors never show the value (neither does [`Fields::string`]).
    fn secret_string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.string(name)? {
            Some(s) if s.is_empty() => Err(ConfigError::new(self.path(name), "must not be empty")),
            other => Ok(other),
        }
    }

    fn object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(ConfigError::new(
                self.path(name),
                format!("must be an object, got {}", json_kind(&other)),
            )),
        }
    }

    /// A boolean, also accepted as the strings "true" and "false" (YAML-rendered configs).
    fn boolean(&mut self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(ConfigError::new(
                self.path(name),
                format!("must be true or false, got {}", json_kind(&other)),
            )),
        }
    }

    /// A whole number in `min..=max`, also accepted as a numeric string.
    fn integer(&mut self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let number = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(n) = number else {
            return Err(ConfigError::new(
                self.path(name),
                format!(
                    "must be a whole number from {min} to {max}, got {}",
                    shown(&value)
                ),
            ));
        };
        if n < min || n > max {
            let limit = if n > max {
                format!("exceeds the limit of {max}")
            } else {
                format!("is below the minimum of {min}")
            };
            return Err(ConfigError::new(self.path(name), format!("{n} {limit}")));
        }
        Ok(Some(n))
    }

    /// A duration in seconds (fractions allowed) in `min..=max`.
    fn seconds(&mut self, name: &str, min: f64, max: f64) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let number = match &value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(s) if s.is_finite() && s >= min && s <= max => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(ConfigError::new(
                self.path(name),
                format!(
                    "must be a number of seconds from {min} to {max}, got {}",
                    shown(&value)
                ),
            )),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        let mut unknown: Vec<&String> = self.map.keys().collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let field = self.path(unknown[0]);
        let names: Vec<String> = unknown.iter().map(|k| self.path(k)).collect();
        Err(ConfigError::new(
            field,
            format!("unknown setting (unknown: {})", names.join(", ")),
        ))
    }
}

/// How a JSON value is named in messages: "a string", "an array", …
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A non-secret value, shown in an error message (shortened).
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json, &mut no_env)
    }

    const BASE: &str =
        r#""stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE""#;

    fn with(extra: &str) -> Result<Config, ConfigError> {
        if extra.is_empty() {
            parse(&format!("{{{BASE}}}"))
        } else {
            parse(&format!("{{{BASE},{extra}}}"))
        }
    }

    fn err(extra: &str) -> ConfigError {
        with(extra).expect_err("config should be refused")
    }

    #[test]
    fn defaults_follow_the_seed_and_the_api_limits() {
        let c = with("").unwrap();
        assert_eq!(c.endpoint, "https://kinesis.us-east-1.amazonaws.com");
        assert_eq!(c.batch_request_max_count, 500);
        assert_eq!(c.batch_request_max_size, 5 * 1024 * 1024);
        assert_eq!(c.max_record_size, 1024 * 1024);
        assert_eq!(c.retries_on_batch_request, 8);
        assert!(c.reset_backoff_if_success);
        assert_eq!(c.retry_base_delay, Duration::from_millis(300));
        assert!(c.format.newline);
        assert_eq!(c.partition_key, None);
        assert_eq!(c.credentials.source, "config");
        assert_eq!(c.max_concurrent_requests, 1);
        assert_eq!(c.request_timeout, Duration::from_secs(60));
    }

    #[test]
    fn partitions_get_their_dns_suffix() {
        assert_eq!(
            default_endpoint("cn-north-1"),
            "https://kinesis.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            default_endpoint("us-gov-west-1"),
            "https://kinesis.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            default_endpoint("us-iso-east-1"),
            "https://kinesis.us-iso-east-1.c2s.ic.gov"
        );
        assert_eq!(
            default_endpoint("us-isob-east-1"),
            "https://kinesis.us-isob-east-1.sc2s.sgov.gov"
        );
    }

    #[test]
    fn limits_are_named_in_errors() {
        let e = err(r#""batch_request_max_count":600"#);
        assert_eq!(e.field, "batch_request_max_count");
        assert!(e.message.contains("600 exceeds the limit of 500"), "{e}");
        let e = err(r#""batch_request_max_size":20000000"#);
        assert!(e.message.contains("exceeds the limit of 10485760"), "{e}");
        let e = err(r#""max_record_size":0"#);
        assert!(e.message.contains("below the minimum of 1"), "{e}");
        let e = err(r#""max_record_size":2000000,"batch_request_max_size":1000000"#);
        assert_eq!(e.field, "max_record_size");
        assert_eq!(
            err(r#""batch_request_max_count":"many""#).field,
            "batch_request_max_count"
        );
        assert_eq!(
            err(r#""retries_on_batch_request":-1"#).field,
            "retries_on_batch_request"
        );
        assert_eq!(err(r#""retry_base_delay":-1"#).field, "retry_base_delay");
        assert_eq!(err(r#""put_deadline":0"#).field, "put_deadline");
        assert_eq!(err(r#""request_timeout":0"#).field, "request_timeout");
        assert_eq!(
            err(r#""max_concurrent_requests":0"#).field,
            "max_concurrent_requests"
        );
        assert_eq!(
            err(r#""reset_backoff_if_success":"yes""#).field,
            "reset_backoff_if_success"
        );
    }

    #[test]
    fn numeric_strings_are_accepted_as_yaml_renders_them() {
        let c = with(
            r#""batch_request_max_count":"100","reset_backoff_if_success":"false","retry_base_delay":"0.01""#,
        )
        .unwrap();
        assert_eq!(c.batch_request_max_count, 100);
        assert!(!c.reset_backoff_if_success);
        assert_eq!(c.retry_base_delay, Duration::from_millis(10));
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err(r#""stream":"x","zz":1"#);
        assert_eq!(e.field, "stream");
        assert!(e.message.contains("stream, zz"), "{e}");
        let e = err(r#""format":{"type":"json","colour":"red"}"#);
        assert_eq!(e.field, "format.colour");
    }

    #[test]
    fn stream_name_and_region_are_checked() {
        assert_eq!(
            parse(r#"{"region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"}"#)
                .unwrap_err()
                .field,
            "stream_name"
        );
        let e = parse(r#"{"stream_name":"a b","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"}"#)
            .unwrap_err();
        assert_eq!(e.field, "stream_name");
        let e = parse(&format!(
            r#"{{"stream_name":"{}","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"}}"#,
            "x".repeat(129)
        ))
        .unwrap_err();
        assert!(e.message.contains("1 to 128"), "{e}");
        let e = parse(r#"{"stream_name":"s","aws_key_id":"a","aws_sec_key":"b"}"#).unwrap_err();
        assert_eq!(e.field, "region");
        let e = parse(r#"{"stream_name":"s","region":"US East","aws_key_id":"a","aws_sec_key":"b"}"#)
            .unwrap_err();
        assert_eq!(e.field, "region");
    }

    #[test]
    fn region_and_credentials_fall_back_to_the_environment() {
        let mut env = |name: &str| match name {
            "AWS_DEFAULT_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            "AWS_SESSION_TOKEN" => Some("envtoken".to_string()),
            _ => None,
        };
        let c = Config::from_json(r#"{"stream_name":"s"}"#, &mut env).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.credentials.access_key_id, "AKIDENV");
        assert_eq!(c.credentials.source, "environment");
        assert_eq!(
            c.credentials.session_token.as_ref().map(Secret::expose),
            Some("envtoken")
        );
        let mut env2 = |name: &str| {
            (name == "AWS_REGION")
                .then(|| "ap-south-1".to_string())
                .or_else(|| env(name))
        };
        assert_eq!(
            Config::from_json(r#"{"stream_name":"s"}"#, &mut env2)
                .unwrap()
                .region,
            "ap-south-1"
        );
    }

    #[test]
    fn missing_or_partial_credentials_are_clear_errors() {
        let e = parse(r#"{"stream_name":"s","region":"us-east-1"}"#).unwrap_err();
        assert_eq!(e.field, "aws_key_id");
        assert!(e.message.contains("no credentials"), "{e}");
        let e = parse(r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID"}"#).unwrap_err();
        assert_eq!(e.field, "aws_sec_key");
        let e = parse(r#"{"stream_name":"s","region":"us-east-1","aws_sec_key":"SECRETVALUE"}"#).unwrap_err();
        assert_eq!(e.field, "aws_key_id");
        assert!(!e.to_string().contains("SECRETVALUE"));
        let e =
            parse(r#"{"stream_name":"s","region":"us-east-1","aws_ses_token":"TOKENVALUE"}"#).unwrap_err();
        assert_eq!(e.field, "aws_ses_token");
        assert!(!e.to_string().contains("TOKENVALUE"));
    }

    #[test]
    fn later_credential_sources_are_refused_not_ignored() {
        for field in [
            "assume_role_credentials",
            "process_credentials",
            "aws_iam_retries",
        ] {
            let e = err(&format!(r#""{field}":{{}}"#));
            assert_eq!(e.field, field);
            assert!(e.message.contains("not supported yet"), "{e}");
        }
    }

    #[test]
    fn formats_other_than_json_are_refused() {
        let e = err(r#""format":{"type":"csv"}"#);
        assert_eq!(e.field, "format.type");
        assert!(e.message.contains("not supported yet"), "{e}");
        let e = err(r#""format":{"type":"yaml"}"#);
        assert!(e.message.contains("unknown format"), "{e}");
        assert!(!with(r#""chomp_record":true"#).unwrap().format.newline);
        assert!(
            !with(r#""format":{"type":"json","add_newline":false}"#)
                .unwrap()
                .format
                .newline
        );
        assert!(with(r#""format":{"type":"json"}"#).unwrap().format.newline);
    }

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(
            with(r#""endpoint":"http://127.0.0.1:4567""#).unwrap().endpoint,
            "http://127.0.0.1:4567"
        );
        assert_eq!(
            with(r#""endpoint":"https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com/""#)
                .unwrap()
                .endpoint,
            "https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com"
        );
        for bad in [
            "ftp://x",
            "localhost:4567",
            "http://127.0.0.1:4567/path",
            "http://u:p@host",
        ] {
            assert_eq!(err(&format!(r#""endpoint":"{bad}""#)).field, "endpoint", "{bad}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let c = with(r#""aws_ses_token":"TOKENVALUE""#).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("SECRETVALUE") && !debug.contains("TOKENVALUE"),
            "{debug}"
        );
        let e = err(r#""aws_sec_key":7"#);
        assert_eq!(e.field, "aws_sec_key");
        assert!(e.message.contains("must be a string"));
    }

    #[test]
    fn buffer_is_the_hosts_but_must_be_an_object() {
        assert!(with(r#""buffer":{"chunk_limit_records":100}"#).is_ok());
        assert_eq!(err(r#""buffer":3"#).field, "buffer");
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert!(parse("[1]").unwrap_err().message.contains("JSON object"));
        assert!(parse("{").unwrap_err().message.contains("not valid JSON"));
    }
}
