//! The `command` world: `wasi:cli/run`. NDJSON on stdin to Kinesis, a summary on stderr.
//!
//! `kinesis-output [--tag TAG] [--chunk-records N] [CONFIG.json]`: the configuration comes from the
//! file (its folder must be granted, `wasmtime run --dir`) or, without one, from the environment
//! (`KINESIS_OUTPUT_CONFIG`, …). Lines follow the rules of every door ([`crate::front::lines`]),
//! and each event's time comes from its `time_keys` fields, else its time of arrival. Records of a
//! chunk that may still be stored (throttling, the network, …) are put again, only they, after a
//! wait that doubles from 1 s (at most 5 min), within `buffer.retry_timeout` /
//! `retry_max_times` (the delivery rule, [`crate::front::ledger`]). The exit status is 0 when
//! every line was delivered and 1 otherwise: WASI 0.2's stable `exit` carries only success or
//! failure, so a configuration error is also 1 (its message says so).

use std::io::Write;

use super::bindings;
use super::Wasi;
use crate::config::{env as envconfig, Settings};
use crate::delivery::Sink;
use crate::front::ledger::{door_backoff, Attempt, Rule, Verdict};
use crate::front::lines::{Line, Lines};
use crate::front::time::{arrival, event_time};
use crate::front::Tally;
use crate::kinesis::Event;
use crate::platform::{Environment, Platform};
use bindings::exports::wasi::cli::run::Guest;

struct Component;

impl Guest for Component {
    fn run() -> Result<(), ()> {
        match main() {
            Ok(true) => Ok(()),
            Ok(false) => Err(()),
            Err(message) => {
                let _ = writeln!(std::io::stderr(), "kinesis-output: {message}");
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
        None => envconfig::from_env(&mut Wasi)
            .map_err(|e| format!("configuration: {e}"))?
            .ok_or_else(|| {
                format!("configuration: give a file or set KINESIS_OUTPUT_CONFIG or KINESIS_OUTPUT_<SETTING> variables\n{USAGE}")
            })?,
    };
    let settings = Settings::from_json(&config, &mut Wasi).map_err(|e| format!("configuration: {e}"))?;
    let keys = settings.front.time_keys;
    let rule = Rule {
        bound: settings.buffer.retry,
        drop_failed: settings.sink.drop_failed_records,
    };
    let mut sink = Sink::new_resolved(settings.sink, &mut Wasi).map_err(|e| format!("configuration: {e}"))?;

    let mut tally = Tally::default();
    let mut chunk: Vec<Line> = Vec::new();
    let mut chunk_bytes = 0;
    for line in Lines::new(std::io::stdin().lock()) {
        let line = line.map_err(|e| format!("reading standard input: {e}"))?;
        chunk_bytes += line.record.len();
        chunk.push(line);
        if chunk.len() >= args.chunk_records || chunk_bytes >= CHUNK_BYTES {
            ship(&mut sink, &args.tag, &keys, &rule, &chunk, &mut tally);
            chunk.clear();
            chunk_bytes = 0;
        }
    }
    if !chunk.is_empty() {
        ship(&mut sink, &args.tag, &keys, &rule, &chunk, &mut tally);
    }

    let mut err = std::io::stderr().lock();
    for p in tally.problems.iter().take(PROBLEMS_SHOWN) {
        let _ = writeln!(err, "kinesis-output: {p}");
    }
    let hidden = tally.problems.len().saturating_sub(PROBLEMS_SHOWN);
    if hidden > 0 {
        let _ = writeln!(err, "kinesis-output: … and {hidden} more lines not delivered");
    }
    let _ = writeln!(
        err,
        "kinesis-output: {}; credentials: {}",
        tally.summary(),
        sink.credential_source()
    );
    Ok(tally.all_delivered())
}

/// Ship one chunk until every record is settled (or the retry bound is spent).
fn ship(sink: &mut Sink, tag: &str, keys: &[String], rule: &Rule, chunk: &[Line], tally: &mut Tally) {
    let arrived = arrival(Wasi.wall_clock());
    let times: Vec<(i64, u32)> = chunk
        .iter()
        .map(|line| event_time(&line.record, keys, arrived))
        .collect();
    let mut attempt = Attempt::begin(None, chunk.len() as u32, unix_now());
    loop {
        let places = attempt.to_send();
        let events: Vec<Event<'_>> = places
            .iter()
            .map(|&p| {
                let (seconds, nanoseconds) = times[p as usize];
                Event {
                    tag,
                    seconds,
                    nanoseconds,
                    record: &chunk[p as usize].record,
                }
            })
            .collect();
        let report = sink.put(&events, &mut Wasi);
        let line_of = |i: usize| format!("line {}", chunk[places[i] as usize].number);
        if let Some(warning) = crate::front::report::key_cut_warning(&report, line_of) {
            let _ = writeln!(std::io::stderr(), "kinesis-output: {warning}");
        }
        let settlement = attempt.settle(&places, report.outcomes, rule, unix_now());
        tally.add_counters(&report.counters);
        for _ in 0..settlement.stored_now {
            tally.add_delivered();
        }
        for (place, outcome) in &settlement.finals {
            tally.add(chunk[*place as usize].number, outcome);
        }
        if settlement.verdict != Verdict::Retry {
            break;
        }
        let wait = door_backoff(attempt.entry.attempts);
        let why = match &settlement.why_held {
            Some(crate::kinesis::Outcome::Failed { code, message, .. }) => format!(" ({code}: {message})"),
            _ => String::new(),
        };
        let _ = writeln!(
            std::io::stderr(),
            "kinesis-output: {} records not stored yet{why}; sending them again in {wait:?}",
            settlement.held.len()
        );
        Wasi.sleep(wait);
        attempt.next();
    }
    tally.credential_source = sink.credential_source();
}

fn unix_now() -> u64 {
    Wasi.wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

bindings::export!(Component with_types_in bindings);
