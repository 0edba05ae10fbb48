//! The `sink` world in wasmtime: one engine and one compiled component per process, one store
//! per instance, and the instance's outgoing HTTP: to the network through the egress policy, or
//! to a [`Transport`] the embedder supplies (a test harness, a benchmark).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::engine::{compile, wasi_linker, ComponentSource};
use kinesis_output::kinesis::Service;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sink",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        },
    });
}

pub use bindings::exports::kinesis::output::shipper::{
    ConfigError, Counters, Delivered, Event, Failed, Outcome, PackedEvents, PackedReport, PutReport,
    Rejected, RejectionKind, Timestamp,
};

impl PackedEvents {
    /// No events yet, all to be tagged `tag`.
    pub fn new(tag: &str) -> PackedEvents {
        PackedEvents::with_capacity(tag, 0, 0)
    }

    /// No events yet, with room for `events` events of `bytes` bytes in all (a chunk's records
    /// are copied in once, never moved as the buffer grows).
    pub fn with_capacity(tag: &str, events: usize, bytes: usize) -> PackedEvents {
        PackedEvents {
            tag: tag.to_string(),
            times: Vec::with_capacity(events),
            records: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// One more event. (Ends are 32-bit: a put's records stay far below 4 GiB, the most a
    /// 32-bit component can take in at all.)
    pub fn push(&mut self, seconds: i64, nanoseconds: u32, record: &[u8]) {
        self.records.extend_from_slice(record);
        self.times.push(Timestamp { seconds, nanoseconds });
        self.ends
            .push(u32::try_from(self.records.len()).unwrap_or(u32::MAX));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Event `i`'s time as seconds and nanoseconds.
    pub fn time(&self, i: usize) -> (i64, u32) {
        let t = &self.times[i];
        (t.seconds, t.nanoseconds)
    }

    /// Event `i`'s record.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.records[start.min(self.records.len())..(self.ends[i] as usize).min(self.records.len())]
    }
}

/// The core's view of an outcome the component reported: the one place the WIT types map to
/// the core's (and so to the codes every report spells).
pub fn core_outcome(outcome: Outcome) -> kinesis_output::Outcome {
    use kinesis_output::RejectionKind as Kind;
    match outcome {
        Outcome::Delivered(d) => kinesis_output::Outcome::Delivered {
            shard_id: d.shard_id,
            sequence_number: d.sequence_number,
        },
        Outcome::Failed(f) => kinesis_output::Outcome::Failed {
            code: kinesis_output::Code::parse(&f.code),
            message: f.message,
            attempts: f.attempts,
        },
        Outcome::Rejected(r) => kinesis_output::Outcome::Rejected(kinesis_output::Rejected {
            kind: match r.kind {
                RejectionKind::NotJson => Kind::NotJson,
                RejectionKind::NotAnObject => Kind::NotAnObject,
                RejectionKind::NoPartitionKey => Kind::NoPartitionKey,
                RejectionKind::TooLarge => Kind::TooLarge,
                RejectionKind::NoDataKey => Kind::NoDataKey,
                RejectionKind::NoStreamName => Kind::NoStreamName,
            },
            message: r.message,
        }),
    }
}

/// The core's view of a report the component returned (its strings moved, not copied).
pub fn core_report(report: PutReport) -> kinesis_output::PutReport {
    kinesis_output::PutReport {
        outcomes: report.outcomes.into_iter().map(core_outcome).collect(),
        credential_source: report.credential_source,
        first_key_cut: report.first_key_cut.map(|i| i as usize),
        counters: core_counters(&report.counters),
    }
}

fn core_counters(c: &Counters) -> kinesis_output::Counters {
    kinesis_output::Counters {
        requests: c.requests,
        retries: c.retries,
        throttled_records: c.throttled_records,
        bytes_sent: c.bytes_sent,
        credential_refreshes: c.credential_refreshes,
        partition_keys_truncated: c.partition_keys_truncated,
    }
}

/// The longest a host waits, after a trap, for the requests the instance left in flight.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(120);

/// Guest stderr kept per instance (panic messages, if any).
const STDERR_CAPACITY: usize = 1 << 20;

/// What a request comes to, as wasmtime-wasi-http's hooks return it: the response head with its
/// body, and the future that drives the connection meanwhile.
pub type Answered = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

/// A response on its way.
pub type ResponseFuture = Box<dyn std::future::Future<Output = Answered> + Send>;

/// Answers the component's requests in place of the network: what a test harness or a
/// benchmark plugs in. Requests reach it only after the egress policy let them through.
pub trait Transport: Send + Sync {
    fn send(&self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> ResponseFuture;
}

/// Where the component's outgoing HTTP goes.
#[derive(Clone)]
pub enum Upstream {
    /// The real network, through the host's own client (`crate::transport`).
    Network,
    /// An embedder's transport.
    Custom(Arc<dyn Transport>),
}

/// How to set up one instance.
#[derive(Clone)]
pub struct InstanceOptions {
    pub env: Vec<(String, String)>,
    pub upstream: Upstream,
    /// Trust more than the public CAs (an extra CA file), or nothing (`verify` off): see
    /// [`crate::transport`]. `None`: the public CAs.
    pub tls: Option<crate::transport::TlsConfig>,
    /// HTTP proxies (`HTTPS_PROXY`, …): see [`crate::network`]. `None`: direct connections.
    pub proxies: Option<Arc<crate::network::Proxies>>,
    /// Count PutRecords requests (by status) and their latency here (`kinesis-ship serve`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Folders granted read-only: (host path, guest path).
    pub dirs: Vec<(PathBuf, String)>,
    /// How long a credential process may run.
    pub process_timeout: Duration,
    /// Send the guest's stderr to this process's stderr instead of keeping it.
    pub inherit_stderr: bool,
    /// The egress policy: the only authorities (`host:port`, see `kinesis_output::egress`) the
    /// component may reach; any other request is refused with `HttpRequestDenied`. `None`
    /// lets every request through.
    pub egress: Option<Vec<String>>,
    /// The most linear memory the instance may grow to, in bytes; past it the guest traps.
    pub max_memory: Option<usize>,
    /// Keep the `Data` of every record a PutRecords answer said was stored (real network
    /// only; see [`Instance::take_accepted`]), so that after a trap the host knows what the
    /// service already has.
    pub track_accepted: bool,
}

impl InstanceOptions {
    pub fn new(upstream: Upstream) -> Self {
        InstanceOptions {
            env: Vec::new(),
            upstream,
            tls: None,
            proxies: None,
            metrics: None,
            dirs: Vec::new(),
            process_timeout: Duration::from_secs(30),
            inherit_stderr: false,
            egress: None,
            max_memory: None,
            track_accepted: false,
        }
    }

    /// Refuse every authority but `allowed` (`host:port`).
    pub fn egress(mut self, allowed: Vec<String>) -> Self {
        self.egress = Some(allowed);
        self
    }

    pub fn env(mut self, pairs: &[(&str, &str)]) -> Self {
        self.env
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    pub fn dir(mut self, host: impl Into<PathBuf>, guest: &str) -> Self {
        self.dirs.push((host.into(), guest.to_string()));
        self
    }
}

/// The store's data.
pub struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    process_timeout: Duration,
    memory: MemoryPeak,
    /// Told of each record the service stored during a put (the WIT's `host.stored`).
    on_stored: Option<StoredHook>,
}

/// What a host does as it hears the service stored records of the running put (their places
/// in its events).
pub type StoredHook = Box<dyn FnMut(&[u32]) + Send>;

/// Watches linear memory growth: the largest size any memory of the instance asked for, and
/// refuses growth past `limit` (the guest's allocation then fails: a trap).
#[derive(Default)]
struct MemoryPeak {
    peak: usize,
    limit: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryPeak {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.limit.is_some_and(|limit| desired > limit) {
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// PutRecords request bodies with their answers, shared with the HTTP hook.
type Exchanges = Arc<Mutex<Vec<(Bytes, Bytes)>>>;

struct Hooks {
    upstream: Upstream,
    /// The host's own TLS client settings, when it trusts more than the public CAs.
    tls: Option<crate::transport::TlsConfig>,
    proxies: Option<Arc<crate::network::Proxies>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    egress: Option<Vec<String>>,
    /// Requests the egress policy refused, as `scheme://authority`.
    refused: Arc<Mutex<Vec<String>>>,
    /// With `track_accepted`: each PutRecords request body answered 200, with its answer
    /// (kept as they are, read only if needed).
    accepted: Option<Exchanges>,
    /// Fault injection (test builds, see [`crate::faults`]): the engine whose epoch to bump.
    trap_engine: Option<Engine>,
    /// With `track_accepted`: the exchanges started, which outlive a trap.
    in_flight: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl bindings::kinesis::output::host::Host for Ctx {
    fn run_credential_process(&mut self, command: String) -> Result<String, String> {
        crate::process::run(&command, self.process_timeout)
    }

    fn payload_sha256(&mut self, data: Vec<u8>) -> String {
        payload_sha256(&data)
    }

    fn stored(&mut self, events: Vec<u32>) {
        if let Some(hook) = &mut self.on_stored {
            hook(&events);
        }
        // The component tells what a wave of requests stored once every answer of the wave is
        // in: the exchanges kept so far are told. After a trap only the ones since are matched
        // (a repeated record must not be taken for one the service never stored).
        if let Some(accepted) = &self.hooks.accepted {
            accepted.lock().expect("not poisoned").clear();
        }
    }
}

/// `payload-sha256` as this host answers it: ring's SHA-256, which uses the CPU's SHA
/// instructions where there are any, in lowercase hex.
pub fn payload_sha256(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if let Some(allowed) = &self.egress {
            let https = request.uri().scheme_str() == Some("https");
            if !kinesis_output::delivery::egress::is_allowed(allowed, https, &authority) {
                let scheme = if https { "https" } else { "http" };
                self.refused
                    .lock()
                    .expect("not poisoned")
                    .push(format!("{scheme}://{authority}"));
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            }
        }
        // A PutRecords or PutRecordBatch call (credential requests are not).
        let service = request.headers().get("x-amz-target").and_then(|v| {
            [Service::Streams, Service::Firehose]
                .into_iter()
                .find(|s| v.as_bytes() == s.target().as_bytes())
        });
        let is_put = service.is_some();
        let sent = self.send_allowed(request, options, is_put);
        match (&self.metrics, is_put) {
            (Some(metrics), true) => {
                let metrics = metrics.clone();
                Box::new(async move {
                    let started = std::time::Instant::now();
                    let answered = Box::into_pin(sent).await;
                    let status = answered.as_ref().ok().map(|(r, _)| r.status().as_u16());
                    let service = service.map_or("kinesis", Service::name);
                    metrics.put_records(service, status, started.elapsed());
                    answered
                })
            }
            _ => sent,
        }
    }
}

impl Hooks {
    /// Send a request the egress policy allowed (`is_put`: a PutRecords request).
    fn send_allowed(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        is_put: bool,
    ) -> ResponseFuture {
        match &self.upstream {
            Upstream::Custom(transport) => transport.send(request, options),
            Upstream::Network if self.accepted.is_some() || self.trap_engine.is_some() => {
                let accepted = self.accepted.clone();
                let trap_engine = self.trap_engine.clone();
                let tls = self.tls.clone();
                let proxies = self.proxies.clone();
                // The exchange runs as a task of its own, which a trap (dropping the store) does
                // not cancel: after a trap the host waits for it, so that what the service
                // stored meanwhile is known before anything is sent again.
                let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(async move {
                    let answered: Answered = async {
                        // Whole bodies both ways, to read the PutRecords exchange.
                        let (parts, body) = request.into_parts();
                        let sent = body.collect().await?.to_bytes();
                        let request = http::Request::from_parts(parts, bytes_body(sent.clone()));
                        let (response, io) = send_network(request, options, tls, proxies).await?;
                        // The connection runs on its own while the answer is read.
                        let io = tokio::spawn(Box::into_pin(io));
                        let (parts, body) = response.into_parts();
                        let answer = body.collect().await?.to_bytes();
                        if is_put && parts.status == 200 {
                            if let Some(accepted) = &accepted {
                                accepted
                                    .lock()
                                    .expect("not poisoned")
                                    .push((sent.clone(), answer.clone()));
                            }
                            if let Some(engine) = &trap_engine {
                                crate::faults::after_put(engine);
                            }
                        }
                        Ok((
                            http::Response::from_parts(parts, bytes_body(answer.clone())),
                            Box::new(async move { io.await.unwrap_or(Ok(())) })
                                as Box<dyn std::future::Future<Output = _> + Send>,
                        ))
                    }
                    .await;
                    let _ = answer_tx.send(answered);
                });
                let mut in_flight = self.in_flight.lock().expect("not poisoned");
                in_flight.retain(|t| !t.is_finished());
                in_flight.push(task);
                Box::new(async move {
                    answer_rx.await.unwrap_or_else(|_| {
                        Err(wasmtime_wasi_http::Error::InternalError(Some(
                            "the exchange's task ended without an answer".to_string(),
                        )))
                    })
                })
            }
            Upstream::Network => Box::new(send_network(
                request,
                options,
                self.tls.clone(),
                self.proxies.clone(),
            )),
        }
    }
}

/// Send `request` over the network with the host's own client (`crate::transport`): the public
/// CAs unless the host trusts more, through a proxy where one applies, on a kept connection
/// where one is ready.
async fn send_network(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: Option<crate::transport::TlsConfig>,
    proxies: Option<Arc<crate::network::Proxies>>,
) -> Answered {
    let tls = tls.unwrap_or_else(crate::transport::public_tls);
    crate::transport::send(request, options, tls, proxies).await
}

/// The base64 `Data` of each record of a PutRecords request `sent` that its `answer` says
/// was stored.
pub fn stored_data(sent: &[u8], answer: &[u8]) -> Vec<String> {
    let (Ok(sent), Ok(answer)) = (
        serde_json::from_slice::<serde_json::Value>(sent),
        serde_json::from_slice::<serde_json::Value>(answer),
    ) else {
        return Vec::new();
    };
    // PutRecords answers `Records`, PutRecordBatch `RequestResponses`; a stored record has a
    // `SequenceNumber` or a `RecordId` (a string) and no `ErrorCode`, as the core reads them:
    // anything else is not known stored, and is sent again.
    let entries = answer["Records"]
        .as_array()
        .or_else(|| answer["RequestResponses"].as_array());
    let (Some(records), Some(entries)) = (sent["Records"].as_array(), entries) else {
        return Vec::new();
    };
    if records.len() != entries.len() {
        return Vec::new();
    }
    records
        .iter()
        .zip(entries)
        .filter(|(_, e)| {
            let id = e["SequenceNumber"].is_string() || e["RecordId"].is_string();
            id && e.get("ErrorCode").is_none_or(serde_json::Value::is_null)
        })
        .filter_map(|(r, _)| r["Data"].as_str().map(str::to_string))
        .collect()
}

/// A whole body from bytes already in memory, without copying them.
pub fn bytes_body(body: Bytes) -> WasiBody {
    Full::new(body).map_err(|never| match never {}).boxed_unsync()
}

/// A whole body, as the harness hands requests and responses to wasmtime-wasi-http.
pub fn full_body(body: Vec<u8>) -> WasiBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An engine and the compiled, pre-linked component.
pub struct Runtime {
    engine: Engine,
    pre: bindings::SinkPre<Ctx>,
}

impl Runtime {
    /// Compile the component at `path` and link it against WASI and wasi:http.
    pub fn load(path: &Path) -> Result<Runtime> {
        Runtime::load_from(&ComponentSource::File(path.to_path_buf()))
    }

    /// Compile the component from `source` (a file or the copy built in) and link it.
    pub fn load_from(source: &ComponentSource) -> Result<Runtime> {
        Runtime::load_bytes(&source.bytes()?)
    }

    /// Compile the component `bytes` and link it.
    pub fn load_bytes(bytes: &[u8]) -> Result<Runtime> {
        let (engine, component, _) = compile::<Ctx>(bytes)?;
        Runtime::with_component(engine, &component)
    }

    /// Link a component already compiled in `engine` (compiled here, or deserialized from
    /// precompiled code).
    pub fn with_component(engine: Engine, component: &Component) -> Result<Runtime> {
        let mut linker = wasi_linker(&engine)?;
        bindings::kinesis::output::host::add_to_linker::<Ctx, wasmtime::component::HasSelf<Ctx>>(
            &mut linker,
            |c| c,
        )
        .map_err(|e| anyhow!("{e}"))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| anyhow!("linking: {e}"))?;
        let pre = bindings::SinkPre::new(pre).map_err(|e| anyhow!("{e}"))?;
        Ok(Runtime { engine, pre })
    }

    /// A fresh instance with `env` as its environment and `upstream` for its HTTP.
    pub async fn instantiate(&self, env: &[(&str, &str)], upstream: Upstream) -> Result<Instance> {
        self.instantiate_with(InstanceOptions::new(upstream).env(env))
            .await
    }

    /// A fresh instance set up by `options`.
    pub async fn instantiate_with(&self, options: InstanceOptions) -> Result<Instance> {
        let (ctx, stderr) = new_ctx(options, Some(&self.engine))?;
        let mut store = Store::new(&self.engine, ctx);
        limit_memory(&mut store);
        let sink = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow!("instantiating: {e}"))?;
        Ok(Instance { store, sink, stderr })
    }
}

/// Hold `store`'s linear memory to its options' `max_memory` (every world's instances), and
/// arm the test-only trap switch when it is on.
pub(crate) fn limit_memory(store: &mut Store<Ctx>) {
    store.limiter(|ctx| &mut ctx.memory);
    if crate::faults::trap_after_puts().is_some() {
        store.epoch_deadline_trap();
        store.set_epoch_deadline(1);
    }
}

/// With `track_accepted`: a view of an instance's PutRecords exchanges that outlives its
/// store (readable after a trap).
pub(crate) struct ExchangeWatch {
    accepted: Exchanges,
    in_flight: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl ExchangeWatch {
    pub(crate) fn of(ctx: &Ctx) -> Option<ExchangeWatch> {
        Some(ExchangeWatch {
            accepted: ctx.hooks.accepted.clone()?,
            in_flight: ctx.hooks.in_flight.clone(),
        })
    }

    /// The base64 `Data` of every record the service said it stored, over every exchange,
    /// once those still in flight have ended (at most [`IN_FLIGHT_WAIT`]).
    pub(crate) async fn stored_data(&self) -> Vec<String> {
        let tasks = std::mem::take(&mut *self.in_flight.lock().expect("not poisoned"));
        let _ = tokio::time::timeout(IN_FLIGHT_WAIT, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        self.accepted
            .lock()
            .expect("not poisoned")
            .iter()
            .flat_map(|(sent, answer)| stored_data(sent, answer))
            .collect()
    }
}

/// A store's data set up by `options`, and the pipe that keeps the guest's stderr.
pub(crate) fn new_ctx(options: InstanceOptions, engine: Option<&Engine>) -> Result<(Ctx, MemoryOutputPipe)> {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    let mut builder = WasiCtx::builder();
    builder.envs(&options.env);
    if options.inherit_stderr {
        builder.inherit_stderr();
    } else {
        builder.stderr(stderr.clone());
    }
    for (host, guest) in &options.dirs {
        builder
            .preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| anyhow!("granting {}: {e}", host.display()))?;
    }
    let ctx = Ctx {
        table: ResourceTable::new(),
        wasi: builder.build(),
        http: WasiHttpCtx::new(),
        hooks: Hooks {
            upstream: options.upstream,
            tls: options.tls,
            proxies: options.proxies,
            metrics: options.metrics,
            egress: options.egress,
            refused: Arc::new(Mutex::new(Vec::new())),
            accepted: options.track_accepted.then(|| Arc::new(Mutex::new(Vec::new()))),
            trap_engine: engine
                .filter(|_| crate::faults::trap_after_puts().is_some())
                .cloned(),
            in_flight: Arc::new(Mutex::new(Vec::new())),
        },
        process_timeout: options.process_timeout,
        memory: MemoryPeak {
            peak: 0,
            limit: options.max_memory,
        },
        on_stored: None,
    };
    Ok((ctx, stderr))
}

/// One instance of the component.
pub struct Instance {
    store: Store<Ctx>,
    sink: bindings::Sink,
    stderr: MemoryOutputPipe,
}

/// An open sink inside an [`Instance`].
#[derive(Clone, Copy)]
pub struct SinkHandle(ResourceAny);

impl Instance {
    /// `sink.open(config)`: `Err` only for a trap; a refused config is the inner `Err`.
    pub async fn open(&mut self, config: &str) -> Result<std::result::Result<SinkHandle, ConfigError>> {
        let result = self
            .sink
            .kinesis_output_shipper()
            .sink()
            .call_open(&mut self.store, config)
            .await
            .map_err(|e| self.trap("open", e))?;
        Ok(result.map(SinkHandle))
    }

    /// `sink.put(events)`.
    pub async fn put(&mut self, sink: SinkHandle, events: &[Event]) -> Result<PutReport> {
        let report = self
            .sink
            .kinesis_output_shipper()
            .sink()
            .call_put(&mut self.store, sink.0, events)
            .await
            .map_err(|e| self.trap("put", e))?;
        Ok(report)
    }

    /// `sink.put-packed(events)`, its report in the core's terms: every event's outcome, the
    /// delivered ones without shard or sequence number. A report whose counts do not add up
    /// is an error, as a trap is.
    pub async fn put_packed(
        &mut self,
        sink: SinkHandle,
        events: &PackedEvents,
    ) -> Result<kinesis_output::PutReport> {
        let report = self
            .sink
            .kinesis_output_shipper()
            .sink()
            .call_put_packed(&mut self.store, sink.0, events)
            .await
            .map_err(|e| self.trap("put-packed", e))?;
        let (delivered, listed) = (report.delivered, report.problems.len());
        let problems = report
            .problems
            .into_iter()
            .map(|(i, o)| (i, core_outcome(o)))
            .collect();
        let outcomes = kinesis_output::kinesis::packed::outcomes(events.len(), delivered, problems)
            .ok_or_else(|| {
                anyhow!(
                    "the component's put-packed report does not add up: {delivered} delivered and {listed} problems for {} events",
                    events.len()
                )
            })?;
        Ok(kinesis_output::PutReport {
            outcomes,
            credential_source: report.credential_source,
            first_key_cut: report.first_key_cut.map(|i| i as usize),
            counters: core_counters(&report.counters),
        })
    }

    /// Drop an open sink.
    pub async fn close(&mut self, sink: SinkHandle) -> Result<()> {
        sink.0
            .resource_drop_async(&mut self.store)
            .await
            .map_err(|e| anyhow!("dropping the sink: {e}"))
    }

    /// Hear of each record the service stores during the next puts (`None`: stop hearing).
    pub fn on_stored(&mut self, hook: Option<StoredHook>) {
        self.store.data_mut().on_stored = hook;
    }

    /// The largest linear memory the instance has grown to, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.store.data().memory.peak
    }

    /// With `track_accepted`: the base64 `Data` of every record answered as stored since the
    /// last call, taken.
    pub fn take_accepted(&mut self) -> Vec<String> {
        self.store
            .data()
            .hooks
            .accepted
            .as_ref()
            .map(|a| std::mem::take(&mut *a.lock().expect("not poisoned")))
            .unwrap_or_default()
            .iter()
            .flat_map(|(sent, answer)| stored_data(sent, answer))
            .collect()
    }

    /// After a trap: wait for the PutRecords exchanges still in flight to end (each is bounded
    /// by the request's own timeouts; this waits at most [`IN_FLIGHT_WAIT`] in all), then take
    /// what the service answered as stored ([`Instance::take_accepted`]).
    pub async fn settle_in_flight(&mut self) -> Vec<String> {
        let tasks = std::mem::take(&mut *self.store.data().hooks.in_flight.lock().expect("not poisoned"));
        let _ = tokio::time::timeout(IN_FLIGHT_WAIT, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        self.take_accepted()
    }

    /// Forget the PutRecords exchanges kept so far (before a new `put`).
    pub fn clear_accepted(&mut self) {
        if let Some(a) = &self.store.data().hooks.accepted {
            a.lock().expect("not poisoned").clear();
        }
    }

    /// The requests the egress policy refused, as `scheme://authority`, in order.
    pub fn refused(&self) -> Vec<String> {
        self.store
            .data()
            .hooks
            .refused
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// What the guest wrote to stderr.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    fn trap(&self, call: &str, e: wasmtime::Error) -> anyhow::Error {
        anyhow!(
            "the component trapped in {call}: {e:#}\nguest stderr:\n{}",
            self.stderr()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a trap, a record counts as stored only as the core would read its entry: an id
    /// that is a string and no error code. Anything else is sent again (never lost).
    #[test]
    fn only_entries_the_core_reads_as_stored_count_as_stored() {
        let sent = br#"{"Records":[{"Data":"YQ=="},{"Data":"Yg=="},{"Data":"Yw=="},{"Data":"ZA=="},{"Data":"ZQ=="}]}"#;
        let answer = br#"{"Records":[
            {"SequenceNumber":"1","ShardId":"s"},
            {"SequenceNumber":null},
            {"SequenceNumber":"3","ErrorCode":"ProvisionedThroughputExceededException"},
            {"ErrorCode":"InternalFailure"},
            {"SequenceNumber":"5","ErrorCode":null}]}"#;
        assert_eq!(stored_data(sent, answer), vec!["YQ==", "ZQ=="]);
        let batch = br#"{"RequestResponses":[{"RecordId":"r1"},{"RecordId":null,"ErrorCode":"ServiceUnavailableException"},
            {"RecordId":"r3","ErrorCode":"ServiceUnavailableException"},{},{"RecordId":7}]}"#;
        assert_eq!(stored_data(sent, batch), vec!["YQ=="]);
        // An answer that does not match the request says nothing.
        assert!(stored_data(sent, br#"{"Records":[{"SequenceNumber":"1"}]}"#).is_empty());
    }
}
