//! `kinesis-ship`, the reference host: NDJSON in, chunks through the component, a summary and an
//! optional JSON report out.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

use crate::runtime::{
    Event, Instance, InstanceOptions, Outcome, RejectionKind, Runtime, SinkHandle, Timestamp, Upstream,
};

/// Exit status: everything delivered.
pub const EXIT_OK: i32 = 0;
/// Exit status: some records were not delivered.
pub const EXIT_NOT_DELIVERED: i32 = 1;
/// Exit status: bad configuration or usage.
pub const EXIT_USAGE: i32 = 2;

/// The environment handed to the component: every `AWS_*` variable (region, credentials, web
/// identity, container credentials, profiles) and `HOME` (for `~/.aws`).
pub fn component_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
        .collect()
}

/// Files the component may need to read: token files, shared AWS files, `{"file": …}` secrets.
/// Their folders are granted read-only, at the same paths, with the folders given by `--allow-dir`.
pub fn granted_dirs(config: &Value, env: &[(String, String)], extra: &[PathBuf]) -> Vec<PathBuf> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| PathBuf::from(v));
    let mut files: Vec<PathBuf> = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    ]
    .iter()
    .filter_map(|k| get(k))
    .collect();
    if let Some(home) = get("HOME") {
        files.push(home.join(".aws").join("credentials"));
    }
    for key in ["aws_key_id", "aws_sec_key", "aws_ses_token"] {
        if let Some(path) = config
            .get(key)
            .and_then(|v| v.get("file"))
            .and_then(Value::as_str)
        {
            files.push(PathBuf::from(path));
        }
    }
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .chain(extra.iter().cloned())
        .filter(|d| d.is_absolute() && d.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The `buffer` settings the reference host honours (Fluentd's names).
#[derive(Debug, Clone, PartialEq)]
pub struct BufferSettings {
    /// Flush a chunk when it holds this many records (`chunk_limit_records`, default: no limit).
    pub chunk_limit_records: Option<usize>,
    /// Flush a chunk when its records reach this many bytes (`chunk_limit_size`, default 8 MiB).
    pub chunk_limit_size: usize,
    /// Flush a chunk this long after its first record arrived (`flush_interval`, default 60 s).
    pub flush_interval: Duration,
    /// At most this many bytes buffered (`total_limit_size`, default 512 MiB); must be at least
    /// `chunk_limit_size`. The reference host holds one chunk at a time.
    pub total_limit_size: usize,
    /// `throw_exception`, `block` or `drop_oldest_chunk`; the reference host reads its input only
    /// as fast as it ships, so it never overflows and always behaves as `block`.
    pub overflow_action: String,
}

impl Default for BufferSettings {
    fn default() -> Self {
        BufferSettings {
            chunk_limit_records: None,
            chunk_limit_size: 8 * 1024 * 1024,
            flush_interval: Duration::from_secs(60),
            total_limit_size: 512 * 1024 * 1024,
            overflow_action: "throw_exception".to_string(),
        }
    }
}

/// Fluentd buffer settings that have no meaning for this host: accepted, and named in a warning.
const FLUENTD_ONLY_BUFFER_KEYS: &[&str] = &[
    "type",
    "@type",
    "path",
    "timekey",
    "timekey_wait",
    "timekey_use_utc",
    "timekey_zone",
    "flush_mode",
    "flush_thread_count",
    "flush_at_shutdown",
    "retry_forever",
    "retry_max_times",
    "retry_timeout",
    "retry_type",
    "retry_wait",
    "retry_max_interval",
    "retry_exponential_backoff_base",
    "retry_randomize",
    "queued_chunks_limit_size",
    "compress",
    "delayed_commit_timeout",
    "disabled",
    "tags",
    "chunk_full_threshold",
    "queue_limit_length",
];

/// A size in Fluentd's notation: a number with an optional `k`, `m`, `g` or `t` suffix (1024-based).
pub fn parse_size(field: &str, v: &Value) -> Result<usize> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => bail!("{field}: must be a size like 8m or 1048576"),
    };
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
        _ => bail!("{field}: unknown size unit {unit:?} (use k, m, g or t)"),
    };
    let number: f64 = digits
        .trim()
        .parse()
        .map_err(|_| anyhow!("{field}: {v} is not a size like 8m or 1048576"))?;
    if !(number.is_finite() && number > 0.0) {
        bail!("{field}: must be above zero");
    }
    Ok((number * multiplier) as usize)
}

/// A duration in Fluentd's notation: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_duration(field: &str, v: &Value) -> Result<Duration> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => bail!("{field}: must be a duration like 60s or 1m"),
    };
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
        .map_err(|_| anyhow!("{field}: {v} is not a duration like 60s or 1m"))?;
    if !(n.is_finite() && n >= 0.0) {
        bail!("{field}: must not be negative");
    }
    Ok(Duration::from_secs_f64(n * factor))
}

impl BufferSettings {
    /// Read a `buffer` section; returns the settings and warnings for Fluentd-only keys.
    pub fn from_value(v: Option<&Value>) -> Result<(BufferSettings, Vec<String>)> {
        let mut settings = BufferSettings::default();
        let mut warnings = Vec::new();
        let Some(v) = v else {
            return Ok((settings, warnings));
        };
        let Value::Object(map) = v else {
            bail!("buffer: must be an object");
        };
        for (key, value) in map {
            let field = format!("buffer.{key}");
            match key.as_str() {
                "chunk_limit_records" => {
                    let n = value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow!("{field}: must be a whole number above zero"))?;
                    settings.chunk_limit_records = Some(n as usize);
                }
                "chunk_limit_size" => settings.chunk_limit_size = parse_size(&field, value)?,
                "total_limit_size" => settings.total_limit_size = parse_size(&field, value)?,
                "flush_interval" => settings.flush_interval = parse_duration(&field, value)?,
                "overflow_action" => {
                    let action = value.as_str().unwrap_or_default();
                    if !matches!(action, "throw_exception" | "block" | "drop_oldest_chunk") {
                        bail!("{field}: must be throw_exception, block or drop_oldest_chunk");
                    }
                    settings.overflow_action = action.to_string();
                }
                k if FLUENTD_ONLY_BUFFER_KEYS.contains(&k) => warnings.push(format!(
                    "{field} is a Fluentd setting with no effect in kinesis-ship"
                )),
                _ => bail!("{field}: unknown setting"),
            }
        }
        if settings.total_limit_size < settings.chunk_limit_size {
            bail!(
                "buffer.total_limit_size: {} is below chunk_limit_size ({})",
                settings.total_limit_size,
                settings.chunk_limit_size
            );
        }
        Ok((settings, warnings))
    }
}

/// Read a config file (JSON, or YAML by extension or content). A logging-operator output spec
/// (`spec: kinesisStream: …`) is unwrapped to its `kinesisStream` section.
pub fn read_config(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    let mut value: Value = if is_yaml {
        serde_yaml::from_str(&text).map_err(|e| anyhow!("{}: not valid YAML: {e}", path.display()))?
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(json_err) => serde_yaml::from_str(&text)
                .map_err(|_| anyhow!("{}: not valid JSON: {json_err}", path.display()))?,
        }
    };
    for wrapper in ["spec", "kinesisStream"] {
        if let Some(inner) = value.get(wrapper).filter(|v| v.is_object()) {
            value = inner.clone();
        }
    }
    if !value.is_object() {
        bail!("{}: the configuration must be an object", path.display());
    }
    Ok(value)
}

/// One input line that is not delivered, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub outcome: &'static str,
    pub code: String,
    pub message: String,
}

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub lines: usize,
    pub delivered: usize,
    pub failed: usize,
    pub rejected: usize,
    pub requests: u64,
    pub retries: u64,
    pub throttled_records: u64,
    pub bytes_sent: u64,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Where the component got its credentials (from the last chunk).
    pub credential_source: String,
}

impl Summary {
    pub fn to_report(&self) -> Value {
        json!({
            "delivered": self.delivered,
            "failed": self.failed,
            "rejected": self.rejected,
            "lines": self.lines,
            "requests": self.requests,
            "retries": self.retries,
            "throttled_records": self.throttled_records,
            "bytes_sent": self.bytes_sent,
            "credential_source": self.credential_source,
            "warnings": self.warnings,
            "problems": self.problems.iter().map(|p| json!({
                "line": p.line,
                "outcome": p.outcome,
                "code": p.code,
                "message": p.message,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Turn an input line into a record: a JSON object as it is, anything else as `{"message": line}`
/// (the same rule as the command world's).
pub use kinesis_output::ingest::line_to_record;

/// `kinesis-ship env`: the environment variables that configure the proxy and command worlds
/// like `config` (the component's settings; `buffer` is this host's and is left out). One
/// variable per setting, or with `single` the whole document as `KINESIS_OUTPUT_CONFIG`. `shell`
/// quotes each line for `export` in a POSIX shell; otherwise the lines suit an env file
/// (`docker --env-file`, `systemd`'s `EnvironmentFile`).
pub fn env_lines(config: &Value, single: bool, shell: bool) -> Result<String> {
    let mut map = match config {
        Value::Object(m) => m.clone(),
        _ => bail!("the configuration must be a mapping of settings"),
    };
    map.remove("buffer");
    let vars = if single {
        vec![(
            kinesis_output::envconfig::CONFIG_VAR.to_string(),
            Value::Object(map).to_string(),
        )]
    } else {
        kinesis_output::envconfig::to_variables(&map).map_err(|e| anyhow!("{}: {}", e.field, e.message))?
    };
    let mut out = String::new();
    for (name, value) in vars {
        if shell {
            out.push_str(&format!("export {name}='{}'\n", value.replace('\'', "'\\''")));
        } else {
            if value.contains('\n') {
                bail!("{name}: a value with a line break cannot go in an env file; use --shell");
            }
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    Ok(out)
}

/// The command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub input: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub tag: String,
    pub quiet: bool,
    /// Extra folders the component may read (`--allow-dir`).
    pub allow_dirs: Vec<PathBuf>,
    /// Extra authorities the component may reach (`--allow-authority`), beyond the ones its
    /// configuration needs.
    pub allow_authorities: Vec<String>,
    /// The most linear memory the component may use (`--max-memory`, MiB).
    pub max_memory_mib: Option<usize>,
}

pub const USAGE: &str = "usage: kinesis-ship --config FILE [--input FILE|-] [--report FILE] [--component FILE] [--tag TAG] [--allow-dir DIR]... [--allow-authority HOST:PORT]... [--max-memory MIB] [--quiet]

Ships NDJSON log lines to Amazon Kinesis Data Streams through the kinesis-output component.
  --config FILE     JSON or YAML configuration (the component's settings plus `buffer`)
  --input FILE|-    NDJSON input, one record a line (default: standard input)
  --report FILE     write a JSON report: delivered, failed, rejected and every problem
  --component FILE  the component (default: $KINESIS_OUTPUT_WASM, or kinesis_output.wasm beside this program)
  --tag TAG         the tag given to every event (default: kinesis-ship)
  --allow-dir DIR   a folder the component may read (repeatable); the folders of AWS token
                    files, shared AWS files and file secrets are granted by themselves
  --allow-authority HOST:PORT
                    another address the component may connect to (repeatable); by itself it
                    reaches only the Kinesis endpoint and the credential endpoints it needs
  --max-memory MIB  the most linear memory the component may use; a put that needs more traps:
                    a new instance sends what the service had not stored, and what traps again
                    is reported failed (ComponentTrap)
  --quiet           no progress or summary on stderr
Exit status: 0 all delivered, 1 some not delivered, 2 configuration or usage error.";

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let mut config = None;
    let mut input = None;
    let mut report = None;
    let mut component = None;
    let mut tag = "kinesis-ship".to_string();
    let mut quiet = false;
    let mut allow_dirs = Vec::new();
    let mut allow_authorities = Vec::new();
    let mut max_memory_mib = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--input" => input = Some(PathBuf::from(value("--input")?)),
            "--report" => report = Some(PathBuf::from(value("--report")?)),
            "--component" => component = Some(PathBuf::from(value("--component")?)),
            "--tag" => tag = value("--tag")?,
            "--allow-dir" => allow_dirs.push(PathBuf::from(value("--allow-dir")?)),
            "--allow-authority" => allow_authorities.push(value("--allow-authority")?.to_ascii_lowercase()),
            "--max-memory" => max_memory_mib = Some(parse_max_memory(&value("--max-memory")?)?),
            "--quiet" => quiet = true,
            "-h" | "--help" => bail!("help"),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let config = config.ok_or_else(|| anyhow!("--config is required"))?;
    let input = input.filter(|p| p.as_os_str() != "-");
    Ok(Options {
        config,
        input,
        report,
        component,
        tag,
        quiet,
        allow_dirs,
        allow_authorities,
        max_memory_mib,
    })
}

/// The component's environment seen natively: its variables, and files at the same paths (the
/// component is granted their folders at those paths).
pub struct NativeEnv<'a>(pub &'a [(String, String)]);

impl kinesis_output::config::Environment for NativeEnv<'_> {
    fn var(&mut self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))
    }
}

/// The egress policy of `kinesis-ship`: the Kinesis endpoint and the credential endpoints the
/// configuration needs (resolved natively the way the component resolves them, from the same
/// environment and files), plus `extra`. A configuration that does not parse allows only
/// `extra`: the component reports the configuration error before it sends anything.
pub fn egress_policy(config_json: &str, env: &[(String, String)], extra: &[String]) -> Vec<String> {
    let config = kinesis_output::Config::from_json(config_json, &mut NativeEnv(env)).ok();
    egress_for(config.as_ref(), env, extra)
}

/// [`egress_policy`] for a configuration already read natively (`None`: it did not parse).
fn egress_for(
    config: Option<&kinesis_output::Config>,
    env: &[(String, String)],
    extra: &[String],
) -> Vec<String> {
    let mut allowed = config
        .and_then(|config| kinesis_output::egress::authorities(config, &mut NativeEnv(env)).ok())
        .unwrap_or_default();
    for a in extra {
        if !allowed.contains(a) {
            allowed.push(a.clone());
        }
    }
    allowed
}

/// `--max-memory`'s value: MiB from 1 to 4096.
pub fn parse_max_memory(text: &str) -> Result<usize> {
    text.parse::<usize>()
        .ok()
        .filter(|m| (1..=4096).contains(m))
        .ok_or_else(|| anyhow!("--max-memory {text:?} must be a number of MiB from 1 to 4096"))
}

/// A problem that ends the run with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError(e.to_string()))
}

/// A line read from the input, with its 1-based number.
struct Line {
    number: usize,
    record: Vec<u8>,
}

/// Ship everything from the input. Configuration problems are [`UsageError`]s.
pub async fn run(opts: &Options) -> Result<Summary> {
    let mut config = read_config(&opts.config).map_err(usage)?;
    let buffer_value = config.as_object_mut().and_then(|m| m.remove("buffer"));
    let (buffer, mut warnings) = BufferSettings::from_value(buffer_value.as_ref()).map_err(usage)?;
    let config_text = config.to_string();
    if let Some(w) = config
        .get("endpoint")
        .and_then(Value::as_str)
        .and_then(kinesis_output::egress::plain_http_warning)
    {
        warnings.push(w);
    }

    let path = opts
        .component
        .clone()
        .unwrap_or_else(crate::runtime::component_path);
    let runtime = Runtime::load(&path).map_err(usage)?;
    let env = component_env();
    let mut options = InstanceOptions::new(Upstream::Network);
    options.env = env.clone();
    // The configuration as the component will read it, read once natively: for the egress
    // policy, and after a trap to format records as the component did.
    let native = kinesis_output::Config::from_json(&config_text, &mut NativeEnv(&env)).ok();
    options.egress = Some(egress_for(native.as_ref(), &env, &opts.allow_authorities));
    options.max_memory = opts.max_memory_mib.map(|m| m * 1024 * 1024);
    // After a trap, what the service already stored is known from the PutRecords answers the
    // host saw; the native core formats each record as the component did, to tell them apart.
    options.track_accepted = true;
    let native_config = native.filter(|c| !c.aggregate);
    for dir in granted_dirs(&config, &env, &opts.allow_dirs) {
        let guest = dir.to_string_lossy().into_owned();
        options = options.dir(dir, &guest);
    }
    let (mut instance, mut sink) = open(&runtime, &options, &config_text).await?;

    let mut summary = Summary {
        warnings,
        ..Summary::default()
    };
    if !opts.quiet {
        for w in &summary.warnings {
            eprintln!("kinesis-ship: warning: {w}");
        }
    }

    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Line>>(4096);
    let input = opts.input.clone();
    let reader = std::thread::spawn(move || read_lines(input, tx));

    let progress = !opts.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut chunk: Vec<Line> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut chunk_started = Instant::now();
    let mut done = false;
    while !done {
        let wait = if chunk.is_empty() {
            Duration::from_secs(3600)
        } else {
            buffer.flush_interval.saturating_sub(chunk_started.elapsed())
        };
        let flush = match rx.recv_timeout(wait) {
            Ok(Ok(line)) => {
                if chunk.is_empty() {
                    chunk_started = Instant::now();
                }
                summary.lines += 1;
                chunk_bytes += line.record.len();
                chunk.push(line);
                buffer.chunk_limit_records.is_some_and(|n| chunk.len() >= n)
                    || chunk_bytes >= buffer.chunk_limit_size
            }
            Ok(Err(e)) => return Err(anyhow!("reading the input: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => !chunk.is_empty(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                done = true;
                !chunk.is_empty()
            }
        };
        if flush {
            let lines = std::mem::take(&mut chunk);
            chunk_bytes = 0;
            // One time for the chunk, kept if it has to be sent again.
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let time = Timestamp {
                seconds: now.as_secs() as i64,
                nanoseconds: now.subsec_nanos(),
            };
            instance.clear_accepted();
            if let Err(trap) = ship_chunk(&mut instance, sink, &lines, &opts.tag, time, &mut summary).await {
                // A trap ends the instance. The records the service answered as stored are
                // counted delivered; the others go again through a new instance. Without the
                // native view of the configuration (or with aggregation, where records are
                // packed together), they are all reported failed instead: none is sent twice.
                let message = format!("{trap:#}");
                let accepted = instance.take_accepted();
                (instance, sink) = open(&runtime, &options, &config_text).await?;
                let again = match &native_config {
                    Some(config) => {
                        let (stored, again) = split_stored(config, &lines, &opts.tag, time, accepted);
                        summary.delivered += stored;
                        if !opts.quiet {
                            eprintln!(
                                "kinesis-ship: the component trapped after the service stored {stored} of this chunk's {} records; sending the other {} again in a new instance: {message}",
                                lines.len(),
                                again.len()
                            );
                        }
                        again
                    }
                    None => lines,
                };
                let failed = match &native_config {
                    Some(_) if again.is_empty() => None,
                    Some(_) => {
                        match ship_chunk(&mut instance, sink, &again, &opts.tag, time, &mut summary).await {
                            Ok(()) => None,
                            Err(trap) => {
                                (instance, sink) = open(&runtime, &options, &config_text).await?;
                                Some((again, format!("{trap:#}")))
                            }
                        }
                    }
                    None => Some((again, message)),
                };
                if let Some((lines, message)) = failed {
                    if !opts.quiet {
                        eprintln!(
                            "kinesis-ship: the component trapped; {} records are reported failed (ComponentTrap): {message}",
                            lines.len()
                        );
                    }
                    for line in &lines {
                        summary.failed += 1;
                        summary.problems.push(Problem {
                            line: line.number,
                            outcome: "failed",
                            code: "ComponentTrap".to_string(),
                            message: message.clone(),
                        });
                    }
                }
            }
            if progress {
                eprint!(
                    "\r\x1b[2K{} lines: {} delivered, {} failed, {} rejected",
                    summary.lines, summary.delivered, summary.failed, summary.rejected
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
    reader.join().map_err(|_| anyhow!("the input reader panicked"))?;
    if progress {
        eprintln!();
    }
    if !opts.quiet {
        eprintln!(
            "kinesis-ship: {} lines: {} delivered, {} failed, {} rejected; {} requests, {} retries, {} throttled, {} bytes sent in {:.2?}",
            summary.lines,
            summary.delivered,
            summary.failed,
            summary.rejected,
            summary.requests,
            summary.retries,
            summary.throttled_records,
            summary.bytes_sent,
            started.elapsed()
        );
        if !summary.credential_source.is_empty() {
            eprintln!("kinesis-ship: credentials: {}", summary.credential_source);
        }
        for p in summary.problems.iter().take(10) {
            eprintln!("  line {}: {} {}: {}", p.line, p.outcome, p.code, p.message);
        }
        if summary.problems.len() > 10 {
            eprintln!("  … and {} more (see --report)", summary.problems.len() - 10);
        }
    }
    Ok(summary)
}

async fn open(runtime: &Runtime, options: &InstanceOptions, config: &str) -> Result<(Instance, SinkHandle)> {
    let mut instance = runtime.instantiate_with(options.clone()).await?;
    match instance.open(config).await? {
        Ok(sink) => Ok((instance, sink)),
        Err(e) if e.field.is_empty() => Err(usage(format!("configuration: {}", e.message))),
        Err(e) => Err(usage(format!("configuration: {}: {}", e.field, e.message))),
    }
}

fn read_lines(input: Option<PathBuf>, tx: mpsc::SyncSender<std::io::Result<Line>>) {
    let reader: Box<dyn BufRead> = match input {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                )));
                return;
            }
        },
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    for (i, line) in reader.lines().enumerate() {
        let item = match line {
            // Blank lines carry no record.
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => Ok(Line {
                number: i + 1,
                record: line_to_record(text.trim_end_matches('\r')),
            }),
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.send(item).is_err() || failed {
            return;
        }
    }
}

/// Of `lines` put with `tag` and `time`, how many the service stored according to `accepted`
/// (base64 `Data` answered as stored, counted with repeats), and the rest.
fn split_stored(
    config: &kinesis_output::Config,
    lines: &[Line],
    tag: &str,
    time: Timestamp,
    accepted: Vec<String>,
) -> (usize, Vec<Line>) {
    use base64::Engine as _;
    let mut left: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for data in accepted {
        *left.entry(data).or_default() += 1;
    }
    let mut stored = 0;
    let mut again = Vec::new();
    for line in lines {
        let event = kinesis_output::Event {
            tag,
            seconds: time.seconds,
            nanoseconds: time.nanoseconds,
            record: &line.record,
        };
        // The key does not matter here: only the data is compared.
        let data = kinesis_output::record::prepare(config, &event, &mut |b| b.fill(0))
            .ok()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p.data));
        match data.and_then(|d| left.get_mut(&d).filter(|n| **n > 0)) {
            Some(n) => {
                *n -= 1;
                stored += 1;
            }
            None => again.push(Line {
                number: line.number,
                record: line.record.clone(),
            }),
        }
    }
    (stored, again)
}

async fn ship_chunk(
    instance: &mut Instance,
    sink: SinkHandle,
    lines: &[Line],
    tag: &str,
    time: Timestamp,
    summary: &mut Summary,
) -> Result<()> {
    let events: Vec<Event> = lines
        .iter()
        .map(|l| Event {
            tag: tag.to_string(),
            time,
            record: l.record.clone(),
        })
        .collect();
    let report = instance.put(sink, &events).await?;
    summary.requests += report.counters.requests;
    summary.retries += report.counters.retries;
    summary.throttled_records += report.counters.throttled_records;
    summary.bytes_sent += report.counters.bytes_sent;
    summary.credential_source = report.credential_source;
    for (line, outcome) in lines.iter().zip(report.outcomes) {
        match outcome {
            Outcome::Delivered(_) => summary.delivered += 1,
            Outcome::Failed(f) => {
                summary.failed += 1;
                summary.problems.push(Problem {
                    line: line.number,
                    outcome: "failed",
                    code: f.code,
                    message: format!("{} (after {} attempts)", f.message, f.attempts),
                });
            }
            Outcome::Rejected(r) => {
                summary.rejected += 1;
                summary.problems.push(Problem {
                    line: line.number,
                    outcome: "rejected",
                    code: rejection_code(r.kind).to_string(),
                    message: r.message,
                });
            }
        }
    }
    Ok(())
}

fn rejection_code(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::NotJson => "not-json",
        RejectionKind::NotAnObject => "not-an-object",
        RejectionKind::NoPartitionKey => "no-partition-key",
        RejectionKind::TooLarge => "too-large",
        RejectionKind::NoDataKey => "no-data-key",
        RejectionKind::NoStreamName => "no-stream-name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn buffer_settings_are_checked_and_fluentd_only_keys_named() {
        let (b, w) = BufferSettings::from_value(Some(&json!({
            "chunk_limit_records": 100, "chunk_limit_size": "1m", "flush_interval": "5s",
            "timekey": "10m", "overflow_action": "block"
        })))
        .unwrap();
        assert_eq!(b.chunk_limit_records, Some(100));
        assert_eq!(b.chunk_limit_size, 1024 * 1024);
        assert_eq!(b.flush_interval, Duration::from_secs(5));
        assert_eq!(
            w,
            vec!["buffer.timekey is a Fluentd setting with no effect in kinesis-ship"]
        );
        let e = BufferSettings::from_value(Some(&json!({"chunk_limit_recs": 1}))).unwrap_err();
        assert!(e.to_string().contains("buffer.chunk_limit_recs: unknown setting"));
        let e = BufferSettings::from_value(Some(&json!({"overflow_action": "panic"}))).unwrap_err();
        assert!(e.to_string().contains("buffer.overflow_action"));
        let e =
            BufferSettings::from_value(Some(&json!({"chunk_limit_size": "8m", "total_limit_size": "1m"})))
                .unwrap_err();
        assert!(e.to_string().contains("total_limit_size"));
        assert_eq!(
            BufferSettings::from_value(None).unwrap().0,
            BufferSettings::default()
        );
    }

    #[test]
    fn lines_that_are_not_objects_are_wrapped() {
        assert_eq!(line_to_record(r#"{"a":1}"#), br#"{"a":1}"#);
        assert_eq!(line_to_record("plain text"), br#"{"message":"plain text"}"#);
        assert_eq!(line_to_record("[1,2]"), br#"{"message":"[1,2]"}"#);
        assert_eq!(line_to_record("say \"hi\""), br#"{"message":"say \"hi\""}"#);
    }

    #[test]
    fn logging_operator_specs_are_unwrapped() {
        let dir = std::env::temp_dir().join(format!("kinesis-ship-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("output.yaml");
        std::fs::write(
            &yaml,
            "spec:\n  kinesisStream:\n    stream_name: example-stream-name\n    region: us-east-1\n    format:\n      type: json\n",
        )
        .unwrap();
        let v = read_config(&yaml).unwrap();
        assert_eq!(
            v,
            json!({"stream_name": "example-stream-name", "region": "us-east-1", "format": {"type": "json"}})
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{ nope").unwrap();
        assert!(read_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arguments() {
        let o = parse_args(["--config", "c.json", "--input", "-", "--report", "r.json"].map(String::from))
            .unwrap();
        assert_eq!(o.input, None);
        assert_eq!(o.report, Some(PathBuf::from("r.json")));
        assert!(parse_args(["--input", "x"].map(String::from)).is_err());
        assert!(parse_args(["--config"].map(String::from)).is_err());
        assert!(parse_args(["--what"].map(String::from)).is_err());
    }
}
