//! `kinesis-ship` (ship): NDJSON lines in, chunks through the component, a summary and an
//! optional JSON report out. Lines follow the rules every door shares (`front::lines`), each
//! event's time is read from its own `time_keys` fields (else the time it was read), and the
//! report is the one every door gives (`front::report`).
//!
//! On SIGTERM or SIGINT it stops reading, ships the lines it has already read (the chunk being
//! filled, and those read ahead), and says from which line on the input was not shipped.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};

use kinesis_output::delivery::egress::plain_http_warning;
use kinesis_output::front::ledger::{door_backoff, Attempt, Rule, Verdict};
use kinesis_output::front::lines::{Line, Lines};
use kinesis_output::front::report::key_cut_warning;
use kinesis_output::front::time::{arrival, event_time, EventTime};
use kinesis_output::front::Tally;
use kinesis_output::shaping::Shape;
use kinesis_output::{Code, Outcome};

use crate::memory::now;
use crate::recovery::settle_accepted;
use crate::setup::{component_env, egress_policy, endpoint_line, read_config, settings, Sandbox};
use crate::sink::{Instance, InstanceOptions, PackedEvents, Runtime, SinkHandle};

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
    /// Stopped by a signal before the input ended: which, and the first line not shipped.
    pub stopped: Option<Stop>,
}

/// A run a signal ended before its input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub signal: &'static str,
    /// 1-based: the input from this line on was not shipped.
    pub unread_from_line: usize,
}

impl Shipped {
    /// The `--report` document.
    pub fn report(&self) -> serde_json::Value {
        let mut report = self.tally.to_report(&self.warnings);
        if let Some(stop) = &self.stopped {
            report["stopped"] = serde_json::json!({
                "signal": stop.signal,
                "unread_from_line": stop.unread_from_line,
            });
        }
        report
    }

    /// Everything read was delivered and the input was read to its end.
    pub fn complete(&self) -> bool {
        self.tally.all_delivered() && self.stopped.is_none()
    }
}

/// What the reader hands on.
enum Input {
    Line(Read),
    Failed(std::io::Error),
    /// The input ended (not sent when a signal stopped the reading).
    End,
}

/// How often the loop waiting for lines looks for a signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

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

    let source = opts
        .component
        .clone()
        .map(crate::engine::ComponentSource::File)
        .unwrap_or_else(crate::engine::sink_component);
    let runtime = Runtime::load_from(&source).map_err(usage)?;
    let egress = egress_policy(Some(&settings.sink), &env);
    let mut options = opts.sandbox.options(env, &config, egress);
    opts.sandbox.network(&mut options).map_err(usage)?;
    // After a trap, what the service already stored is known from the PutRecords answers the
    // host saw; the native core formats each record as the component did, to tell them apart.
    options.track_accepted = true;
    let stop = Arc::new(AtomicBool::new(false));
    let shipper = Arc::new(Shipper {
        native_shape: Some(settings.sink.shape.clone()).filter(|s| !s.aggregate),
        runtime,
        options,
        config_text,
        tag: opts.tag.clone(),
        quiet: opts.quiet,
        rule: Rule {
            bound: settings.buffer.retry,
            drop_failed: settings.sink.drop_failed_records,
        },
        stop: stop.clone(),
    });
    // `buffer.flush_thread_count` instances, each putting one chunk at a time; the chunks wait
    // in a queue of one, so at most that many + 1 are held. With one, chunks go out in input
    // order.
    let (work, queue) = tokio::sync::mpsc::channel::<Vec<Read>>(1);
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let (finished, mut results) = tokio::sync::mpsc::unbounded_channel::<Result<Tally>>();
    let mut flushers = tokio::task::JoinSet::new();
    for _ in 0..settings.buffer.flush_thread_count {
        let mut flusher = shipper.open().await?;
        let (shipper, queue, finished) = (shipper.clone(), queue.clone(), finished.clone());
        flushers.spawn(async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some(reads) = next else { break };
                if finished.send(shipper.ship(&mut flusher, reads).await).is_err() {
                    break;
                }
            }
        });
    }
    drop(finished);

    let mut shipped = Shipped {
        warnings,
        ..Shipped::default()
    };
    if !opts.quiet {
        crate::log::info(&endpoint_line(&settings.sink));
        for w in &shipped.warnings {
            crate::log::warn(w);
        }
    }

    let (tx, rx) = mpsc::sync_channel::<Input>(4096);
    let input = opts.input.clone();
    let keys = settings.front.time_keys.clone();
    let signal = Arc::new(OnceLock::new());
    tokio::spawn(watch_signals(stop.clone(), signal.clone()));
    let reader_stop = stop.clone();
    let reader = std::thread::spawn(move || read_lines(input, &keys, tx, &reader_stop));

    let buffer = &settings.buffer;
    let tally = &mut shipped.tally;
    let progress = !opts.quiet && std::io::stderr().is_terminal() && !crate::log::json();
    let started = Instant::now();
    let mut chunk: Vec<Read> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut chunk_started = Instant::now();
    // The last line handed to the component, and whether the input was read to its end.
    let mut last_line = 0usize;
    let mut ended = false;
    let mut done = false;
    while !done {
        let wait = if chunk.is_empty() {
            SIGNAL_CHECK
        } else {
            buffer
                .flush_interval
                .saturating_sub(chunk_started.elapsed())
                .min(SIGNAL_CHECK)
        };
        // Once stopping, only what was already read: no more waiting.
        let next = if stop.load(Ordering::Relaxed) {
            rx.try_recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(wait)
        };
        let flush = match next {
            Ok(Input::Line(read)) => {
                if chunk.is_empty() {
                    chunk_started = Instant::now();
                }
                chunk_bytes += read.line.record.len();
                chunk.push(read);
                buffer.chunk_limit_records.is_some_and(|n| chunk.len() >= n)
                    || chunk_bytes >= buffer.chunk_limit_size
            }
            Ok(Input::Failed(e)) => return Err(anyhow!("reading the input: {e}")),
            Ok(Input::End) => {
                ended = true;
                done = true;
                !chunk.is_empty()
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                !chunk.is_empty() && chunk_started.elapsed() >= buffer.flush_interval
            }
            // Stopping, with nothing more read: what was read is shipped below.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if !stop.load(Ordering::Relaxed) {
                    return Err(anyhow!("the input reader stopped before the input ended"));
                }
                done = true;
                !chunk.is_empty()
            }
        };
        if !flush {
            continue;
        }
        let reads = std::mem::take(&mut chunk);
        chunk_bytes = 0;
        last_line = reads.last().map_or(last_line, |r| r.line.number);
        // Waits while every flush thread is busy and a chunk is queued.
        if work.send(reads).await.is_err() {
            break;
        }
        while let Ok(result) = results.try_recv() {
            tally.merge(result?);
        }
        if progress {
            eprint!(
                "\r\x1b[2K{} lines: {} delivered, {} failed, {} rejected",
                tally.lines, tally.delivered, tally.failed, tally.rejected
            );
            let _ = std::io::stderr().flush();
        }
    }
    // Every chunk handed over, shipped.
    drop(work);
    while let Some(result) = results.recv().await {
        tally.merge(result?);
    }
    while let Some(joined) = flushers.join_next().await {
        joined.map_err(|e| anyhow!("a flush thread failed: {e}"))?;
    }
    // Chunks finish in any order with several flush threads: problems by line.
    tally.problems.sort_by_key(|p| p.line);
    if ended {
        reader.join().map_err(|_| anyhow!("the input reader panicked"))?;
    } else {
        // Stopped by a signal: the reader may be waiting for input that will not be shipped.
        shipped.stopped = Some(Stop {
            signal: signal.get().copied().unwrap_or("a signal"),
            unread_from_line: last_line + 1,
        });
    }
    if progress {
        eprintln!();
    }
    if !opts.quiet {
        let tally = &shipped.tally;
        crate::log::info(&format!("{} in {:.2?}", tally.summary(), started.elapsed()));
        if let Some(stop) = &shipped.stopped {
            crate::log::warn(&format!(
                "stopped by {}: the lines read were shipped; the input from line {} on was not",
                stop.signal, stop.unread_from_line
            ));
        }
        if !tally.credential_source.is_empty() {
            crate::log::info(&format!("credentials: {}", tally.credential_source));
        }
        for p in tally.problems.iter().take(10) {
            crate::log::detail(&p.to_string());
        }
        if tally.problems.len() > 10 {
            crate::log::detail(&format!(
                "… and {} more (see --report)",
                tally.problems.len() - 10
            ));
        }
    }
    Ok(shipped)
}

/// On SIGTERM or SIGINT: note which and raise `stop` (the loop waiting for lines looks every
/// [`SIGNAL_CHECK`]).
async fn watch_signals(stop: Arc<AtomicBool>, signal: Arc<OnceLock<&'static str>>) {
    use tokio::signal::unix::{signal as on, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (on(SignalKind::terminate()), on(SignalKind::interrupt()))
    else {
        return;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    let _ = signal.set(name);
    stop.store(true, Ordering::Relaxed);
}

/// What every flush thread shares: the compiled component, the instances' settings, the
/// delivery rule, and what trap recovery needs.
struct Shipper {
    runtime: Runtime,
    options: InstanceOptions,
    config_text: String,
    /// The shaping, natively, to tell stored records apart after a trap (`None` with
    /// aggregation, where records are packed together).
    native_shape: Option<Shape>,
    tag: String,
    quiet: bool,
    rule: Rule,
    /// Raised by SIGTERM or SIGINT: no more retries.
    stop: Arc<AtomicBool>,
}

/// One flush thread's instance and its open sink.
struct Flusher {
    instance: Instance,
    sink: SinkHandle,
}

impl Shipper {
    async fn open(&self) -> Result<Flusher> {
        let mut instance = self.runtime.instantiate_with(self.options.clone()).await?;
        match instance.open(&self.config_text).await? {
            Ok(sink) => Ok(Flusher { instance, sink }),
            Err(e) if e.field.is_empty() => Err(usage(anyhow!("configuration: {}", e.message))),
            Err(e) => Err(usage(anyhow!("configuration: {}: {}", e.field, e.message))),
        }
    }

    /// Ship one chunk through `flusher` until every record of it is settled (the delivery rule,
    /// `front::ledger`): records that may still be stored are put again, only they, after a
    /// wait that doubles from 1 s, until `buffer.retry_timeout` / `retry_max_times`, or a
    /// signal, ends the retries. A trap ends the instance: what the service stored is known
    /// from what the component told as each answer came, and (without aggregation) from the
    /// answers the host saw after; the rest goes again through a new instance, and a chunk that
    /// traps twice is reported failed (`ComponentTrap`).
    async fn ship(&self, flusher: &mut Flusher, reads: Vec<Read>) -> Result<Tally> {
        let mut tally = Tally::default();
        let attempt = Arc::new(Mutex::new(Attempt::begin(None, reads.len() as u32, now())));
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                attempt.lock().expect("not poisoned").next();
            }
            let places = attempt.lock().expect("not poisoned").to_send();
            let bytes = places.iter().map(|&p| reads[p as usize].line.record.len()).sum();
            let mut events = PackedEvents::with_capacity(&self.tag, places.len(), bytes);
            for &p in &places {
                let r = &reads[p as usize];
                events.push(r.time.0, r.time.1, &r.line.record);
            }
            let (hook_attempt, hook_places) = (attempt.clone(), places.clone());
            flusher.instance.on_stored(Some(Box::new(move |stored: &[u32]| {
                let mut a = hook_attempt.lock().expect("not poisoned");
                for &i in stored {
                    if let Some(&place) = hook_places.get(i as usize) {
                        a.stored(place);
                    }
                }
            })));
            flusher.instance.clear_accepted();
            let put = flusher.instance.put_packed(flusher.sink, &events).await;
            flusher.instance.on_stored(None);
            let trapped = put.is_err();
            let settlement = match put {
                Ok(report) => {
                    let line_of = |i: usize| format!("line {}", reads[places[i] as usize].line.number);
                    if let Some(warning) = key_cut_warning(&report, line_of).filter(|_| !self.quiet) {
                        crate::log::warn(&warning);
                    }
                    tally.add_counters(&report.counters);
                    tally.credential_source.clone_from(&report.credential_source);
                    let mut a = attempt.lock().expect("not poisoned");
                    a.settle(&places, report.outcomes, &self.rule, now())
                }
                Err(trap) => {
                    let message = format!("{trap:#}");
                    let accepted = flusher.instance.settle_in_flight().await;
                    *flusher = self.open().await?;
                    let mut a = attempt.lock().expect("not poisoned");
                    settle_accepted(self.native_shape.as_ref(), &places, &events, accepted, &mut a);
                    // The first line names the trap; the rest (a backtrace) is for the log.
                    let settlement = a.trapped(message.lines().next().unwrap_or_default(), &self.rule, now());
                    if !self.quiet {
                        let next = match settlement.verdict {
                            Verdict::Retry => format!(
                                "sending the other {} again in a new instance",
                                settlement.held.len()
                            ),
                            _ if settlement.finals.is_empty() => "nothing is left to send".to_string(),
                            _ => format!(
                                "the chunk trapped it before with nothing stored: the other {} records are reported failed ({})",
                                settlement.finals.len(),
                                Code::ComponentTrap
                            ),
                        };
                        crate::log::warn(&format!(
                            "the component trapped ({} records of this chunk stored in this attempt); {next}: {}",
                            settlement.stored_now,
                            message.lines().next().unwrap_or_default()
                        ));
                    }
                    settlement
                }
            };
            for _ in 0..settlement.stored_now {
                tally.add_delivered();
            }
            for (place, outcome) in &settlement.finals {
                tally.add(reads[*place as usize].line.number, outcome);
            }
            if settlement.verdict != Verdict::Retry {
                break;
            }
            if trapped && !self.stop.load(Ordering::Relaxed) {
                // A new instance, at once: the service was not the trouble.
                continue;
            }
            let wait = door_backoff(attempt.lock().expect("not poisoned").entry.attempts);
            if !self.quiet {
                let why = match &settlement.why_held {
                    Some(Outcome::Failed { code, message, .. }) => format!(" ({code}: {message})"),
                    _ => String::new(),
                };
                crate::log::warn(&format!(
                    "{} records not stored yet{why}; sending them again in {wait:?}",
                    settlement.held.len()
                ));
            }
            if !self.wait_unless_stopped(wait).await {
                // Stopped: what is held is reported, with why.
                for place in &settlement.held {
                    let read = &reads[*place as usize];
                    tally.add_failure(
                        read.line.number,
                        held_code(&settlement),
                        "not stored yet when a signal stopped kinesis-ship: ship this line again",
                    );
                }
                break;
            }
        }
        Ok(tally)
    }

    /// Wait `wait`, looking for a stop every [`SIGNAL_CHECK`]; false when stopped.
    async fn wait_unless_stopped(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            tokio::time::sleep(SIGNAL_CHECK.min(until - Instant::now())).await;
        }
        !self.stop.load(Ordering::Relaxed)
    }
}

/// The code a record held at a stop is reported with: its last failure's.
fn held_code(settlement: &kinesis_output::front::ledger::Settlement) -> Code {
    match &settlement.why_held {
        Some(Outcome::Failed { code, .. }) => code.clone(),
        _ => Code::Network,
    }
}

/// Read the input's records (the shared line rules), each with its event time, until the
/// input ends or `stop` is raised.
fn read_lines(input: Option<PathBuf>, keys: &[String], tx: mpsc::SyncSender<Input>, stop: &AtomicBool) {
    let reader: Box<dyn std::io::BufRead> = match input {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                let _ = tx.send(Input::Failed(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                )));
                return;
            }
        },
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    for line in Lines::new(reader) {
        let (item, failed) = match line {
            Ok(line) => (
                Input::Line(Read {
                    time: event_time(&line.record, keys, arrival(SystemTime::now())),
                    line,
                }),
                false,
            ),
            Err(e) => (Input::Failed(e), true),
        };
        if tx.send(item).is_err() || failed || stop.load(Ordering::Relaxed) {
            return;
        }
    }
    let _ = tx.send(Input::End);
}
