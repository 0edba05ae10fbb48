//! One `[OUTPUT]` section of `kinesis_wasm`: the compiled component, a pool of instances (one
//! per flush in progress: Fluent Bit's `workers N` flush concurrently), what the output remembers
//! of chunks not finished, and what a flush tells Fluent Bit.
//!
//! ## What Fluent Bit is told (the delivery rule, `front::ledger`)
//! - `FLB_RETRY` while records of the chunk may still be stored (throttling, network, 5xx,
//!   credentials, a refusal the operator may fix): the output remembers which records were
//!   settled (stored, or final), keyed by the chunk's tag and bytes, in memory and with
//!   `state_dir` on disk; Fluent Bit hands the same chunk to a later flush, and only the records
//!   not settled go out again. The retry is bounded by the plugin itself (`buffer.retry_timeout`,
//!   72 h by default, `retry_max_times`, `retry_forever`): Fluent Bit never tells a plugin that it
//!   dropped a chunk at its `Retry_Limit`, so that should be `no_limits`.
//! - `FLB_OK` when every record is settled and something was stored; `FLB_ERROR` when every
//!   record was final and nothing stored (re-sending cannot help). A final record is logged and
//!   written to `dead_letter_file`, once.
//! - Decoding and the put run on the output's own threads, not on Fluent Bit's flush coroutine,
//!   whose small stack a trap's unwinding overflowed.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use serde_json::{json, Value};

use kinesis_output::front::chunk;
use kinesis_output::front::ledger::{Attempt, Key, Rule, Settlement, Verdict, DEFAULT_CAPACITY};
use kinesis_output::front::{Problem, Tally};
use kinesis_output::kinesis::{Outcome, Rejected, RejectionKind};
use kinesis_output::shaping::Shape;
use kinesis_ship::engine::ComponentSource;
use kinesis_ship::memory::{key_of, now, Memory};
use kinesis_ship::recovery::settle_accepted;
use kinesis_ship::setup::{component_env, egress_policy, settings};
use kinesis_ship::sink::{Instance, InstanceOptions, PackedEvents, Runtime, SinkHandle, Timestamp};

use crate::settings::PluginSettings;

/// What a flush tells Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    Ok,
    Retry,
    Error,
}

impl Flushed {
    /// Fluent Bit's return code: `FLB_OK` 1, `FLB_RETRY` 2, `FLB_ERROR` 0.
    pub fn code(self) -> i32 {
        match self {
            Flushed::Ok => 1,
            Flushed::Retry => 2,
            Flushed::Error => 0,
        }
    }
}

/// Fluent Bit's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Where the plugin's messages go (Fluent Bit's logger, or a test's).
pub type Log = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// At most this many records not delivered are logged one by one per flush.
const PROBLEMS_LOGGED: usize = 10;

/// The async runtime the embedding runs on; flushes block on it from Fluent Bit's threads.
fn tokio() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kinesis-wasm")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Run `work` on the runtime's own threads and wait for it. Fluent Bit calls a flush inside a
/// coroutine with a small stack; the component's code (and a trap's unwinding) gets the
/// runtime threads' full stacks instead.
fn on_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    tokio()
        .block_on(tokio().spawn(work))
        .map_err(|e| format!("the flush's task failed: {e}"))
}

/// One output section, shared by every flush of it.
pub struct Output {
    runtime: Arc<Runtime>,
    options: InstanceOptions,
    config_text: String,
    /// The shaping as the component does it, for telling stored records apart after a trap
    /// (`None` with aggregation, where records are packed together).
    shape: Option<Shape>,
    /// Instances not in use, each with its open sink.
    pool: Mutex<Vec<(Instance, SinkHandle)>>,
    dead_letters: Option<Mutex<File>>,
    totals: Mutex<Tally>,
    log: Log,
    /// Counters in Fluent Bit's own metrics, where it lends them.
    metrics: Option<crate::metrics::Metrics>,
    init_thread: std::thread::ThreadId,
    warned_engine_thread: std::sync::atomic::AtomicBool,
    /// The chunks not finished: what of each was settled.
    memory: Arc<Memory>,
    rule: Rule,
    /// A record whose JSON would be larger is rejected while the chunk is read.
    max_record_json: usize,
    /// Flushes answered `FLB_RETRY`.
    retries: std::sync::atomic::AtomicU64,
    /// Where records go (for the metrics' `service` label).
    service: kinesis_output::kinesis::Service,
}

/// The largest record JSON taken from a chunk: generous beside `max_record_size` (formatting,
/// `data_key` and compression can make the stored bytes much smaller than the record), and
/// bounded so that no record is ever built past it.
fn max_record_json(max_record_size: usize) -> usize {
    max_record_size.saturating_mul(2).max(16 << 20)
}

impl Output {
    /// Read the configuration natively, load the component and open one instance, so that a
    /// bad configuration stops Fluent Bit at start. The error names the field and the rule.
    pub fn new(
        settings_: PluginSettings,
        log: Log,
        metrics: Option<crate::metrics::Metrics>,
    ) -> Result<Output, String> {
        let env = component_env();
        let config_text = settings_.config.to_string();
        let native = settings(&config_text, &env).map_err(|e| format!("configuration: {e}"))?;
        log(Level::Info, &kinesis_ship::setup::endpoint_line(&native.sink));
        for w in &native.warnings {
            log(Level::Warn, w);
        }
        let source = settings_
            .component
            .clone()
            .map(ComponentSource::File)
            .unwrap_or_else(default_component);
        let bytes = source.bytes().map_err(|e| format!("{e:#}"))?;
        log(Level::Info, &version_line(&source, &bytes));
        let runtime = Runtime::load_bytes(&bytes).map_err(|e| format!("{e:#}"))?;
        let egress = egress_policy(Some(&native.sink), &env);
        let mut options = settings_.sandbox.options(env, &settings_.config, egress);
        options.track_accepted = true;
        if settings_.tls_ca_file.is_some() || !settings_.tls_verify {
            if !settings_.tls_verify {
                log(
                    Level::Warn,
                    "tls_verify off: the component's connections accept any certificate",
                );
            }
            let tls =
                kinesis_ship::transport::tls_config(settings_.tls_ca_file.as_deref(), settings_.tls_verify)
                    .map_err(|e| format!("tls_ca_file: {e:#}"))?;
            options.tls = Some(tls);
        }
        // Fluent Bit's own outputs honour HTTP_PROXY / HTTPS_PROXY / NO_PROXY; so does this one.
        options.proxies = kinesis_ship::network::Proxies::from_process_env().map_err(|e| format!("{e:#}"))?;
        let dead_letters = match &settings_.dead_letter_file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("dead_letter_file: {}: {e}", path.display()))?,
            )),
            None => None,
        };
        let memory_log = log.clone();
        let memory = Memory::open(
            settings_.state_dir.as_deref(),
            DEFAULT_CAPACITY,
            Box::new(move |m| memory_log(Level::Warn, m)),
        )
        .map_err(|e| format!("state_dir: {e:#}"))?;
        let rule = Rule {
            bound: native.buffer.retry,
            drop_failed: native.sink.drop_failed_records,
        };
        log(
            Level::Info,
            &format!(
                "a chunk with records not yet stored is answered FLB_RETRY, and its retry sends only those; the plugin gives them up by itself ({}), so set Retry_Limit no_limits: Fluent Bit does not tell a plugin when it drops a chunk{}",
                describe_bound(&rule),
                if settings_.state_dir.is_some() {
                    ""
                } else {
                    "; without state_dir what was stored of a chunk is forgotten at exit"
                }
            ),
        );
        let output = Output {
            runtime: Arc::new(runtime),
            options,
            config_text,
            shape: Some(native.sink.shape.clone()).filter(|s| !s.aggregate),
            pool: Mutex::new(Vec::new()),
            dead_letters,
            totals: Mutex::new(Tally::default()),
            log,
            metrics,
            init_thread: std::thread::current().id(),
            warned_engine_thread: std::sync::atomic::AtomicBool::new(false),
            memory: Arc::new(memory),
            rule,
            max_record_json: max_record_json(native.sink.shape.max_record_size),
            retries: std::sync::atomic::AtomicU64::new(0),
            service: native.sink.service,
        };
        let first = output.open()?;
        output.pool.lock().expect("not poisoned").push(first);
        Ok(output)
    }

    fn open(&self) -> Result<(Instance, SinkHandle), String> {
        tokio().block_on(async {
            let mut instance = self
                .runtime
                .instantiate_with(self.options.clone())
                .await
                .map_err(|e| format!("{e:#}"))?;
            match instance
                .open(&self.config_text)
                .await
                .map_err(|e| format!("{e:#}"))?
            {
                Ok(sink) => Ok((instance, sink)),
                Err(e) if e.field.is_empty() => Err(format!("configuration: {}", e.message)),
                Err(e) => Err(format!("configuration: {}: {}", e.field, e.message)),
            }
        })
    }

    /// Ship one chunk of `tag`: on the output's own threads (decoding included), never on
    /// Fluent Bit's flush coroutine.
    pub fn flush(self: &Arc<Self>, data: &[u8], tag: &str) -> Flushed {
        if std::thread::current().id() == self.init_thread
            && !self
                .warned_engine_thread
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            (self.log)(
                Level::Warn,
                "flushing on Fluent Bit's engine thread (workers 0): a slow put stalls the agent; set workers 1 or more",
            );
        }
        let (this, data, tag_) = (self.clone(), data.to_vec(), tag.to_string());
        let flushed = match on_runtime(async move { this.ship(data, tag_).await }) {
            Ok(flushed) => flushed,
            Err(e) => {
                (self.log)(Level::Error, &format!("tag {tag}: {e}; retrying the chunk"));
                Flushed::Retry
            }
        };
        release_free_memory();
        flushed
    }

    async fn ship(&self, data: Vec<u8>, tag: String) -> Flushed {
        let decoded = chunk::decode_packed(&data, self.max_record_json);
        if decoded.markers > 0 {
            (self.log)(
                Level::Debug,
                &format!("tag {tag}: {} group markers skipped", decoded.markers),
            );
        }
        let items = Items::new(&tag, decoded, &data);
        if items.len() == 0 {
            return Flushed::Ok;
        }
        let key = key_of(&[tag.as_bytes(), &data]);
        drop(data);
        // Another chunk with the same tag and bytes being shipped right now is a different
        // chunk: it must not take this one's memory, nor this one its.
        let remember = self.memory.claim(&key);
        // Let go of the key however the flush ends (a panic included).
        let _claimed = remember.then(|| Claimed(&self.memory, key));
        let previous = if remember { self.memory.recall(&key) } else { None };
        let attempt = Arc::new(Mutex::new(Attempt::begin(previous, items.len() as u32, now())));
        self.attempt(&tag, &items, &key, remember, &attempt).await
    }

    /// One attempt at a chunk: send what is not settled, settle, report, answer.
    async fn attempt(
        &self,
        tag: &str,
        items: &Items,
        key: &Key,
        remember: bool,
        attempt: &Arc<Mutex<Attempt>>,
    ) -> Flushed {
        let to_send = attempt.lock().expect("not poisoned").to_send();
        // Records the reading already refused, and the unreadable rest: settled here.
        let mut sent = Vec::with_capacity(to_send.len());
        let mut outcomes = Vec::with_capacity(to_send.len());
        let mut put_places = Vec::new();
        for place in to_send {
            match items.outcome_before_put(place) {
                Some(outcome) => {
                    sent.push(place);
                    outcomes.push(outcome);
                }
                None => put_places.push(place),
            }
        }
        let mut counters = kinesis_output::Counters::default();
        let mut trap = None;
        if !put_places.is_empty() {
            match self.put(tag, items, &put_places, key, remember, attempt).await {
                Ok(report) => {
                    counters = report.counters;
                    sent.extend(&put_places);
                    outcomes.extend(report.outcomes);
                }
                Err(PutError::Trap(message)) => trap = Some(message),
                Err(PutError::NoInstance(message)) => {
                    // Not the chunk's fault: its records wait for the retry.
                    (self.log)(Level::Error, &format!("tag {tag}: {message}"));
                    for &place in &put_places {
                        sent.push(place);
                        outcomes.push(Outcome::Failed {
                            code: kinesis_output::Code::ComponentTrap,
                            message: message.clone(),
                            attempts: 0,
                        });
                    }
                }
            }
        }
        let rule = self.rule;
        let mut attempt = attempt.lock().expect("not poisoned");
        let mut settlement = attempt.settle(&sent, outcomes, &rule, now());
        if let Some(message) = &trap {
            let after = attempt.trapped(first_line(message), &rule, now());
            settlement.finals.extend(after.finals);
            settlement.held = after.held;
            settlement.verdict = after.verdict;
            settlement.stored_now = after.stored_now;
        }
        let entry = attempt.entry.clone();
        drop(attempt);
        // Final records are written to the dead-letter file before the memory forgets the
        // chunk: a crash between the two repeats a dead letter, it never loses one.
        let tally = self.report(tag, items, &settlement, counters, trap.as_deref());
        if remember {
            if settlement.verdict == Verdict::Retry {
                self.memory.keep(key, &entry);
            } else {
                self.memory.forget(key);
            }
        }
        self.account(&tally);
        match settlement.verdict {
            Verdict::Retry => {
                self.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Flushed::Retry
            }
            Verdict::Done | Verdict::Partial => Flushed::Ok,
            Verdict::GiveUp => Flushed::Error,
        }
    }

    /// Put the records at `places` through an instance of the pool, telling the memory of each
    /// stored record as its answer comes. On a trap, what the service stored before it is
    /// settled already.
    async fn put(
        &self,
        tag: &str,
        items: &Items,
        places: &[u32],
        key: &Key,
        remember: bool,
        attempt: &Arc<Mutex<Attempt>>,
    ) -> Result<kinesis_output::PutReport, PutError> {
        let taken = self.pool.lock().expect("not poisoned").pop();
        let (mut instance, sink) = match taken {
            Some(pair) => pair,
            None => {
                let (runtime, options, config) = (
                    self.runtime.clone(),
                    self.options.clone(),
                    self.config_text.clone(),
                );
                open_instance(&runtime, options, &config)
                    .await
                    .map_err(|e| PutError::NoInstance(format!("no instance of the component: {e}")))?
            }
        };
        // Every record read, the first time (the chunk's buffer as it was read); a retry's
        // records copied out.
        let subset;
        let events = if places.len() == items.packed.len() {
            &items.packed
        } else {
            subset = items.subset(places);
            &subset
        };
        // Each answer that stores something is written down before the put goes on.
        let hook_places: Vec<u32> = places.to_vec();
        let (hook_attempt, hook_memory, hook_key) = (attempt.clone(), self.memory.clone(), *key);
        instance.on_stored(Some(Box::new(move |stored: &[u32]| {
            let mut a = hook_attempt.lock().expect("not poisoned");
            for &i in stored {
                if let Some(&place) = hook_places.get(i as usize) {
                    a.stored(place);
                }
            }
            if remember {
                hook_memory.keep(&hook_key, &a.entry);
            }
        })));
        instance.clear_accepted();
        match instance.put_packed(sink, events).await {
            Ok(report) => {
                instance.on_stored(None);
                self.pool.lock().expect("not poisoned").push((instance, sink));
                let record_of = |i: usize| format!("tag {tag}, record {} of the chunk", places[i] + 1);
                if let Some(warning) = kinesis_output::front::report::key_cut_warning(&report, record_of) {
                    (self.log)(Level::Warn, &warning);
                }
                Ok(report)
            }
            Err(trap) => {
                // Answers that came after the component last told what was stored: tell them
                // apart natively (without aggregation), so the retry does not send them again.
                let accepted = instance.settle_in_flight().await;
                drop(instance);
                settle_accepted(
                    self.shape.as_ref(),
                    places,
                    events,
                    accepted,
                    &mut attempt.lock().expect("not poisoned"),
                );
                Err(PutError::Trap(format!("{trap:#}")))
            }
        }
    }

    /// Log and dead-letter what became final, and count the attempt (each record once: when
    /// it is stored or becomes final).
    fn report(
        &self,
        tag: &str,
        items: &Items,
        settlement: &Settlement,
        counters: kinesis_output::Counters,
        trap: Option<&str>,
    ) -> Tally {
        let mut tally = Tally::default();
        for _ in 0..settlement.stored_now {
            tally.add_delivered();
        }
        for (place, outcome) in &settlement.finals {
            tally.add(*place as usize + 1, outcome);
        }
        tally.add_counters(&counters);
        let n = items.len();
        if let Some(trap) = trap {
            (self.log)(
                Level::Error,
                &format!(
                    "tag {tag}: the component trapped ({} of the chunk's {n} records stored in this attempt): {}",
                    settlement.stored_now,
                    first_line(trap)
                ),
            );
        }
        if settlement.verdict == Verdict::Retry {
            let why = match &settlement.why_held {
                Some(Outcome::Failed { code, message, .. }) => format!(" ({code}: {message})"),
                _ => String::new(),
            };
            (self.log)(
                Level::Warn,
                &format!(
                    "tag {tag}: {} of the chunk's {n} records not stored yet{why}; Fluent Bit retries the chunk, and only those are sent again",
                    settlement.held.len(),
                ),
            );
        }
        for p in tally.problems.iter().take(PROBLEMS_LOGGED) {
            (self.log)(
                Level::Error,
                &format!(
                    "tag {tag}: record {} of {n}: {} {}: {}",
                    p.line,
                    p.outcome(),
                    p.code,
                    p.message
                ),
            );
        }
        if tally.problems.len() > PROBLEMS_LOGGED {
            (self.log)(
                Level::Error,
                &format!(
                    "tag {tag}: … and {} more records not delivered",
                    tally.problems.len() - PROBLEMS_LOGGED
                ),
            );
        }
        self.dead_letter(tag, items, &settlement.finals);
        tally
    }

    fn dead_letter(&self, tag: &str, items: &Items, finals: &[(u32, Outcome)]) {
        let Some(file) = &self.dead_letters else {
            return;
        };
        if finals.is_empty() {
            return;
        }
        let mut text = String::new();
        for (place, outcome) in finals {
            let Some(p) = Problem::of(*place as usize + 1, outcome) else {
                continue;
            };
            let attempts = match outcome {
                Outcome::Failed { attempts, .. } => *attempts,
                _ => 0,
            };
            let mut line = json!({
                "tag": tag,
                "outcome": p.outcome(),
                "code": p.code.as_str(),
                "message": p.message,
                "attempts": attempts,
            });
            match items.time(*place) {
                Some((seconds, nanoseconds)) => {
                    line["time"] = json!(format!("{seconds}.{nanoseconds:09}"));
                    line["record"] = match items.record(*place) {
                        Some(record) => serde_json::from_slice(record)
                            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(record).into_owned())),
                        None => Value::Null,
                    };
                }
                None => {
                    // The unreadable rest of the chunk, as it came.
                    line["chunk_bytes_base64"] = json!(items.unreadable_base64());
                }
            }
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let mut file = file.lock().expect("not poisoned");
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|_| file.flush()) {
            (self.log)(Level::Error, &format!("dead_letter_file: {e}"));
        }
    }

    /// Count one flush: in Fluent Bit's metrics, and in the totals of the summary at exit
    /// (counts only; the flush has logged its problems).
    fn account(&self, flush: &Tally) {
        if let Some(metrics) = &self.metrics {
            let service = match self.service {
                kinesis_output::kinesis::Service::Streams => c"kinesis",
                kinesis_output::kinesis::Service::Firehose => c"firehose",
            };
            metrics.add(flush, service);
        }
        self.totals.lock().expect("not poisoned").add_counts(flush);
    }

    /// A summary of everything this output did, for the log at exit.
    pub fn summary(&self) -> String {
        let (held, evicted) = self.memory.counts();
        let mut text = self.totals.lock().expect("not poisoned").summary();
        text.push_str(&format!(
            "; {} flushes answered FLB_RETRY; {held} chunks with records not stored yet{}",
            self.retries.load(std::sync::atomic::Ordering::Relaxed),
            if evicted > 0 {
                format!("; {evicted} chunks forgotten past the memory's bound")
            } else {
                String::new()
            }
        ));
        text
    }
}

/// A chunk's key claimed in the memory, let go when dropped.
struct Claimed<'a>(&'a Memory, Key);

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.0.release(&self.1);
    }
}

/// Why a put did not come to a report.
enum PutError {
    /// The instance trapped.
    Trap(String),
    /// No instance could be had.
    NoInstance(String),
}

/// A chunk's records by place: the events read (each a record or why not), then, if the chunk
/// broke off, one more place for its unreadable rest.
struct Items {
    /// The records read, packed as the component takes them.
    packed: PackedEvents,
    /// Each event read: where its record is in `packed`, or its time and why it was refused.
    places: Vec<Place>,
    broken: Option<(Vec<u8>, String)>,
}

enum Place {
    Read(u32),
    Refused(i64, u32, Rejected),
}

impl Items {
    fn new(tag: &str, decoded: chunk::PackedChunk, data: &[u8]) -> Items {
        let mut packed = PackedEvents {
            tag: tag.to_string(),
            times: Vec::with_capacity(decoded.events.len()),
            records: decoded.records,
            ends: Vec::with_capacity(decoded.events.len()),
        };
        let places = decoded
            .events
            .into_iter()
            .map(|e| match e.record {
                Ok(range) => {
                    packed.times.push(Timestamp {
                        seconds: e.seconds,
                        nanoseconds: e.nanoseconds,
                    });
                    // A chunk is far smaller than 4 GiB; an end past that would be refused by
                    // the component, never misread.
                    packed.ends.push(u32::try_from(range.end).unwrap_or(u32::MAX));
                    Place::Read(packed.ends.len() as u32 - 1)
                }
                Err(r) => Place::Refused(e.seconds, e.nanoseconds, r),
            })
            .collect();
        Items {
            packed,
            places,
            broken: decoded
                .broken
                .map(|(from, e)| (data[from.min(data.len())..].to_vec(), e.to_string())),
        }
    }

    fn len(&self) -> usize {
        self.places.len() + usize::from(self.broken.is_some())
    }

    /// The time of the event at `place` (`None` for the unreadable rest).
    fn time(&self, place: u32) -> Option<(i64, u32)> {
        match self.places.get(place as usize)? {
            Place::Read(i) => Some(self.packed.time(*i as usize)),
            Place::Refused(seconds, nanoseconds, _) => Some((*seconds, *nanoseconds)),
        }
    }

    /// The record at `place`, if it was read.
    fn record(&self, place: u32) -> Option<&[u8]> {
        match self.places.get(place as usize)? {
            Place::Read(i) => Some(self.packed.record(*i as usize)),
            Place::Refused(..) => None,
        }
    }

    /// The records at `places` (all read), packed anew.
    fn subset(&self, places: &[u32]) -> PackedEvents {
        let bytes = places
            .iter()
            .map(|&p| self.record(p).map_or(0, <[u8]>::len))
            .sum();
        let mut events = PackedEvents::with_capacity(&self.packed.tag, places.len(), bytes);
        for &place in places {
            // Only places read are put: skipping one would shift every later index, and the
            // `stored` calls would settle the wrong records.
            let ((seconds, nanoseconds), record) = self
                .time(place)
                .zip(self.record(place))
                .expect("put only records read");
            events.push(seconds, nanoseconds, record);
        }
        events
    }

    /// The outcome of a place settled without a put: a record the reading refused, or the
    /// unreadable rest.
    fn outcome_before_put(&self, place: u32) -> Option<Outcome> {
        match self.places.get(place as usize) {
            Some(Place::Read(_)) => None,
            Some(Place::Refused(_, _, r)) => Some(Outcome::Rejected(r.clone())),
            None => Some(Outcome::Rejected(Rejected {
                kind: RejectionKind::NotJson,
                message: format!(
                    "the rest of the chunk cannot be read ({}); the records before it were shipped",
                    self.broken.as_ref().map(|(_, m)| m.as_str()).unwrap_or_default()
                ),
            })),
        }
    }

    fn unreadable_base64(&self) -> String {
        let bytes = self.broken.as_ref().map_or(&[][..], |(b, _)| b.as_slice());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// Hand the allocator's free memory back to the system. A flush allocates megabytes (the
/// chunk, its records as JSON, the requests) on the runtime's threads, and glibc keeps what a
/// thread's arena freed for that thread: without this, Fluent Bit's resident set stays at its
/// largest flushes' (docs/performance.md: 90–100 MB against 62 MB at the end of a run).
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim takes no pointer and only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The plugin's retry bound, in words.
fn describe_bound(rule: &Rule) -> String {
    if rule.drop_failed {
        return "at once after retries_on_batch_request (drop_failed_records_after_batch_request_retries)"
            .to_string();
    }
    if rule.bound.forever {
        return "never: buffer.retry_forever".to_string();
    }
    match rule.bound.max_times {
        Some(n) => format!(
            "after buffer.retry_max_times {n} or buffer.retry_timeout {:?}",
            rule.bound.timeout
        ),
        None => format!("after buffer.retry_timeout {:?}", rule.bound.timeout),
    }
}

/// A fresh instance with its sink open.
async fn open_instance(
    runtime: &Runtime,
    options: InstanceOptions,
    config: &str,
) -> Result<(Instance, SinkHandle), String> {
    let mut instance = runtime
        .instantiate_with(options)
        .await
        .map_err(|e| format!("{e:#}"))?;
    match instance.open(config).await.map_err(|e| format!("{e:#}"))? {
        Ok(sink) => Ok((instance, sink)),
        Err(e) if e.field.is_empty() => Err(format!("configuration: {}", e.message)),
        Err(e) => Err(format!("configuration: {}: {}", e.field, e.message)),
    }
}

/// The component when the `component` property names none: the file `$KINESIS_OUTPUT_WASM`
/// names, else the one built into the plugin, else `kinesis_output.wasm` beside the plugin's
/// own file, else where the embedding looks.
fn default_component() -> ComponentSource {
    let folder = crate::abi::plugin_path().and_then(|p| p.parent().map(Path::to_path_buf));
    kinesis_ship::engine::sink_component_beside(folder.as_deref())
}

/// The start-up line naming what runs: the plugin's version, the component (where from, its
/// digest) and wasmtime's version.
fn version_line(source: &ComponentSource, bytes: &[u8]) -> String {
    format!(
        "kinesis_wasm {}: component {}; wasmtime {}",
        env!("CARGO_PKG_VERSION"),
        source.describe_bytes(bytes),
        kinesis_ship::engine::WASMTIME_VERSION
    )
}
