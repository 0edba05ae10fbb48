//! `kinesis-ship` (ship): NDJSON lines in, chunks through the component, a summary and an
//! optional JSON report out. Lines follow the rules every door shares (`front::lines`), each
//! event's time is read from its own `time_keys` fields (else the time it was read), and the
//! report is the one every door gives (`front::report`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};

use kinesis_output::delivery::egress::plain_http_warning;
use kinesis_output::front::lines::{Line, Lines};
use kinesis_output::front::time::{arrival, event_time, EventTime};
use kinesis_output::front::Tally;
use kinesis_output::Code;

use crate::recovery::split_stored;
use crate::setup::{component_env, egress_policy, read_config, settings, Sandbox};
use crate::sink::{core_report, Event, Instance, InstanceOptions, Runtime, SinkHandle, Timestamp};

/// A problem with the configuration or the command line: the run ends with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `e`, whole (with its causes), as a [`UsageError`].
pub fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(UsageError(format!("{:#}", e.into())))
}

/// What `kinesis-ship` (ship) is asked to do.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    pub config: PathBuf,
    /// `None`: standard input.
    pub input: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub tag: String,
    pub quiet: bool,
    pub sandbox: Sandbox,
}

/// What a run came to.
#[derive(Debug, Clone, Default)]
pub struct Shipped {
    pub tally: Tally,
    /// Settings accepted without effect, and other advice, one sentence each.
    pub warnings: Vec<String>,
}

impl Shipped {
    /// The `--report` document.
    pub fn report(&self) -> serde_json::Value {
        self.tally.to_report(&self.warnings)
    }
}

/// A line of the input with the time of its event.
struct Read {
    line: Line,
    time: EventTime,
}

/// Ship everything from the input. Configuration problems are [`UsageError`]s.
pub async fn run(opts: &ShipOptions) -> Result<Shipped> {
    let mut config = read_config(&opts.config).map_err(usage)?;
    opts.sandbox.configure(&mut config);
    let env = component_env();
    // The configuration read natively, once, as the component will read it: for the buffer
    // and event-time settings, the egress policy, and after a trap to format records as the
    // component did.
    let config_text = config.to_string();
    let settings = settings(&config_text, &env).map_err(|e| usage(anyhow!("configuration: {e}")))?;
    let mut warnings = settings.warnings.clone();
    warnings.extend(plain_http_warning(&settings.sink.endpoint));

    let path = opts
        .component
        .clone()
        .unwrap_or_else(crate::engine::component_path);
    let runtime = Runtime::load(&path).map_err(usage)?;
    let egress = egress_policy(Some(&settings.sink), &env);
    let mut options = opts.sandbox.options(env, &config, egress);
    // After a trap, what the service already stored is known from the PutRecords answers the
    // host saw; the native core formats each record as the component did, to tell them apart.
    options.track_accepted = true;
    let native_shape = Some(settings.sink.shape.clone()).filter(|s| !s.aggregate);
    let (mut instance, mut sink) = open(&runtime, &options, &config_text).await?;

    let mut shipped = Shipped {
        warnings,
        ..Shipped::default()
    };
    if !opts.quiet {
        for w in &shipped.warnings {
            eprintln!("kinesis-ship: warning: {w}");
        }
    }

    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Read>>(4096);
    let input = opts.input.clone();
    let keys = settings.front.time_keys.clone();
    let reader = std::thread::spawn(move || read_lines(input, &keys, tx));

    let buffer = &settings.buffer;
    let tally = &mut shipped.tally;
    let progress = !opts.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut chunk: Vec<Read> = Vec::new();
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
            Ok(Ok(read)) => {
                if chunk.is_empty() {
                    chunk_started = Instant::now();
                }
                chunk_bytes += read.line.record.len();
                chunk.push(read);
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
        if !flush {
            continue;
        }
        let reads = std::mem::take(&mut chunk);
        chunk_bytes = 0;
        instance.clear_accepted();
        if let Err(trap) = ship_chunk(&mut instance, sink, &reads, &opts.tag, tally).await {
            // A trap ends the instance. The records the service answered as stored are counted
            // delivered; the others go again through a new instance. Without the native view of
            // the shaping (or with aggregation, where records are packed together), they are
            // all reported failed instead: none is sent twice.
            let message = format!("{trap:#}");
            let accepted = instance.take_accepted();
            (instance, sink) = open(&runtime, &options, &config_text).await?;
            let (stored, again) = match &native_shape {
                Some(shape) => split_stored(shape, &opts.tag, reads, accepted, |r| (r.time, &r.line.record)),
                None => (Vec::new(), reads),
            };
            for _ in &stored {
                tally.add_delivered();
            }
            let failed = if native_shape.is_none() {
                Some((again, message))
            } else {
                if !opts.quiet {
                    eprintln!(
                        "kinesis-ship: the component trapped after the service stored {} of this chunk's {} records; sending the other {} again in a new instance: {message}",
                        stored.len(),
                        stored.len() + again.len(),
                        again.len()
                    );
                }
                if again.is_empty() {
                    None
                } else {
                    match ship_chunk(&mut instance, sink, &again, &opts.tag, tally).await {
                        Ok(()) => None,
                        Err(trap) => {
                            (instance, sink) = open(&runtime, &options, &config_text).await?;
                            Some((again, format!("{trap:#}")))
                        }
                    }
                }
            };
            if let Some((reads, message)) = failed {
                if !opts.quiet {
                    eprintln!(
                        "kinesis-ship: the component trapped; {} records are reported failed ({}): {message}",
                        reads.len(),
                        Code::ComponentTrap
                    );
                }
                for read in &reads {
                    tally.add_failure(read.line.number, Code::ComponentTrap, &message);
                }
            }
        }
        if progress {
            eprint!(
                "\r\x1b[2K{} lines: {} delivered, {} failed, {} rejected",
                tally.lines, tally.delivered, tally.failed, tally.rejected
            );
            let _ = std::io::stderr().flush();
        }
    }
    reader.join().map_err(|_| anyhow!("the input reader panicked"))?;
    if progress {
        eprintln!();
    }
    if !opts.quiet {
        eprintln!("kinesis-ship: {} in {:.2?}", tally.summary(), started.elapsed());
        if !tally.credential_source.is_empty() {
            eprintln!("kinesis-ship: credentials: {}", tally.credential_source);
        }
        for p in tally.problems.iter().take(10) {
            eprintln!("  {p}");
        }
        if tally.problems.len() > 10 {
            eprintln!("  … and {} more (see --report)", tally.problems.len() - 10);
        }
    }
    Ok(shipped)
}

async fn open(runtime: &Runtime, options: &InstanceOptions, config: &str) -> Result<(Instance, SinkHandle)> {
    let mut instance = runtime.instantiate_with(options.clone()).await?;
    match instance.open(config).await? {
        Ok(sink) => Ok((instance, sink)),
        Err(e) if e.field.is_empty() => Err(usage(anyhow!("configuration: {}", e.message))),
        Err(e) => Err(usage(anyhow!("configuration: {}: {}", e.field, e.message))),
    }
}

/// Read the input's records (the shared line rules), each with its event time.
fn read_lines(input: Option<PathBuf>, keys: &[String], tx: mpsc::SyncSender<std::io::Result<Read>>) {
    let reader: Box<dyn std::io::BufRead> = match input {
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
    for line in Lines::new(reader) {
        let item = line.map(|line| Read {
            time: event_time(&line.record, keys, arrival(SystemTime::now())),
            line,
        });
        let failed = item.is_err();
        if tx.send(item).is_err() || failed {
            return;
        }
    }
}

async fn ship_chunk(
    instance: &mut Instance,
    sink: SinkHandle,
    reads: &[Read],
    tag: &str,
    tally: &mut Tally,
) -> Result<()> {
    let events: Vec<Event> = reads
        .iter()
        .map(|r| Event {
            tag: tag.to_string(),
            time: Timestamp {
                seconds: r.time.0,
                nanoseconds: r.time.1,
            },
            record: r.line.record.clone(),
        })
        .collect();
    let report = instance.put(sink, &events).await?;
    tally.add_report(reads.iter().map(|r| r.line.number), &core_report(report));
    Ok(())
}
