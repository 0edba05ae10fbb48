//! The sink's configuration: parsed once from JSON, with the names of Fluentd's
//! aws-fluent-plugin-kinesis, and validated completely before a sink exists.
//!
//! Every error names the field and the rule it broke ([`ConfigError`]); no error ever quotes a
//! secret's value.

use std::time::Duration;

use serde_json::Value;

use super::buffer::BufferSettings;
use super::chain::{profile_region, profile_value};
use super::credentials::{assume_role, credentials, CredentialConfig};
use super::endpoint::{check_region, parse_endpoint};
use super::error::ConfigError;
use super::fields::Fields;
use super::front::{FrontSettings, PROXY_PUT_DEADLINE};
use super::secret::SecretSources;
use super::stream_arn::StreamArn;
use crate::auth::provider::AssumeRole;
use crate::kinesis::limits::MAX_PARTITION_KEY_CHARS;
use crate::kinesis::region;
use crate::kinesis::Service;
use crate::platform::{env_nonempty, Environment};
use crate::shaping::accessor::Accessor;
use crate::shaping::format::{Formatter, TimeStyle};
use crate::shaping::record::{Compression, Inject, Shape};
use crate::shaping::stream_name::StreamName;
use crate::shaping::timefmt::Zone;

const DEFAULT_RETRIES: u32 = 8;
const MAX_RETRIES: u64 = 1000;
const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(300);
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
const DEFAULT_PUT_DEADLINE: Duration = Duration::from_secs(300);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_CONCURRENT_REQUESTS: u64 = 64;
const MAX_IAM_RETRIES: u64 = 20;

/// Every top-level setting, in the README's order. Hosts that take one environment variable per
/// setting (the proxy and command worlds) look these names up.
pub const SETTINGS: &[&str] = &[
    "stream_name",
    "delivery_stream_name",
    "stream_arn",
    "allowed_streams",
    "region",
    "endpoint",
    "use_fips_endpoint",
    "use_dualstack_endpoint",
    "partition_key",
    "aws_key_id",
    "aws_sec_key",
    "aws_ses_token",
    "secrets_dir",
    "aws_iam_retries",
    "imds_v1_fallback",
    "assume_role_credentials",
    "process_credentials",
    "format",
    "inject",
    "chomp_record",
    "append_new_line",
    "data_key",
    "compression",
    "log_truncate_max_size",
    "aggregate",
    "fixed_partition_key",
    "max_record_size",
    "batch_request_max_count",
    "batch_request_max_size",
    "retries_on_batch_request",
    "drop_failed_records_after_batch_request_retries",
    "reset_backoff_if_success",
    "retry_base_delay",
    "retry_max_delay",
    "put_deadline",
    "request_timeout",
    "max_concurrent_requests",
    "preserve_order",
    "time_keys",
    "buffer",
    "proxy",
    "slow_flush_log_threshold",
];

/// `allowed_streams`: stream names, as a list or one comma-separated string; each a valid name.
fn allowed_streams(v: Value) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|n| n.trim().to_string()).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(ConfigError::new(
                    "allowed_streams",
                    format!("must list stream names; found {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ConfigError::new(
                "allowed_streams",
                "must be a list of stream names or a comma-separated string",
            ))
        }
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    for n in &names {
        if let Some(why) = crate::shaping::stream_name::invalid_reason(n) {
            return Err(ConfigError::new("allowed_streams", format!("{n:?} {why}")));
        }
    }
    Ok(names)
}

/// `use_fips_endpoint` / `use_dualstack_endpoint`: the setting, else its `AWS_USE_…` variable,
/// else the shared config file profile's key of the same name, as the AWS SDKs read them.
struct EndpointFlag {
    setting: &'static str,
    /// Where a `true` came from; `None` when off.
    on: Option<String>,
}

impl EndpointFlag {
    fn read(
        fields: &mut Fields,
        env: &mut dyn Environment,
        setting: &'static str,
        variable: &str,
    ) -> Result<EndpointFlag, ConfigError> {
        let flag = |on: bool, from: String| EndpointFlag {
            setting,
            on: on.then_some(from),
        };
        if let Some(on) = fields.boolean(setting)? {
            return Ok(flag(on, setting.to_string()));
        }
        let found = match env_nonempty(env, variable) {
            Some(v) => Some((v, format!("{variable} in the environment"))),
            None => profile_value(env, setting)
                .map(|v| (v, format!("{setting} in the shared config file's profile"))),
        };
        match found {
            None => Ok(flag(false, String::new())),
            Some((v, from)) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(flag(true, from)),
                "false" => Ok(flag(false, from)),
                _ => Err(ConfigError::new(
                    setting,
                    format!("{from} must be true or false, got {:?}", v.trim()),
                )),
            },
        }
    }

    fn on_from(&self) -> Option<&str> {
        self.on.as_deref()
    }
}

/// The settings that take a secret value in any of its forms ([`super::secret`]).
pub const SECRET_SETTINGS: &[&str] = &["aws_key_id", "aws_sec_key", "aws_ses_token"];

/// The seed plugin's inject time format.
pub const DEFAULT_INJECT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.%N%z";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kinesis Data Streams (`stream_name`, `stream_arn`) or Firehose (`delivery_stream_name`).
    pub service: Service,
    /// How each record is shaped (stream, key, format, inject, compression, size).
    pub shape: Shape,
    /// `stream_arn`: PutRecords names the stream by this ARN (the shape's stream name is its name).
    pub stream_arn: Option<String>,
    pub region: String,
    /// `scheme://authority` of the Kinesis endpoint, no trailing slash.
    pub endpoint: String,
    /// Why this endpoint: the `endpoint` setting, or AWS's endpoint rules with the region's
    /// source and the FIPS and dual-stack settings that applied (for the startup log).
    pub endpoint_reason: String,
    pub credentials: CredentialConfig,
    /// `secrets_dir`: where `valueFrom`/`mountFrom` secrets are mounted (`<dir>/<name>/<key>`).
    pub secrets_dir: Option<String>,
    /// `assume_role_credentials`: wraps `credentials`.
    pub assume_role: Option<AssumeRole>,
    /// Retries of instance-profile (IMDS) requests.
    pub aws_iam_retries: u32,
    /// Fall back to IMDSv1 when IMDSv2 is unavailable.
    pub imds_v1_fallback: bool,
    pub batch_request_max_count: usize,
    pub batch_request_max_size: usize,
    pub retries_on_batch_request: u32,
    /// `drop_failed_records_after_batch_request_retries` (the Ruby plugin's name; default
    /// false here, true there): a record still failing after `retries_on_batch_request` is
    /// given up by the door at once, as the seed did, instead of kept for the sender's retry.
    pub drop_failed_records: bool,
    pub reset_backoff_if_success: bool,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub put_deadline: Duration,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// `preserve_order`: records of one partition key are stored in input order, even when some
    /// fail and are sent again.
    pub preserve_order: bool,
}

/// Everything one configuration document holds, read once: the sink's settings, the front
/// ends' (`time_keys`, `proxy`), and the host's `buffer`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: Config,
    pub front: FrontSettings,
    pub buffer: BufferSettings,
    /// Settings accepted without effect here (Fluentd-only buffer keys), one sentence each.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Parse and validate a JSON configuration. `env` supplies environment variables (region
    /// fallbacks, `{"env": …}` secrets) and files (`{"file": …}` secrets).
    pub fn from_json(text: &str, env: &mut dyn Environment) -> Result<Settings, ConfigError> {
        Settings::parse(text, env, DEFAULT_PUT_DEADLINE)
    }

    /// [`Settings::from_json`] for the proxy world, whose `put_deadline` defaults to
    /// [`PROXY_PUT_DEADLINE`] so that an agent gets its answer before its own timeout.
    pub fn for_proxy(text: &str, env: &mut dyn Environment) -> Result<Settings, ConfigError> {
        Settings::parse(text, env, PROXY_PUT_DEADLINE)
    }

    fn parse(text: &str, env: &mut dyn Environment, put_deadline: Duration) -> Result<Settings, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("", format!("the configuration is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ConfigError::new("", "the configuration must be a JSON object"));
        };
        let mut fields = Fields::new("", map);
        let mut format_warnings = Vec::new();
        let sink = Config::read(&mut fields, env, put_deadline, &mut format_warnings)?;
        let time_keys = fields.take("time_keys");
        let front = FrontSettings::read(time_keys, fields.object("proxy")?)?;
        let (buffer, mut warnings) = BufferSettings::read(fields.object("buffer")?)?;
        warnings.append(&mut format_warnings);
        // Fluentd's core option, in the operator's KinesisStream and KinesisFirehose types.
        if fields.take("slow_flush_log_threshold").is_some() {
            warnings.push(
                "slow_flush_log_threshold is a Fluentd setting that kinesis-output's hosts do not apply"
                    .to_string(),
            );
        }
        if sink.preserve_order && buffer.flush_thread_count > 1 {
            return Err(ConfigError::new(
                "buffer.flush_thread_count",
                "must be 1 with preserve_order: chunks shipped side by side can store a key's records out of order",
            ));
        }
        fields.finish()?;
        Ok(Settings {
            sink,
            front,
            buffer,
            warnings,
        })
    }
}

impl Config {
    /// The sink's settings of a JSON configuration (see [`Settings::from_json`]).
    pub fn from_json(text: &str, env: &mut dyn Environment) -> Result<Config, ConfigError> {
        Settings::from_json(text, env).map(|s| s.sink)
    }

    /// Read the sink's settings from the top level of a document; `put_deadline` is the default.
    /// Settings accepted without effect are named in `warnings`.
    fn read(
        fields: &mut Fields,
        env: &mut dyn Environment,
        default_put_deadline: Duration,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        let stream_arn = match fields.string("stream_arn")? {
            Some(text) => Some(StreamArn::parse(&text).map_err(|e| ConfigError::new("stream_arn", e))?),
            None => None,
        };
        let delivery_stream_name = fields.string("delivery_stream_name")?;
        let stream_name_setting = fields.string("stream_name")?;
        let service = match (&delivery_stream_name, &stream_name_setting, &stream_arn) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::new(
                    "delivery_stream_name",
                    "cannot be combined with stream_name: give stream_name for Kinesis Data Streams, or delivery_stream_name for Firehose",
                ))
            }
            (Some(_), None, Some(_)) => {
                return Err(ConfigError::new(
                    "delivery_stream_name",
                    "cannot be combined with stream_arn: give stream_arn for Kinesis Data Streams, or delivery_stream_name for Firehose",
                ))
            }
            (Some(_), None, None) => Service::Firehose,
            _ => Service::Streams,
        };
        let stream_name = match (stream_name_setting.or(delivery_stream_name), &stream_arn) {
            (Some(name), Some(arn)) if name != arn.name => {
                return Err(ConfigError::new(
                    "stream_name",
                    format!(
                        "{name:?} is not the stream of stream_arn ({:?}); give one of them",
                        arn.name
                    ),
                ))
            }
            (Some(name), _) => name,
            (None, Some(arn)) => arn.name.clone(),
            (None, None) => {
                return Err(ConfigError::new(
                    "stream_name",
                    "is required (or stream_arn; or delivery_stream_name for Firehose)",
                ))
            }
        };
        let name_setting = service.stream_setting();
        let stream_name = StreamName::parse(&stream_name)
            .and_then(|n| n.within(service.max_name_chars()))
            .map_err(|e| ConfigError::new(name_setting, e))?;
        let allowed = match fields.take("allowed_streams") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => allowed_streams(v)?,
        };
        if let Some(long) = allowed
            .iter()
            .find(|n| n.chars().count() > service.max_name_chars())
        {
            return Err(ConfigError::new(
                "allowed_streams",
                format!(
                    "{long:?} is longer than the {} characters a {} name takes",
                    service.max_name_chars(),
                    name_setting
                ),
            ));
        }
        let stream_name = stream_name
            .allow_only(allowed)
            .map_err(|e| ConfigError::new(name_setting, e))?;

        let (region, region_from) = match (fields.string("region")?, &stream_arn) {
            (Some(r), Some(arn)) if r != arn.region => {
                return Err(ConfigError::new(
                    "region",
                    format!("{r:?} is not the region of stream_arn ({:?})", arn.region),
                ))
            }
            (Some(r), _) => (r, "the region setting"),
            (None, Some(arn)) => (arn.region.clone(), "stream_arn"),
            (None, None) => {
                let found = [
                    (env_nonempty(env, "AWS_REGION"), "AWS_REGION"),
                    (env_nonempty(env, "AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION"),
                ]
                .into_iter()
                .find_map(|(r, from)| r.map(|r| (r, from)))
                .or_else(|| profile_region(env).map(|r| (r, "the shared config file's profile")));
                found.ok_or_else(|| {
                    ConfigError::new(
                        "region",
                        "is required: set it, or AWS_REGION or AWS_DEFAULT_REGION in the environment, or region in the shared config file's profile",
                    )
                })?
            }
        };
        check_region(&region)?;

        let fips = EndpointFlag::read(fields, env, "use_fips_endpoint", "AWS_USE_FIPS_ENDPOINT")?;
        let dual_stack = EndpointFlag::read(
            fields,
            env,
            "use_dualstack_endpoint",
            "AWS_USE_DUALSTACK_ENDPOINT",
        )?;
        let custom = match fields.string("endpoint")? {
            Some(url) => Some(parse_endpoint(&url)?),
            None => None,
        };
        if custom.is_some() {
            // AWS's endpoint rules: "FIPS and custom endpoint are not supported" (and the same
            // for dual-stack). A compliance setting is never dropped in silence.
            for (flag, what) in [(&fips, "a FIPS"), (&dual_stack, "a dual-stack")] {
                if let Some(from) = flag.on_from() {
                    return Err(ConfigError::new(
                        flag.setting,
                        format!(
                            "{from} asks for {what} endpoint, which AWS's endpoint rules do not apply to a custom endpoint: set one of endpoint and {} only",
                            flag.setting
                        ),
                    ));
                }
            }
        }
        let account = stream_arn.as_ref().map(|arn| arn.account.as_str());
        let variant = region::Variant {
            fips: fips.on_from().is_some(),
            dual_stack: dual_stack.on_from().is_some(),
        };
        let endpoint = region::resolve(service, &region, variant, custom.as_deref(), account)
            .map_err(|e| ConfigError::new("endpoint", e))?;
        let endpoint_reason = match custom {
            Some(_) => "the endpoint setting".to_string(),
            None => {
                let mut why = format!(
                    "AWS's endpoint rules for {} in {region} (region from {region_from})",
                    service.name()
                );
                if let Some(account) = account {
                    why.push_str(&format!(", stream_arn's account {account}"));
                }
                if let Some(from) = fips.on_from() {
                    why.push_str(&format!(", FIPS ({from})"));
                }
                if let Some(from) = dual_stack.on_from() {
                    why.push_str(&format!(", dual-stack ({from})"));
                }
                why
            }
        };

        let secrets_dir = fields.string("secrets_dir")?;
        if let Some(dir) = &secrets_dir {
            if !dir.starts_with('/') {
                return Err(ConfigError::new(
                    "secrets_dir",
                    format!("{dir:?} must be an absolute path"),
                ));
            }
        }
        let credentials = credentials(
            fields,
            &mut SecretSources {
                env,
                secrets_dir: secrets_dir.as_deref(),
            },
            warnings,
        )?;
        let assume_role = match fields.object("assume_role_credentials")? {
            Some(section) => Some(assume_role(section, &region, env)?),
            None => None,
        };
        let aws_iam_retries = fields
            .integer("aws_iam_retries", 0, MAX_IAM_RETRIES)?
            .map_or(5, |v| v as u32);
        let imds_v1_fallback = fields.boolean("imds_v1_fallback")?.unwrap_or(false);

        let partition_key = fields.accessor("partition_key")?;
        if service == Service::Firehose && partition_key.is_some() {
            return Err(ConfigError::new(
                "partition_key",
                "Firehose records have no partition key (delivery_stream_name names a Firehose stream)",
            ));
        }
        let data_key = fields.accessor("data_key")?;
        let chomp_record = fields.boolean("chomp_record")?.unwrap_or(false);
        let append_setting = fields.boolean("append_new_line")?;
        let format = match fields.object("format")? {
            Some(section) => formatter(Fields::new("format", section), warnings)?,
            None => Formatter::Json { add_newline: true },
        };
        // MessagePack is binary: a trailing 0x0a or 0x0d is part of a value, and a newline
        // after it is a value too. Fluentd's Firehose plugin chomps it all the same.
        let binary = format == Formatter::Msgpack && data_key.is_none();
        let append_new_line = match (append_setting, service) {
            (Some(_), Service::Streams) => {
                return Err(ConfigError::new(
                    "append_new_line",
                    "applies only to Firehose (delivery_stream_name)",
                ))
            }
            (Some(true), Service::Firehose) if binary => {
                return Err(ConfigError::new(
                    "append_new_line",
                    "would change MessagePack records (their last byte may be 0x0a or 0x0d, and a newline is read as one more value): leave it unset or false with format msgpack",
                ))
            }
            (value, Service::Firehose) => value.unwrap_or(!binary),
            (None, Service::Streams) => false,
        };
        let inject = match fields.object("inject")? {
            Some(section) => Some(inject(Fields::new("inject", section))?),
            None => None,
        };
        if data_key.is_some() && inject.is_some() {
            return Err(ConfigError::new(
                "inject",
                "has no effect with data_key, which sends one field as it is",
            ));
        }
        let compression = match fields.string("compression")?.as_deref() {
            None | Some("") => None,
            Some("zlib") => Some(Compression::Zlib),
            Some("gzip") => Some(Compression::Gzip),
            Some("zstd") => Some(Compression::Zstd),
            Some(other) => {
                return Err(ConfigError::new(
                    "compression",
                    format!("unknown compression {other:?}; use zlib, gzip or zstd"),
                ))
            }
        };
        let aggregate = fields.boolean("aggregate")?.unwrap_or(false);
        let fixed_partition_key = fields.string("fixed_partition_key")?;
        if let Some(k) = &fixed_partition_key {
            if service == Service::Firehose {
                return Err(ConfigError::new(
                    "fixed_partition_key",
                    "Firehose records have no partition key (delivery_stream_name names a Firehose stream)",
                ));
            }
            if !aggregate {
                return Err(ConfigError::new(
                    "fixed_partition_key",
                    "applies only with aggregate: true",
                ));
            }
            if partition_key.is_some() {
                return Err(ConfigError::new(
                    "fixed_partition_key",
                    "cannot be combined with partition_key",
                ));
            }
            let chars = k.chars().count();
            if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
                return Err(ConfigError::new(
                    "fixed_partition_key",
                    format!("must be 1 to {MAX_PARTITION_KEY_CHARS} characters"),
                ));
            }
        }
        let log_truncate_max_size = fields
            .integer("log_truncate_max_size", 0, u32::MAX as u64)?
            .map_or(1024, |v| v as usize);

        let (max_record, default_record) = service.record_bytes();
        let max_record_size = fields
            .integer("max_record_size", 1, max_record as u64)?
            .map_or(default_record, |v| v as usize);
        let batch_request_max_count = fields
            .integer("batch_request_max_count", 1, service.max_records() as u64)?
            .map_or(service.max_records(), |v| v as usize);
        let (max_request, default_request) = service.request_bytes();
        let batch_request_max_size = fields
            .integer("batch_request_max_size", 1, max_request as u64)?
            .map_or(default_request, |v| v as usize);
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
        let drop_failed_records = fields
            .boolean("drop_failed_records_after_batch_request_retries")?
            .unwrap_or(false);
        let reset_backoff_if_success = fields.boolean("reset_backoff_if_success")?.unwrap_or(true);
        let retry_base_delay = fields.seconds_or("retry_base_delay", 0.0, 60.0, DEFAULT_BASE_DELAY)?;
        let retry_max_delay = fields.seconds_or("retry_max_delay", 0.0, 3600.0, DEFAULT_MAX_DELAY)?;
        let put_deadline = fields.seconds_or("put_deadline", 0.001, 86400.0, default_put_deadline)?;
        let request_timeout = fields.seconds_or("request_timeout", 0.001, 3600.0, DEFAULT_REQUEST_TIMEOUT)?;
        let max_concurrent_requests = fields
            .integer("max_concurrent_requests", 1, MAX_CONCURRENT_REQUESTS)?
            .map_or(1, |v| v as usize);
        let preserve_order = fields.boolean("preserve_order")?.unwrap_or(false);
        if preserve_order && service == Service::Firehose {
            return Err(ConfigError::new(
                "preserve_order",
                "orders the records of each partition key; Firehose records have none (a whole delivery stream would be one key, one record a call)",
            ));
        }

        Ok(Config {
            service,
            shape: Shape {
                service,
                stream_name,
                partition_key,
                format,
                chomp_record,
                append_new_line,
                inject,
                data_key,
                compression,
                log_truncate_max_size,
                aggregate,
                fixed_partition_key,
                max_record_size,
            },
            stream_arn: stream_arn.map(|a| a.arn),
            region,
            endpoint,
            endpoint_reason,
            credentials,
            secrets_dir,
            assume_role,
            aws_iam_retries,
            imds_v1_fallback,
            batch_request_max_count,
            batch_request_max_size,
            retries_on_batch_request,
            drop_failed_records,
            reset_backoff_if_success,
            retry_base_delay,
            retry_max_delay,
            put_deadline,
            request_timeout,
            max_concurrent_requests,
            preserve_order,
        })
    }
}

/// The `format` section: Fluentd's formatters and their options.
/// The `format` section. The logging-operator's `Format` type offers `add_newline` and
/// `message_key` with every type; where a type has no use for one, it is accepted and named in
/// `warnings`, as Fluentd warns of a parameter not used and goes on.
fn formatter(mut f: Fields, warnings: &mut Vec<String>) -> Result<Formatter, ConfigError> {
    let kind = f
        .string("type")?
        .or(f.string("@type")?)
        .unwrap_or_else(|| "json".to_string());
    let add_newline =
        |f: &mut Fields| -> Result<bool, ConfigError> { Ok(f.boolean("add_newline")?.unwrap_or(true)) };
    let formatter = match kind.as_str() {
        "json" => Formatter::Json {
            add_newline: add_newline(&mut f)?,
        },
        "ltsv" => Formatter::Ltsv {
            delimiter: f.string("delimiter")?.unwrap_or_else(|| "\t".to_string()),
            label_delimiter: f.string("label_delimiter")?.unwrap_or_else(|| ":".to_string()),
            replacement: f.string("replacement")?.unwrap_or_else(|| " ".to_string()),
            add_newline: add_newline(&mut f)?,
        },
        "csv" => {
            let names: Vec<String> = match f.take("fields") {
                None => return Err(ConfigError::new("format.fields", "is required for csv")),
                Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(|x| x.trim().to_string()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| ConfigError::new("format.fields", "must be a list of field names"))?,
                Some(_) => return Err(ConfigError::new("format.fields", "must be a list of field names")),
            };
            let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
            if names.is_empty() {
                return Err(ConfigError::new("format.fields", "names no field"));
            }
            let fields = names
                .iter()
                .map(|n| {
                    Accessor::parse(n).map_err(|e| ConfigError::new("format.fields", format!("{n:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            let delimiter = match f.string("delimiter")?.as_deref() {
                None => ",".to_string(),
                Some("\\t" | "TAB" | "\t") => "\t".to_string(),
                Some(d) => d.to_string(),
            };
            Formatter::Csv {
                fields,
                delimiter,
                force_quotes: f.boolean("force_quotes")?.unwrap_or(true),
                add_newline: add_newline(&mut f)?,
            }
        }
        "single_value" => Formatter::SingleValue {
            message_key: f.string("message_key")?.unwrap_or_else(|| "message".to_string()),
            add_newline: add_newline(&mut f)?,
        },
        "msgpack" => Formatter::Msgpack,
        "out_file" => {
            let delimiter = match f.string("delimiter")?.map(|d| d.to_ascii_uppercase()).as_deref() {
                Some("SPACE" | " ") => " ".to_string(),
                Some("COMMA" | ",") => ",".to_string(),
                _ => "\t".to_string(),
            };
            Formatter::OutFile {
                output_time: f.boolean("output_time")?.unwrap_or(true),
                output_tag: f.boolean("output_tag")?.unwrap_or(true),
                delimiter,
                time: time_style(&mut f, None)?,
            }
        }
        "hash" => Formatter::Hash {
            add_newline: add_newline(&mut f)?,
        },
        other => {
            return Err(ConfigError::new(
                "format.type",
                format!(
                    "unknown format {other:?}; use json, ltsv, csv, single_value, msgpack, out_file or hash"
                ),
            ))
        }
    };
    for key in ["add_newline", "message_key"] {
        if f.take(key).is_some() {
            warnings.push(format!(
                "format.{key} is not used by the {kind} format (accepted, as Fluentd accepts it)"
            ));
        }
    }
    f.finish()?;
    Ok(formatter)
}

/// `time_type`, `time_format`, `utc`, `localtime` and `timezone`, as Fluentd reads them.
fn time_style(f: &mut Fields, default_format: Option<&str>) -> Result<TimeStyle, ConfigError> {
    let kind = f.string("time_type")?;
    let format = f.string("time_format")?.or(default_format.map(str::to_string));
    let utc = f.boolean("utc")?;
    let localtime = f.boolean("localtime")?;
    let timezone = f.string("timezone")?;
    if utc.is_some() && localtime.is_some() {
        return Err(ConfigError::new(f.path("utc"), "give utc or localtime, not both"));
    }
    let zone = match (&timezone, utc, localtime) {
        (Some(tz), _, _) => Zone::parse(tz).map_err(|e| ConfigError::new(f.path("timezone"), e))?,
        (None, Some(true), _) | (None, _, Some(false)) => Zone::UTC,
        // Fluentd's default: local time, which is UTC here (no zone database in the component).
        _ => Zone::LOCAL,
    };
    match kind.as_deref() {
        None | Some("string") => Ok(TimeStyle::Text { format, zone }),
        Some("unixtime") => Ok(TimeStyle::Unixtime),
        Some("float") => Ok(TimeStyle::Float),
        Some(other) => Err(ConfigError::new(
            f.path("time_type"),
            format!("{other:?} is not string, unixtime or float"),
        )),
    }
}

fn inject(mut f: Fields) -> Result<Inject, ConfigError> {
    let tag_key = f.string("tag_key")?.filter(|k| !k.is_empty());
    let time_key = f.string("time_key")?.filter(|k| !k.is_empty());
    let time = time_style(&mut f, Some(DEFAULT_INJECT_TIME_FORMAT))?;
    f.finish()?;
    if tag_key.is_none() && time_key.is_none() {
        return Err(ConfigError::new("inject", "needs tag_key or time_key"));
    }
    Ok(Inject {
        tag_key,
        time_key,
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(c.shape.max_record_size, 1024 * 1024);
        assert_eq!(c.retries_on_batch_request, 8);
        assert!(c.reset_backoff_if_success);
        assert_eq!(c.retry_base_delay, Duration::from_millis(300));
        assert_eq!(c.shape.format, Formatter::Json { add_newline: true });
        assert!(!c.shape.chomp_record);
        assert!(c.shape.partition_key.is_none() && c.shape.data_key.is_none() && c.shape.inject.is_none());
        assert_eq!(c.shape.compression, None);
        assert_eq!(c.shape.log_truncate_max_size, 1024);
        assert!(matches!(&c.credentials, CredentialConfig::Static(k) if k.access_key_id == "AKID"));
        assert_eq!(c.aws_iam_retries, 5);
        assert!(!c.imds_v1_fallback);
        assert!(c.assume_role.is_none());
        assert_eq!(c.max_concurrent_requests, 1);
        assert_eq!(c.request_timeout, Duration::from_secs(60));
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
    fn preserve_order_ships_one_chunk_at_a_time() {
        let settings = |extra: &str| {
            Settings::from_json(
                &format!(
                    r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b",{extra}}}"#
                ),
                &mut no_env,
            )
        };
        assert_eq!(
            settings(r#""buffer":{"flush_thread_count":3}"#)
                .unwrap()
                .buffer
                .flush_thread_count,
            3
        );
        let e = settings(r#""preserve_order":true,"buffer":{"flush_thread_count":2}"#).unwrap_err();
        assert_eq!(e.field, "buffer.flush_thread_count");
        assert!(e.message.contains("preserve_order"), "{e}");
        assert!(settings(r#""preserve_order":true,"buffer":{"flush_thread_count":1}"#).is_ok());
    }

    #[test]
    fn allowed_streams_are_stream_names_and_hold_the_fixed_one() {
        let with = |extra: &str| {
            parse(&format!(
                r#"{{"stream_name":"logs","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b",{extra}}}"#
            ))
        };
        assert!(with(r#""allowed_streams":["logs","audit"]"#).is_ok());
        assert!(with(r#""allowed_streams":"audit, logs""#).is_ok());
        let e = with(r#""allowed_streams":["audit"]"#).unwrap_err();
        assert_eq!(e.field, "stream_name");
        assert!(e.message.contains("not among allowed_streams"), "{e}");
        let e = with(r#""allowed_streams":["a b"]"#).unwrap_err();
        assert_eq!(e.field, "allowed_streams");
        let e = with(r#""allowed_streams":5"#).unwrap_err();
        assert_eq!(e.field, "allowed_streams");
    }

    #[test]
    fn the_settings_list_is_what_the_parser_reads() {
        // A wrong type is reported under the setting's own name, never as unknown: each listed
        // name is read. A setting the parser reads but the list lacks would fail the last check.
        for name in SETTINGS
            .iter()
            .filter(|n| **n != "stream_name" && **n != "region")
        {
            let text = format!(
                r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b","{name}":[[]]}}"#
            );
            let e = match parse(&text) {
                Ok(_) => continue,
                Err(e) => e,
            };
            assert!(!e.message.contains("unknown setting"), "{name}: {e}");
        }
        let text = format!(
            r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b","{}":1}}"#,
            "not_a_setting"
        );
        assert!(parse(&text).unwrap_err().message.contains("unknown setting"));
        let mut sorted = SETTINGS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), SETTINGS.len(), "no setting listed twice");
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
    fn region_falls_back_to_the_environment() {
        let mut env = |name: &str| (name == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_string());
        let c = Config::from_json(r#"{"stream_name":"s"}"#, &mut env).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert!(matches!(c.credentials, CredentialConfig::DefaultChain));
        let mut env2 = |name: &str| match name {
            "AWS_REGION" => Some("ap-south-1".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".to_string()),
            _ => None,
        };
        assert_eq!(
            Config::from_json(r#"{"stream_name":"s"}"#, &mut env2)
                .unwrap()
                .region,
            "ap-south-1"
        );
    }

    /// After the variables, the shared config file's profile, as the AWS SDKs resolve it
    /// (`[default]`, or `[profile NAME]` for `AWS_PROFILE`); never the credentials file.
    #[test]
    fn region_falls_back_to_the_shared_config_profile() {
        let files = vec![
            (
                "/home/u/.aws/config",
                "[default]\nregion = eu-central-1\n[profile prod]\nregion = ap-northeast-1\n[prod]\nregion = no-such-1\n",
            ),
            ("/home/u/.aws/credentials", "[creds-only]\nregion = sa-east-1\n"),
            ("/etc/aws.conf", "[profile other]\nregion = ca-central-1\n"),
        ];
        let region = |vars: Vec<(&'static str, &'static str)>| {
            let mut env = Env(vars, files.clone());
            Config::from_json(r#"{"stream_name":"s"}"#, &mut env).map(|c| c.region)
        };
        assert_eq!(region(vec![("HOME", "/home/u")]).unwrap(), "eu-central-1");
        assert_eq!(
            region(vec![("HOME", "/home/u"), ("AWS_PROFILE", "prod")]).unwrap(),
            "ap-northeast-1"
        );
        assert_eq!(
            region(vec![
                ("HOME", "/home/u"),
                ("AWS_PROFILE", "prod"),
                ("AWS_DEFAULT_REGION", "us-west-2")
            ])
            .unwrap(),
            "us-west-2",
            "the variables come first"
        );
        assert_eq!(
            region(vec![
                ("HOME", "/home/u"),
                ("AWS_CONFIG_FILE", "/etc/aws.conf"),
                ("AWS_PROFILE", "other")
            ])
            .unwrap(),
            "ca-central-1"
        );
        let e = region(vec![("HOME", "/home/u"), ("AWS_PROFILE", "creds-only")]).unwrap_err();
        assert_eq!(e.field, "region");
        assert!(e.message.contains("shared config file"), "{e}");
    }

    /// Event times as Fluentd writes them, against the real Ruby's output
    /// (tests/fixtures/fluentd-time.tsv, from scripts/fluentd-time.rb): `out_file` with its time
    /// settings read from the configuration, and `inject`'s float.
    #[test]
    fn event_times_are_fluentds_bytes() {
        let fixture = include_str!("../../tests/fixtures/fluentd-time.tsv");
        let mut checked = 0;
        for line in fixture.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = line.split('\t');
            let (case, secs, nanos, want) = (
                cols.next().unwrap(),
                cols.next().unwrap().parse::<i64>().unwrap(),
                cols.next().unwrap().parse::<u32>().unwrap(),
                cols.next().unwrap(),
            );
            let time = |format: Value| {
                let json = json!({"stream_name": "s", "region": "us-east-1", "format": format});
                match Config::from_json(&json.to_string(), &mut no_env)
                    .unwrap()
                    .shape
                    .format
                {
                    Formatter::OutFile { time, .. } => time.text(secs, nanos),
                    other => panic!("{other:?}"),
                }
            };
            let (name, rest) = case.split_once(' ').unwrap_or((case, ""));
            let got = match (name, rest) {
                ("iso8601", "local") => time(json!({"type": "out_file"})),
                ("iso8601", "utc") => time(json!({"type": "out_file", "utc": true})),
                ("iso8601", tz) => time(json!({"type": "out_file", "timezone": tz})),
                ("strftime", rest) => {
                    let (zone, format) = rest.split_once(' ').unwrap();
                    match zone {
                        "local" => time(json!({"type": "out_file", "time_format": format})),
                        "utc" => time(json!({"type": "out_file", "localtime": false, "time_format": format})),
                        tz => time(json!({"type": "out_file", "timezone": tz, "time_format": format})),
                    }
                }
                ("float" | "unixtime", "") => time(json!({"type": "out_file", "time_type": name})),
                ("inject", "float") => {
                    let json = json!({"stream_name": "s", "region": "us-east-1",
                        "inject": {"time_key": "t", "time_type": "float"}});
                    let c = Config::from_json(&json.to_string(), &mut no_env).unwrap();
                    let v = c.shape.inject.unwrap().time.value(secs, nanos);
                    assert_eq!(v.as_f64(), Some(want.parse::<f64>().unwrap()), "{line}");
                    checked += 1;
                    continue;
                }
                _ => panic!("unknown case {case:?}"),
            };
            assert_eq!(got, want, "{line}");
            checked += 1;
        }
        assert_eq!(checked, 110);
    }

    #[test]
    fn partial_credentials_are_clear_errors() {
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

    /// An environment with variables and files, for secret forms.
    struct Env(
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
    );

    impl Environment for Env {
        fn var(&mut self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
        fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
            self.1
                .iter()
                .find(|(k, _)| *k == path)
                .map(|(_, v)| v.as_bytes().to_vec())
                .ok_or_else(|| "No such file or directory".to_string())
        }
    }

    /// The logging-operator's secret type: `valueFrom` and `mountFrom` with a `secretKeyRef`,
    /// read from Kubernetes' secret-volume layout under `secrets_dir`.
    #[test]
    fn secrets_come_from_kubernetes_secret_volumes() {
        let mut env = Env(
            vec![],
            vec![
                ("/etc/kinesis/secrets/aws-keys/id", "AKIDFROMSECRET\n"),
                ("/etc/kinesis/secrets/aws-keys/secret", "SECRETFROMVOLUME"),
                ("/etc/kinesis/secrets/session/token", "TOKENFROMVOLUME"),
            ],
        );
        let r = |name: &str, key: &str| format!(r#"{{"secretKeyRef":{{"name":"{name}","key":"{key}"}}}}"#);
        let json = format!(
            r#"{{"stream_name":"s","region":"us-east-1","secrets_dir":"/etc/kinesis/secrets/",
            "aws_key_id":{{"valueFrom":{}}},"aws_sec_key":{{"mountFrom":{}}},"aws_ses_token":{{"valueFrom":{}}}}}"#,
            r("aws-keys", "id"),
            r("aws-keys", "secret"),
            r("session", "token"),
        );
        let c = Config::from_json(&json, &mut env).unwrap();
        let CredentialConfig::Static(k) = &c.credentials else {
            panic!()
        };
        assert_eq!(k.access_key_id, "AKIDFROMSECRET");
        assert_eq!(k.secret_access_key.expose(), "SECRETFROMVOLUME");
        assert_eq!(k.session_token.as_ref().unwrap().expose(), "TOKENFROMVOLUME");
        assert_eq!(c.secrets_dir.as_deref(), Some("/etc/kinesis/secrets/"));

        // An optional key that is missing leaves the setting unset.
        let json = format!(
            r#"{{"stream_name":"s","region":"us-east-1","secrets_dir":"/etc/kinesis/secrets",
            "aws_key_id":{{"valueFrom":{}}},"aws_sec_key":{{"valueFrom":{}}},
            "aws_ses_token":{{"valueFrom":{{"secretKeyRef":{{"name":"session","key":"gone","optional":true}}}}}}}}"#,
            r("aws-keys", "id"),
            r("aws-keys", "secret"),
        );
        let c = Config::from_json(&json, &mut env).unwrap();
        let CredentialConfig::Static(k) = &c.credentials else {
            panic!()
        };
        assert!(k.session_token.is_none());

        let dir = r#""secrets_dir":"/etc/kinesis/secrets","#;
        for (settings, secret, field, rule) in [
            (
                dir,
                r("aws-keys", "nokey"),
                "aws_sec_key.valueFrom.secretKeyRef",
                r#"secret "aws-keys" has no key "nokey""#,
            ),
            (
                dir,
                r("gone", "secret"),
                "aws_sec_key.valueFrom.secretKeyRef",
                r#"secret "gone" has no key "secret""#,
            ),
            (
                "",
                r("aws-keys", "secret"),
                "aws_sec_key.valueFrom.secretKeyRef",
                "needs secrets_dir",
            ),
            (
                dir,
                r("..", "secret"),
                "aws_sec_key.valueFrom.secretKeyRef.name",
                "not a Kubernetes secret name",
            ),
            (
                dir,
                r("aws-keys", "../../x"),
                "aws_sec_key.valueFrom.secretKeyRef.key",
                "not a Kubernetes secret key",
            ),
            (
                dir,
                r#"{"secretKeyRef":{"name":"aws-keys"}}"#.into(),
                "aws_sec_key.valueFrom.secretKeyRef.key",
                "is required",
            ),
            (
                dir,
                r#"{"secretKeyRef":{"name":"a","key":"b","path":"c"}}"#.into(),
                "aws_sec_key.valueFrom.secretKeyRef.path",
                "use name, key and optional",
            ),
            (
                dir,
                r#"{"configMapKeyRef":{}}"#.into(),
                "aws_sec_key.valueFrom.secretKeyRef",
                "is required",
            ),
            (
                r#""secrets_dir":"secrets","#,
                r("aws-keys", "secret"),
                "secrets_dir",
                "absolute path",
            ),
        ] {
            let json = format!(
                r#"{{"stream_name":"s","region":"us-east-1",{settings}"aws_key_id":"A","aws_sec_key":{{"valueFrom":{secret}}}}}"#
            );
            let e = Config::from_json(&json, &mut env).unwrap_err();
            assert_eq!(e.field, field, "{secret}");
            assert!(e.message.contains(rule), "{secret}: {e}");
            assert!(!e.to_string().contains("FROMVOLUME"), "{e}");
        }
    }

    #[test]
    fn secrets_come_as_values_variables_or_files() {
        let mut env = Env(
            vec![("MY_KEY", "AKIDFROMENV")],
            vec![("/run/secrets/sec", "SECRETFROMFILE\n")],
        );
        let json = r#"{"stream_name":"s","region":"us-east-1","aws_key_id":{"env":"MY_KEY"},
            "aws_sec_key":{"file":"/run/secrets/sec"},"aws_ses_token":{"value":"TOKENVALUE"}}"#;
        let c = Config::from_json(json, &mut env).unwrap();
        let CredentialConfig::Static(k) = &c.credentials else {
            panic!()
        };
        assert_eq!(k.access_key_id, "AKIDFROMENV");
        assert_eq!(k.secret_access_key.expose(), "SECRETFROMFILE");
        assert_eq!(k.session_token.as_ref().unwrap().expose(), "TOKENVALUE");
        assert!(!format!("{c:?}").contains("SECRETFROMFILE"));
        for (secret, field, rule) in [
            (r#"{"env":"UNSET"}"#, "aws_sec_key.env", "UNSET is not set"),
            (r#"{"file":"/nope"}"#, "aws_sec_key.file", "cannot read"),
            (r#"{"vault":"x"}"#, "aws_sec_key", "unknown secret form"),
            (r#"{"value":""}"#, "aws_sec_key", "must not be empty"),
            (
                r#"{"value":"a","env":"b"}"#,
                "aws_sec_key",
                "(one of them), got an object with \"value\", \"env\"",
            ),
        ] {
            let json = format!(
                r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"A","aws_sec_key":{secret}}}"#
            );
            let e = Config::from_json(&json, &mut env).unwrap_err();
            assert_eq!(e.field, field, "{secret}");
            assert!(e.message.contains(rule), "{secret}: {e}");
        }
    }

    #[test]
    fn assume_role_and_process_blocks_are_checked() {
        let c = with(r#""assume_role_credentials":{"role_arn":"arn:aws:iam::123456789012:role/logs","role_session_name":"fluentd","duration_seconds":"7200","external_id":"ext"}"#).unwrap();
        let role = c.assume_role.unwrap();
        assert_eq!(role.duration_seconds, 7200);
        assert_eq!(role.sts.endpoint, "https://sts.us-east-1.amazonaws.com");
        assert_eq!(role.external_id.as_deref(), Some("ext"));
        let c = with(r#""assume_role_credentials":{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"s1","sts_endpoint_url":"https://vpce-1.sts.us-east-1.vpce.amazonaws.com","sts_region":"eu-west-1"}"#).unwrap();
        let role = c.assume_role.unwrap();
        assert_eq!(
            role.sts.endpoint,
            "https://vpce-1.sts.us-east-1.vpce.amazonaws.com"
        );
        assert_eq!(role.sts.region, "eu-west-1");
        assert_eq!(role.duration_seconds, 3600);
        for (block, field) in [
            (
                r#"{"role_session_name":"s1"}"#,
                "assume_role_credentials.role_arn",
            ),
            (
                r#"{"role_arn":"arn:aws:iam::1:role/r"}"#,
                "assume_role_credentials.role_session_name",
            ),
            (
                r#"{"role_arn":"role/r","role_session_name":"s1"}"#,
                "assume_role_credentials.role_arn",
            ),
            (
                r#"{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"s p"}"#,
                "assume_role_credentials.role_session_name",
            ),
            (
                r#"{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"s1","duration_seconds":60}"#,
                "assume_role_credentials.duration_seconds",
            ),
            (
                r#"{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"s1","policy":"allow all"}"#,
                "assume_role_credentials.policy",
            ),
            (
                r#"{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"s1","mfa":"1"}"#,
                "assume_role_credentials.mfa",
            ),
        ] {
            let e = err(&format!(r#""assume_role_credentials":{block}"#));
            assert_eq!(e.field, field, "{block}: {e}");
        }
        let json = r#"{"stream_name":"s","region":"us-east-1","process_credentials":{"process":"/bin/creds --profile x"}}"#;
        let c = parse(json).unwrap();
        assert!(matches!(&c.credentials, CredentialConfig::Process(p) if p == "/bin/creds --profile x"));
        let json = r#"{"stream_name":"s","region":"us-east-1","process_credentials":{}}"#;
        assert_eq!(parse(json).unwrap_err().field, "process_credentials.process");
        assert_eq!(err(r#""aws_iam_retries":21"#).field, "aws_iam_retries");
        assert_eq!(with(r#""aws_iam_retries":"2""#).unwrap().aws_iam_retries, 2);
    }

    #[test]
    fn formats_and_their_options_are_read() {
        let f = |section: &str| with(&format!(r#""format":{section}"#)).map(|c| c.shape.format);
        assert_eq!(
            f(r#"{"type":"json","add_newline":false}"#).unwrap(),
            Formatter::Json { add_newline: false }
        );
        assert_eq!(
            f(r#"{"type":"ltsv","delimiter":",","label_delimiter":"="}"#).unwrap(),
            Formatter::Ltsv {
                delimiter: ",".into(),
                label_delimiter: "=".into(),
                replacement: " ".into(),
                add_newline: true
            }
        );
        let Formatter::Csv {
            fields,
            delimiter,
            force_quotes,
            ..
        } = f(r#"{"type":"csv","fields":"a, $.b.c","delimiter":"TAB"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((fields.len(), delimiter.as_str(), force_quotes), (2, "\t", true));
        assert_eq!(
            f(r#"{"type":"single_value"}"#).unwrap(),
            Formatter::SingleValue {
                message_key: "message".into(),
                add_newline: true
            }
        );
        assert_eq!(f(r#"{"type":"msgpack"}"#).unwrap(), Formatter::Msgpack);
        assert_eq!(
            f(r#"{"type":"out_file","delimiter":"COMMA","output_tag":false,"time_type":"unixtime"}"#)
                .unwrap(),
            Formatter::OutFile {
                output_time: true,
                output_tag: false,
                delimiter: ",".into(),
                time: TimeStyle::Unixtime
            }
        );
        assert_eq!(
            f(r#"{"type":"hash","add_newline":"false"}"#).unwrap(),
            Formatter::Hash { add_newline: false }
        );
        for (section, field, rule) in [
            (r#"{"type":"yaml"}"#, "format.type", "unknown format"),
            (r#"{"type":"csv"}"#, "format.fields", "is required"),
            (r#"{"type":"csv","fields":[]}"#, "format.fields", "names no field"),
            (
                r#"{"type":"csv","fields":["$.a["]}"#,
                "format.fields",
                "without ']'",
            ),
            (
                r#"{"type":"json","mesage_key":"m"}"#,
                "format.mesage_key",
                "did you mean",
            ),
            (
                r#"{"type":"out_file","utc":true,"localtime":false}"#,
                "format.utc",
                "not both",
            ),
            (
                r#"{"type":"out_file","timezone":"Asia/Tokyo"}"#,
                "format.timezone",
                "fixed offset",
            ),
            (
                r#"{"type":"out_file","time_type":"julian"}"#,
                "format.time_type",
                "string, unixtime or float",
            ),
        ] {
            let e = with(&format!(r#""format":{section}"#)).unwrap_err();
            assert_eq!(e.field, field, "{section}");
            assert!(e.message.contains(rule), "{section}: {e}");
        }
        // The operator's Format offers message_key and add_newline with every type: where a
        // type has no use for one it is accepted with a warning naming it, as in Fluentd.
        for (section, warning) in [
            (
                r#"{"type":"json","message_key":"m"}"#,
                "format.message_key is not used by the json format",
            ),
            (
                r#"{"type":"msgpack","add_newline":true}"#,
                "format.add_newline is not used by the msgpack format",
            ),
        ] {
            let json = format!(r#"{{"stream_name":"s","region":"us-east-1","format":{section}}}"#);
            let s = Settings::from_json(&json, &mut no_env).unwrap();
            assert_eq!(s.warnings.len(), 1, "{section}: {:?}", s.warnings);
            assert!(s.warnings[0].contains(warning), "{:?}", s.warnings);
        }
    }

    /// An operator Output may carry keys and `process_credentials` both: the keys, as the
    /// Fluentd plugin takes them first, and a warning naming the other.
    #[test]
    fn keys_come_before_process_credentials_as_in_the_fluentd_plugin() {
        let json = format!(r#"{{{BASE},"process_credentials":{{"process":"/bin/creds"}}}}"#);
        let s = Settings::from_json(&json, &mut no_env).unwrap();
        assert!(matches!(&s.sink.credentials, CredentialConfig::Static(k) if k.access_key_id == "AKID"));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with("process_credentials is not used"),
            "{:?}",
            s.warnings
        );
        let c = parse(
            r#"{"stream_name":"s","region":"us-east-1","process_credentials":{"process":"/bin/creds"}}"#,
        )
        .unwrap();
        assert!(matches!(&c.credentials, CredentialConfig::Process(p) if p == "/bin/creds"));
    }

    #[test]
    fn record_options_are_read() {
        let c = with(r#""inject":{"tag_key":"tag","time_key":"time","timezone":"+09:00"},"compression":"gzip","chomp_record":true,"partition_key":"$.kubernetes.pod_name","log_truncate_max_size":0"#).unwrap();
        let inject = c.shape.inject.unwrap();
        assert_eq!(inject.tag_key.as_deref(), Some("tag"));
        assert_eq!(
            inject.time,
            TimeStyle::Text {
                format: Some(DEFAULT_INJECT_TIME_FORMAT.into()),
                zone: Zone::parse("+09:00").unwrap()
            }
        );
        assert_eq!(c.shape.compression, Some(Compression::Gzip));
        assert!(c.shape.chomp_record);
        assert_eq!(c.shape.partition_key.unwrap().0, "$.kubernetes.pod_name");
        assert_eq!(c.shape.log_truncate_max_size, 0);
        assert_eq!(
            with(r#""compression":"zstd""#).unwrap().shape.compression,
            Some(Compression::Zstd)
        );
        assert_eq!(
            with(r#""compression":"zlib""#).unwrap().shape.compression,
            Some(Compression::Zlib)
        );
        for (extra, field, rule) in [
            (r#""compression":"snappy""#, "compression", "unknown compression"),
            (r#""inject":{}"#, "inject", "tag_key or time_key"),
            (
                r#""inject":{"time_key":"t","time_type":"epoch"}"#,
                "inject.time_type",
                "string, unixtime",
            ),
            (
                r#""data_key":"log","inject":{"tag_key":"t"}"#,
                "inject",
                "no effect with data_key",
            ),
            (r#""partition_key":"$.a..b""#, "partition_key", "empty name"),
            (r#""data_key":"$x""#, "data_key", "expected '.' or '['"),
            (
                r#""fixed_partition_key":"k""#,
                "fixed_partition_key",
                "only with aggregate",
            ),
            (
                r#""aggregate":true,"fixed_partition_key":"k","partition_key":"p""#,
                "fixed_partition_key",
                "cannot be combined",
            ),
            (
                r#""aggregate":true,"fixed_partition_key":"""#,
                "fixed_partition_key",
                "1 to 256",
            ),
        ] {
            let e = err(extra);
            assert_eq!(e.field, field, "{extra}");
            assert!(e.message.contains(rule), "{extra}: {e}");
        }
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

    /// FIPS and dual-stack, from the settings, `AWS_USE_*_ENDPOINT` or the shared config
    /// file's profile (in that order), resolved by AWS's endpoint rules; the reason says which.
    #[test]
    fn fips_and_dual_stack_endpoints_come_from_settings_environment_or_profile() {
        let c = with(r#""use_fips_endpoint":true"#).unwrap();
        assert_eq!(c.endpoint, "https://kinesis-fips.us-east-1.amazonaws.com");
        assert!(
            c.endpoint_reason.contains("FIPS (use_fips_endpoint)"),
            "{}",
            c.endpoint_reason
        );
        let c = with(r#""use_fips_endpoint":"true","use_dualstack_endpoint":true"#).unwrap();
        assert_eq!(c.endpoint, "https://kinesis-fips.us-east-1.api.aws");
        let c = parse(r#"{"delivery_stream_name":"d","region":"us-gov-west-1","use_fips_endpoint":true}"#)
            .unwrap();
        assert_eq!(c.endpoint, "https://firehose-fips.us-gov-west-1.amazonaws.com");
        let c = parse(
            r#"{"stream_arn":"arn:aws:kinesis:eu-west-1:123456789012:stream/s","use_dualstack_endpoint":true}"#,
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://123456789012.data-kinesis.eu-west-1.api.aws");
        assert!(
            c.endpoint_reason.contains("region from stream_arn")
                && c.endpoint_reason.contains("account 123456789012"),
            "{}",
            c.endpoint_reason
        );

        let files = vec![(
            "/home/u/.aws/config",
            "[default]\nuse_fips_endpoint = true\n[profile v6]\nuse_dualstack_endpoint = true\nuse_fips_endpoint = false\n",
        )];
        let read = |vars: Vec<(&'static str, &'static str)>, json: &str| {
            Config::from_json(json, &mut Env(vars, files.clone()))
        };
        let plain = r#"{"stream_name":"s","region":"us-east-1"}"#;
        let c = read(vec![("HOME", "/home/u")], plain).unwrap();
        assert_eq!(c.endpoint, "https://kinesis-fips.us-east-1.amazonaws.com");
        assert!(
            c.endpoint_reason.contains("shared config file's profile"),
            "{}",
            c.endpoint_reason
        );
        let c = read(vec![("HOME", "/home/u"), ("AWS_PROFILE", "v6")], plain).unwrap();
        assert_eq!(c.endpoint, "https://kinesis.us-east-1.api.aws");
        let c = read(
            vec![("HOME", "/home/u"), ("AWS_USE_FIPS_ENDPOINT", "FALSE")],
            plain,
        )
        .unwrap();
        assert_eq!(
            c.endpoint, "https://kinesis.us-east-1.amazonaws.com",
            "the variable first"
        );
        let c = read(
            vec![("HOME", "/home/u"), ("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            r#"{"stream_name":"s","region":"cn-north-1","use_fips_endpoint":false}"#,
        )
        .unwrap();
        assert_eq!(
            c.endpoint, "https://kinesis.cn-north-1.api.amazonwebservices.com.cn",
            "the setting first"
        );
        assert!(
            c.endpoint_reason
                .contains("dual-stack (AWS_USE_DUALSTACK_ENDPOINT in the environment)")
                && c.endpoint_reason.contains("region from the region setting"),
            "{}",
            c.endpoint_reason
        );
        assert_eq!(
            with("").unwrap().endpoint_reason,
            "AWS's endpoint rules for kinesis in us-east-1 (region from the region setting)"
        );

        let e = read(vec![("AWS_USE_FIPS_ENDPOINT", "yes")], plain).unwrap_err();
        assert_eq!(e.field, "use_fips_endpoint");
        assert!(
            e.message
                .contains("AWS_USE_FIPS_ENDPOINT in the environment must be true or false"),
            "{e}"
        );
        assert_eq!(
            err(r#""use_dualstack_endpoint":"on""#).field,
            "use_dualstack_endpoint"
        );
        // A custom endpoint takes neither, as AWS's rules say; the setting is never dropped.
        let e = err(
            r#""use_fips_endpoint":true,"endpoint":"https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com""#,
        );
        assert_eq!(e.field, "use_fips_endpoint");
        assert!(e.message.contains("custom endpoint"), "{e}");
        let e = read(
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            r#"{"stream_name":"s","region":"us-east-1","endpoint":"http://127.0.0.1:1"}"#,
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("AWS_USE_DUALSTACK_ENDPOINT in the environment asks"),
            "{e}"
        );
        let c = read(
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "false")],
            r#"{"stream_name":"s","region":"us-east-1","endpoint":"http://127.0.0.1:1"}"#,
        )
        .unwrap();
        assert_eq!(c.endpoint_reason, "the endpoint setting");
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
