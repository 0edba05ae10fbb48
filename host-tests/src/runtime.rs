//! Running the component in wasmtime: one engine and one compiled component per process, one
//! store per instance, and outgoing HTTP either to the network or to an in-process fake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::fake_kinesis::{FakeKinesis, Reply};

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
    ConfigError, Counters, Delivered, Event, Failed, Outcome, PutReport, Rejected, RejectionKind, Timestamp,
};

/// Guest stderr kept per instance (panic messages, if any).
const STDERR_CAPACITY: usize = 1 << 20;

/// Where the component's outgoing HTTP goes.
#[derive(Clone)]
pub enum Upstream {
    /// The real network, through wasmtime-wasi-http's default client.
    Network,
    /// An in-process fake Kinesis.
    Fake(Arc<FakeKinesis>),
    /// Answers every PutRecords at once with success, checking nothing: for benchmarks.
    Instant(Arc<crate::bench::InstantKinesis>),
}

/// An in-process endpoint (fake STS, IMDS, container credentials): method, path and query,
/// headers and body in; status and body out.
pub type Endpoint = Arc<dyn Fn(&str, &str, &[(String, String)], &[u8]) -> (u16, Vec<u8>) + Send + Sync>;

/// How to set up one instance.
#[derive(Clone)]
pub struct InstanceOptions {
    pub env: Vec<(String, String)>,
    pub upstream: Upstream,
    /// Endpoints by authority (`sts.us-east-1.amazonaws.com`, `169.254.169.254`), answered
    /// before `upstream`.
    pub endpoints: HashMap<String, Endpoint>,
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
            endpoints: HashMap::new(),
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

    pub fn endpoint(mut self, authority: &str, endpoint: Endpoint) -> Self {
        self.endpoints.insert(authority.to_string(), endpoint);
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
}

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
    endpoints: HashMap<String, Endpoint>,
    egress: Option<Vec<String>>,
    /// Requests the egress policy refused, as `scheme://authority`.
    refused: Arc<Mutex<Vec<String>>>,
    /// With `track_accepted`: each PutRecords request body answered 200, with its answer
    /// (kept as they are, read only if needed).
    accepted: Option<Exchanges>,
    /// Fault injection (`KINESIS_FAULT_TRAP_AFTER_PUTS`): the engine whose epoch to bump.
    trap_engine: Option<Engine>,
}

impl bindings::kinesis::output::host::Host for Ctx {
    fn run_credential_process(&mut self, command: String) -> Result<String, String> {
        crate::process::run(&command, self.process_timeout)
    }
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

type ResponseFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

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
            if !kinesis_output::egress::is_allowed(allowed, https, &authority) {
                let scheme = if https { "https" } else { "http" };
                self.refused
                    .lock()
                    .expect("not poisoned")
                    .push(format!("{scheme}://{authority}"));
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            }
        }
        if let Some(endpoint) = self.endpoints.get(&authority).cloned() {
            return Box::new(async move {
                let (parts, headers, body) = read_request(request).await?;
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let (status, body) = endpoint(parts.method.as_str(), path, &headers, &body);
                let response = http::Response::builder()
                    .status(status)
                    .body(full_body(body))
                    .expect("a valid response");
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn std::future::Future<Output = _> + Send>,
                ))
            });
        }
        match &self.upstream {
            Upstream::Instant(sink) => {
                let sink = sink.clone();
                Box::new(async move {
                    let (_, _, body) = read_request(request).await?;
                    let response = http::Response::builder()
                        .status(200)
                        .body(full_body(sink.answer(&body)))
                        .expect("a valid response");
                    Ok((
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn std::future::Future<Output = _> + Send>,
                    ))
                })
            }
            Upstream::Network if self.accepted.is_some() || self.trap_engine.is_some() => {
                let accepted = self.accepted.clone();
                let trap_engine = self.trap_engine.clone();
                Box::new(async move {
                    // Whole bodies both ways, to read the PutRecords exchange.
                    let (parts, body) = request.into_parts();
                    let sent = body.collect().await?.to_bytes();
                    let is_put = parts
                        .headers
                        .get("x-amz-target")
                        .is_some_and(|v| v.as_bytes() == b"Kinesis_20131202.PutRecords");
                    let request = http::Request::from_parts(parts, bytes_body(sent.clone()));
                    let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                    // The connection runs on its own while the answer is read.
                    let io = tokio::spawn(io);
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
                            fault_after_put(engine);
                        }
                    }
                    Ok((
                        http::Response::from_parts(parts, bytes_body(answer.clone())),
                        Box::new(async move { io.await.unwrap_or(Ok(())) })
                            as Box<dyn std::future::Future<Output = _> + Send>,
                    ))
                })
            }
            Upstream::Network => Box::new(async move {
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
                ))
            }),
            Upstream::Fake(fake) => {
                let fake = fake.clone();
                Box::new(async move {
                    let (parts, headers, body) = read_request(request).await?;
                    let reply = fake.handle(
                        parts.method.as_str(),
                        parts.uri.path(),
                        parts.uri.query().unwrap_or(""),
                        &headers,
                        &body,
                        options.and_then(|o| o.first_byte_timeout),
                    );
                    let (status, body, break_after, stall, delay) = match reply {
                        Reply::ConnectionError => {
                            return Err(wasmtime_wasi_http::Error::ConnectionTerminated)
                        }
                        // Like the default client, give up when the first byte takes too long.
                        Reply::Timeout(after) => {
                            tokio::time::sleep(after).await;
                            return Err(wasmtime_wasi_http::Error::ConnectionReadTimeout);
                        }
                        // Until the guest drops the request, which aborts this task.
                        Reply::Hang => std::future::pending().await,
                        Reply::Response {
                            status,
                            body,
                            break_after,
                            stall,
                            delay,
                        } => (status, body, break_after, stall, delay),
                    };
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let body: WasiBody = match break_after {
                        None => full_body(body),
                        Some(cut) => BrokenBody {
                            first: Some(Bytes::from(body).slice(..cut)),
                            stall,
                        }
                        .boxed_unsync(),
                    };
                    let response = http::Response::builder()
                        .status(status)
                        .header("content-type", "application/x-amz-json-1.1")
                        .body(body)
                        .expect("a valid response");
                    Ok((
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn std::future::Future<Output = _> + Send>,
                    ))
                })
            }
        }
    }
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
    let (Some(records), Some(entries)) = (sent["Records"].as_array(), answer["Records"].as_array()) else {
        return Vec::new();
    };
    if records.len() != entries.len() {
        return Vec::new();
    }
    records
        .iter()
        .zip(entries)
        .filter(|(_, e)| e.get("SequenceNumber").is_some())
        .filter_map(|(r, _)| r["Data"].as_str().map(str::to_string))
        .collect()
}

/// `KINESIS_FAULT_TRAP_AFTER_PUTS=N`: the instance running when the N-th PutRecords answer
/// arrives traps at its next epoch check, once per process. A fault injection for tests of
/// what a host does after a trap; nothing else sets it.
fn trap_after_puts() -> Option<usize> {
    static N: OnceLock<Option<usize>> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("KINESIS_FAULT_TRAP_AFTER_PUTS")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

fn fault_after_put(engine: &Engine) {
    static ANSWERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = ANSWERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if Some(n) == trap_after_puts() {
        engine.increment_epoch();
    }
}

/// A request's head, headers as text pairs, and whole body.
async fn read_request(
    request: http::Request<WasiBody>,
) -> wasmtime_wasi_http::Result<(http::request::Parts, Vec<(String, String)>, Bytes)> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok((parts, headers, body))
}

/// A whole body from bytes already in memory, without copying them.
fn bytes_body(body: Bytes) -> WasiBody {
    Full::new(body).map_err(|never| match never {}).boxed_unsync()
}

/// A whole body, as the harness hands requests and responses to wasmtime-wasi-http.
pub fn full_body(body: Vec<u8>) -> WasiBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response body that yields its first part, then fails like a dropped connection.
struct BrokenBody {
    first: Option<Bytes>,
    /// After the first bytes, wait forever instead of failing.
    stall: bool,
}

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(data) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None if self.stall => std::task::Poll::Pending,
            None => std::task::Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionTerminated))),
        }
    }
}

/// The `sink` world's component: `$KINESIS_OUTPUT_WASM`, else `kinesis_output.wasm` beside the
/// running executable, else the workspace's `dist/` (where `make component` puts it).
pub fn component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_WASM", "kinesis_output.wasm")
}

/// The `proxy` world's component: `$KINESIS_OUTPUT_PROXY_WASM`, else
/// `kinesis_output_proxy.wasm` beside the running executable, else in `dist/`.
pub fn proxy_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_PROXY_WASM", "kinesis_output_proxy.wasm")
}

/// The `command` world's component, found like the others.
pub fn command_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_COMMAND_WASM", "kinesis_output_command.wasm")
}

fn world_path(variable: &str, file: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(variable) {
        return PathBuf::from(p);
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(file)))
        .filter(|p| p.is_file())
    {
        return beside;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist").join(file)
}

/// Whether compiled code is kept in wasmtime's cache directory (`~/.cache/wasmtime`) between
/// runs. Set by the `kinesis-ship` program (its start then skips the Cranelift compile of an
/// unchanged component); tests compile afresh.
static CODE_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keep compiled components in wasmtime's cache directory from now on.
pub fn enable_code_cache() {
    CODE_CACHE.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn new_engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    if CODE_CACHE.load(std::sync::atomic::Ordering::Relaxed) {
        // A cache that cannot be set up (no home directory, say) only costs the compile.
        if let Ok(cache) = wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
            config.cache(Some(cache));
        }
    }
    if trap_after_puts().is_some() {
        config.epoch_interruption(true);
    }
    // `KINESIS_WASM_PROFILE=perfmap` writes /tmp/perf-<pid>.map so `perf report` can name the
    // component's functions (see README "Performance", profiling the guest).
    if std::env::var_os("KINESIS_WASM_PROFILE").is_some_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| anyhow!("{e}"))
}

/// Compile the component at `path` in a new engine, with a linker holding WASI and wasi:http.
fn compile(path: &Path) -> Result<(Engine, Component, Linker<Ctx>)> {
    let engine = new_engine()?;
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the component {} (build it with `make component`)",
            path.display()
        )
    })?;
    let component = Component::new(&engine, &bytes).map_err(|e| anyhow!("compiling the component: {e}"))?;
    let linker = wasi_linker(&engine)?;
    Ok((engine, component, linker))
}

fn wasi_linker(engine: &Engine) -> Result<Linker<Ctx>> {
    let mut linker = Linker::<Ctx>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    Ok(linker)
}

/// An engine and the compiled, pre-linked component.
pub struct Runtime {
    engine: Engine,
    pre: bindings::SinkPre<Ctx>,
}

impl Runtime {
    /// Compile the component at `path` and link it against WASI and wasi:http.
    pub fn load(path: &Path) -> Result<Runtime> {
        let (engine, component, _) = compile(path)?;
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

    /// One runtime per process, from [`component_path`].
    pub fn shared() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime::load(&component_path()).unwrap_or_else(|e| panic!("{e:#}")))
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
        store.limiter(|ctx| &mut ctx.memory);
        if trap_after_puts().is_some() {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(1);
        }
        let sink = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow!("instantiating: {e}"))?;
        Ok(Instance { store, sink, stderr })
    }
}

/// A store's data set up by `options`, and the pipe that keeps the guest's stderr.
fn new_ctx(options: InstanceOptions, engine: Option<&Engine>) -> Result<(Ctx, MemoryOutputPipe)> {
    crate::transcript::secrets_in_env(&options.env);
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
            endpoints: options.endpoints,
            egress: options.egress,
            refused: Arc::new(Mutex::new(Vec::new())),
            accepted: options.track_accepted.then(|| Arc::new(Mutex::new(Vec::new()))),
            trap_engine: engine.filter(|_| trap_after_puts().is_some()).cloned(),
        },
        process_timeout: options.process_timeout,
        memory: MemoryPeak {
            peak: 0,
            limit: options.max_memory,
        },
    };
    Ok((ctx, stderr))
}

/// The `proxy` world compiled and pre-linked: one fresh instance per request, as
/// `wasmtime serve` does.
#[derive(Clone)]
pub struct ProxyRuntime {
    pre: wasmtime_wasi_http::p2::bindings::ProxyPre<Ctx>,
}

/// A response body as wasmtime-wasi-http produces it.
pub type ProxyBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

impl ProxyRuntime {
    /// Compile the proxy component at `path` and link it against WASI and wasi:http.
    pub fn load(path: &Path) -> Result<ProxyRuntime> {
        let (_, component, linker) = compile(path)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("linking: {e}"))?;
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(|e| anyhow!("{path:?} is not a wasi:http proxy component: {e}"))?;
        Ok(ProxyRuntime { pre })
    }

    /// One proxy runtime per process, from [`proxy_component_path`].
    pub fn shared() -> &'static ProxyRuntime {
        static RUNTIME: OnceLock<ProxyRuntime> = OnceLock::new();
        RUNTIME
            .get_or_init(|| ProxyRuntime::load(&proxy_component_path()).unwrap_or_else(|e| panic!("{e:#}")))
    }

    /// Answer one request with a fresh instance set up by `options`. A trap becomes a 500.
    pub async fn handle<B>(
        &self,
        options: &InstanceOptions,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<ProxyBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
        let (ctx, stderr) = new_ctx(options.clone(), None)?;
        let mut store = Store::new(self.pre.engine(), ctx);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| anyhow!("{e}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| anyhow!("{e}"))?;
        let pre = self.pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Ok(error_response(&format!(
                "the component answered an error: {code:?}"
            ))),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => "the component never answered".to_string(),
                    Ok(Err(e)) => format!("the component trapped: {e:?}"),
                    Err(e) => format!("the component's task failed: {e}"),
                };
                let guest = String::from_utf8_lossy(&stderr.contents()).into_owned();
                eprintln!("kinesis-ship: {why}\n{guest}");
                Ok(error_response(&why))
            }
        }
    }
}

/// A 500 with a JSON error.
fn error_response(message: &str) -> hyper::Response<ProxyBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    hyper::Response::builder()
        .status(500)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}

/// One instance of the component.
pub struct Instance {
    store: Store<Ctx>,
    sink: bindings::Sink,
    stderr: MemoryOutputPipe,
}

impl Drop for Instance {
    fn drop(&mut self) {
        crate::transcript::record("guest stderr", &self.stderr());
    }
}

/// An open sink inside an [`Instance`].
#[derive(Clone, Copy)]
pub struct SinkHandle(ResourceAny);

impl Instance {
    /// `sink.open(config)`: `Err` only for a trap; a refused config is the inner `Err`.
    pub async fn open(&mut self, config: &str) -> Result<std::result::Result<SinkHandle, ConfigError>> {
        crate::transcript::secrets_in_config(config);
        let result = self
            .sink
            .kinesis_output_shipper()
            .sink()
            .call_open(&mut self.store, config)
            .await
            .map_err(|e| self.trap("open", e))?;
        if let Err(e) = &result {
            crate::transcript::record("open", &format!("{e:?} {}", e.message));
        }
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
        crate::transcript::record("put", &format!("{report:?}"));
        Ok(report)
    }

    /// Drop an open sink.
    pub async fn close(&mut self, sink: SinkHandle) -> Result<()> {
        sink.0
            .resource_drop_async(&mut self.store)
            .await
            .map_err(|e| anyhow!("dropping the sink: {e}"))
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
            "the component trapped in {call}: {e:?}\nguest stderr:\n{}",
            self.stderr()
        )
    }
}

/// An event from a JSON record, with a fixed tag and the given time.
pub fn event(record: impl Into<Vec<u8>>, seconds: i64) -> Event {
    Event {
        tag: "kube.var.log.containers".to_string(),
        time: Timestamp {
            seconds,
            nanoseconds: 0,
        },
        record: record.into(),
    }
}

/// A delay small enough for tests, long enough to be real.
pub const TEST_DELAY: Duration = Duration::from_millis(30);
