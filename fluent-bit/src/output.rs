//! One `[OUTPUT]` section of `kinesis_wasm`: the compiled component, a pool of instances (one
//! per flush in progress: Fluent Bit's `workers N` flush concurrently), and what a flush tells
//! Fluent Bit.
//!
//! ## What Fluent Bit is told
//! - `FLB_OK` when every record has an outcome and something was stored: records that were not
//!   delivered are logged (and written to `dead_letter_file`), never sent again by Fluent Bit,
//!   which would duplicate the stored ones.
//! - `FLB_RETRY` only when nothing of the chunk was stored and something failed (throttling,
//!   network, 5xx, a refusal the operator may fix): Fluent Bit's retry then cannot duplicate a
//!   stored record, and its `retry_limit` bounds it.
//! - `FLB_ERROR` when every record was rejected (re-sending cannot help), or the chunk cannot be
//!   read.
//!
//! This is the proxy world's rule too (`front::report::Verdict`).

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use kinesis_output::front::{Problem, Tally, Verdict};
use kinesis_output::kinesis::{Code, Outcome};
use kinesis_output::shaping::Shape;
use kinesis_ship::recovery::split_stored;
use kinesis_ship::setup::{component_env, egress_policy, settings};
use kinesis_ship::sink::{core_report, Event, Instance, InstanceOptions, Runtime, SinkHandle, Timestamp};

use crate::chunk::{self, ChunkEvent};
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
        for w in &native.warnings {
            log(Level::Warn, w);
        }
        let path = settings_.component.clone().unwrap_or_else(default_component_path);
        let runtime = Runtime::load(&path).map_err(|e| format!("{e:#}"))?;
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

    /// Ship one chunk of `tag`.
    pub fn flush(&self, data: &[u8], tag: &str) -> Flushed {
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
        let events = match chunk::decode(data) {
            Ok(events) => events,
            Err(e) => {
                (self.log)(
                    Level::Error,
                    &format!("tag {tag}: the chunk cannot be read ({e}); it is dropped"),
                );
                return Flushed::Error;
            }
        };
        if events.is_empty() {
            return Flushed::Ok;
        }
        let taken = self.pool.lock().expect("not poisoned").pop();
        let (mut instance, sink) = match taken.map(Ok).unwrap_or_else(|| self.open()) {
            Ok(pair) => pair,
            Err(e) => {
                (self.log)(
                    Level::Error,
                    &format!("tag {tag}: no instance: {e}; retrying the chunk"),
                );
                return Flushed::Retry;
            }
        };
        let put: Vec<Event> = events
            .iter()
            .map(|e| Event {
                tag: tag.to_string(),
                time: Timestamp {
                    seconds: e.seconds,
                    nanoseconds: e.nanoseconds,
                },
                record: e.record.clone(),
            })
            .collect();
        instance.clear_accepted();
        let ran = on_runtime(async move {
            let result = instance.put(sink, &put).await;
            (instance, result)
        });
        let (mut instance, result) = match ran {
            Ok(ran) => ran,
            Err(e) => {
                (self.log)(Level::Error, &format!("tag {tag}: {e}; retrying the chunk"));
                return Flushed::Retry;
            }
        };
        match result {
            Ok(report) => {
                self.pool.lock().expect("not poisoned").push((instance, sink));
                self.decide(tag, &events, &core_report(report))
            }
            Err(trap) => {
                let accepted = instance.take_accepted();
                drop(instance);
                self.after_trap(tag, events, accepted, &format!("{trap:#}"))
            }
        }
    }

    /// What the outcomes of a chunk's put tell Fluent Bit (see the module documentation).
    fn decide(&self, tag: &str, events: &[ChunkEvent], report: &kinesis_output::PutReport) -> Flushed {
        let mut tally = Tally::default();
        tally.add_report(1..=events.len(), report);
        // The rule every door answers by: retry only when nothing was stored.
        let verdict = match tally.verdict() {
            Verdict::Done | Verdict::Partial => Flushed::Ok,
            Verdict::RetryWhole => Flushed::Retry,
            Verdict::GiveUp => Flushed::Error,
        };
        if verdict == Flushed::Retry {
            (self.log)(
                Level::Warn,
                &format!(
                    "tag {tag}: none of the chunk's {} records was stored ({}); Fluent Bit retries it, which duplicates nothing",
                    events.len(),
                    tally.problems.first().map(|p| format!("{} {}", p.code, p.message)).unwrap_or_default()
                ),
            );
        } else {
            self.report_problems(tag, events, &report.outcomes, &tally.problems);
        }
        self.account(&tally);
        verdict
    }

    /// Log the records not delivered and write them to the dead-letter file.
    fn report_problems(&self, tag: &str, events: &[ChunkEvent], outcomes: &[Outcome], problems: &[Problem]) {
        for p in problems.iter().take(PROBLEMS_LOGGED) {
            (self.log)(
                Level::Error,
                &format!(
                    "tag {tag}: record {} of {}: {} {}: {}",
                    p.line,
                    events.len(),
                    p.outcome(),
                    p.code,
                    p.message
                ),
            );
        }
        if problems.len() > PROBLEMS_LOGGED {
            (self.log)(
                Level::Error,
                &format!(
                    "tag {tag}: … and {} more records not delivered",
                    problems.len() - PROBLEMS_LOGGED
                ),
            );
        }
        let attempts = |i: usize| match outcomes.get(i) {
            Some(Outcome::Failed { attempts, .. }) => *attempts,
            _ => 0,
        };
        self.dead_letter(
            tag,
            problems
                .iter()
                .map(|p| (p, &events[p.line - 1], attempts(p.line - 1))),
        );
    }

    fn dead_letter<'a>(&self, tag: &str, items: impl Iterator<Item = (&'a Problem, &'a ChunkEvent, u32)>) {
        let Some(file) = &self.dead_letters else {
            return;
        };
        let mut text = String::new();
        for (p, e, attempts) in items {
            let record: Value = serde_json::from_slice(&e.record)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.record).into_owned()));
            let line = json!({
                "tag": tag,
                "time": format!("{}.{:09}", e.seconds, e.nanoseconds),
                "outcome": p.outcome(),
                "code": p.code.as_str(),
                "message": p.message,
                "attempts": attempts,
                "record": record,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let mut file = file.lock().expect("not poisoned");
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|_| file.flush()) {
            (self.log)(Level::Error, &format!("dead_letter_file: {e}"));
        }
    }

    /// The instance trapped: what the service stored is known from the answers the host saw.
    fn after_trap(&self, tag: &str, events: Vec<ChunkEvent>, accepted: Vec<String>, trap: &str) -> Flushed {
        if accepted.is_empty() {
            (self.log)(
                Level::Warn,
                &format!("tag {tag}: the component trapped before the service stored anything; Fluent Bit retries the chunk: {trap}"),
            );
            return Flushed::Retry;
        }
        let n = events.len();
        let (stored, lost) = match &self.shape {
            Some(shape) => split_stored(shape, tag, events, accepted, |e| {
                ((e.seconds, e.nanoseconds), &e.record)
            }),
            None => (Vec::new(), events),
        };
        (self.log)(
            Level::Error,
            &format!(
                "tag {tag}: the component trapped after the service stored {} of the chunk's {n} records; the other {} are reported failed ({}): {trap}",
                stored.len(),
                lost.len(),
                Code::ComponentTrap
            ),
        );
        let problems: Vec<Problem> = (1..=lost.len())
            .map(|i| Problem {
                line: i,
                code: Code::ComponentTrap,
                message: trap.to_string(),
            })
            .collect();
        self.dead_letter(tag, problems.iter().zip(&lost).map(|(p, e)| (p, e, 0)));
        let mut tally = Tally::default();
        for _ in &stored {
            tally.add_delivered();
        }
        for p in &problems {
            tally.add_failure(p.line, p.code.clone(), &p.message);
        }
        self.account(&tally);
        Flushed::Ok
    }

    /// Count one flush: in Fluent Bit's metrics, and in the totals of the summary at exit
    /// (counts only; the flush has logged its problems).
    fn account(&self, flush: &Tally) {
        if let Some(metrics) = &self.metrics {
            metrics.add(flush);
        }
        self.totals.lock().expect("not poisoned").add_counts(flush);
    }

    /// A summary of everything this output did, for the log at exit.
    pub fn summary(&self) -> String {
        self.totals.lock().expect("not poisoned").summary()
    }
}

/// `kinesis_output.wasm` beside the plugin's own file, else where the embedding looks.
fn default_component_path() -> std::path::PathBuf {
    crate::abi::plugin_path()
        .and_then(|p| p.parent().map(|d| d.join("kinesis_output.wasm")))
        .filter(|p| Path::new(p).is_file())
        .unwrap_or_else(kinesis_ship::engine::component_path)
}
