//! The `command` world: `wasi:cli/run`. NDJSON on stdin to Kinesis, a summary on stderr.
//!
//! `kinesis-output [--tag TAG] [--chunk-records N] [CONFIG.json]`: the configuration comes from the
//! file (its folder must be granted, `wasmtime run --dir`) or, without one, from the environment
//! (`KINESIS_OUTPUT_CONFIG`, …). Lines that are not JSON objects ship as `{"message": line}`, as
//! `kinesis-ship` does. The exit status is 0 when every line was delivered and 1 otherwise: WASI
//! 0.2's stable `exit` carries only success or failure, so a configuration error is also 1 (its
//! message says so).

use std::io::{BufRead, Write};

use super::bindings;
use super::Wasi;
use crate::config::Environment;
use crate::ingest::{self, DEFAULT_TIME_KEYS};
use crate::outcome::{Event, Outcome};
use crate::platform::Platform;
use crate::sink::Sink;
use bindings::exports::wasi::cli::run::Guest;

struct Component;

impl Guest for Component {
    fn run() -> Result<(), ()> {
        match main() {
            Ok(true) => Ok(()),
            Ok(false) => Err(()),
            Err(message) => {
                eprintln!("kinesis-output: {message}");
                Err(())
            }
        }
    }
}

const USAGE: &str = "usage: kinesis-output [--tag TAG] [--chunk-records N] [CONFIG.json] < records.ndjson";

/// Largest chunk handed to one `put`, in bytes of input.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

struct Args {
    tag: String,
    chunk_records: usize,
    config: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        tag: "stdin".to_string(),
        chunk_records: 1000,
        config: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tag" => args.tag = it.next().ok_or(format!("--tag needs a value\n{USAGE}"))?,
            "--chunk-records" => {
                args.chunk_records = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or(format!("--chunk-records needs a positive number\n{USAGE}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other if other.starts_with('-') => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            path => {
                if args.config.replace(path.to_string()).is_some() {
                    return Err(format!("only one configuration file\n{USAGE}"));
                }
            }
        }
    }
    Ok(args)
}

#[derive(Default)]
struct Totals {
    lines: usize,
    delivered: usize,
    failed: usize,
    rejected: usize,
    requests: u64,
    retries: u64,
    throttled: u64,
    /// The first problems, to print.
    problems: Vec<String>,
}

const PROBLEMS_SHOWN: usize = 20;

/// Ship standard input; `Ok(true)` when every line was delivered.
fn main() -> Result<bool, String> {
    let args = parse_args()?;
    let config = match &args.config {
        Some(path) => {
            let bytes = Wasi
                .read_file(path)
                .map_err(|e| format!("configuration: cannot read {path}: {e} (grant its folder to the component)"))?;
            String::from_utf8(bytes).map_err(|_| format!("configuration: {path} is not UTF-8"))?
        }
        None => crate::envconfig::from_env(&mut Wasi)
            .map_err(|e| format!("configuration: {e}"))?
            .ok_or_else(|| {
                format!("configuration: give a file or set KINESIS_OUTPUT_CONFIG or KINESIS_OUTPUT_<SETTING> variables\n{USAGE}")
            })?,
    };
    let mut sink = Sink::open(&config, &mut Wasi).map_err(|e| format!("configuration: {e}"))?;
    let keys: Vec<String> = DEFAULT_TIME_KEYS.iter().map(|k| k.to_string()).collect();

    let mut totals = Totals::default();
    let mut chunk: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut chunk_bytes = 0;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading standard input: {e}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let record = ingest::line_to_record(text);
        chunk_bytes += record.len();
        chunk.push((number, record));
        if chunk.len() >= args.chunk_records || chunk_bytes >= CHUNK_BYTES {
            ship(&mut sink, &args.tag, &keys, &chunk, &mut totals);
            chunk.clear();
            chunk_bytes = 0;
        }
    }
    if !chunk.is_empty() {
        ship(&mut sink, &args.tag, &keys, &chunk, &mut totals);
    }

    let mut err = std::io::stderr().lock();
    for p in &totals.problems {
        let _ = writeln!(err, "kinesis-output: {p}");
    }
    let hidden = (totals.failed + totals.rejected).saturating_sub(totals.problems.len());
    if hidden > 0 {
        let _ = writeln!(err, "kinesis-output: … and {hidden} more lines not delivered");
    }
    let _ = writeln!(
        err,
        "kinesis-output: {} lines: {} delivered, {} failed, {} rejected; {} requests, {} retries, {} throttled records; credentials: {}",
        totals.lines,
        totals.delivered,
        totals.failed,
        totals.rejected,
        totals.requests,
        totals.retries,
        totals.throttled,
        sink.credential_source()
    );
    Ok(totals.delivered == totals.lines)
}

fn ship(sink: &mut Sink, tag: &str, keys: &[String], chunk: &[(usize, Vec<u8>)], totals: &mut Totals) {
    let now = Wasi
        .wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let events: Vec<Event<'_>> = chunk
        .iter()
        .map(|(_, record)| {
            let (seconds, nanoseconds) = ingest::scan_time(record, keys)
                .ok()
                .flatten()
                .unwrap_or((now.as_secs() as i64, now.subsec_nanos()));
            Event {
                tag,
                seconds,
                nanoseconds,
                record,
            }
        })
        .collect();
    let report = sink.put(&events, &mut Wasi);
    totals.lines += chunk.len();
    totals.requests += report.counters.requests;
    totals.retries += report.counters.retries;
    totals.throttled += report.counters.throttled_records;
    for ((number, _), outcome) in chunk.iter().zip(&report.outcomes) {
        let problem = match outcome {
            Outcome::Delivered { .. } => {
                totals.delivered += 1;
                None
            }
            Outcome::Failed { code, message, .. } => {
                totals.failed += 1;
                Some(format!("line {number}: failed {code}: {message}"))
            }
            Outcome::Rejected(r) => {
                totals.rejected += 1;
                Some(format!(
                    "line {number}: rejected {}: {}",
                    ingest::rejection_code(r.kind),
                    r.message
                ))
            }
        };
        if let Some(p) = problem {
            if totals.problems.len() < PROBLEMS_SHOWN {
                totals.problems.push(p);
            }
        }
    }
}

bindings::export!(Component with_types_in bindings);
