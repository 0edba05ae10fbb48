//! The product's wasmtime embedding (`kinesis_ship::sink`, `kinesis_ship::proxy`) as the tests
//! use it: the fakes plugged in as its [`Transport`], in-process endpoints (fake STS, IMDS,
//! container credentials), one compiled component per test process, and every text the
//! component says recorded for the secret scan ([`crate::transcript`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use kinesis_ship::sink::{self as product, Answered, ResponseFuture, Transport};
use wasmtime_wasi_http::{RequestOptions, WasiBody};

pub use kinesis_ship::engine::{command_component_path, component_path, proxy_component_path};
pub use kinesis_ship::sink::{
    full_body, stored_data, ConfigError, Counters, Delivered, Event, Failed, Outcome, PackedEvents,
    PutReport, Rejected, RejectionKind, SinkHandle, StoredHook, Timestamp,
};

use crate::bench::InstantKinesis;
use crate::fake_kinesis::{FakeKinesis, Reply};

/// Where a test instance's outgoing HTTP goes.
#[derive(Clone)]
pub enum Upstream {
    /// The real network, through wasmtime-wasi-http's default client.
    Network,
    /// An in-process fake Kinesis.
    Fake(Arc<FakeKinesis>),
    /// Answers every PutRecords at once with success, checking nothing: for benchmarks.
    Instant(Arc<InstantKinesis>),
}

/// An in-process endpoint (fake STS, IMDS, container credentials): method, path and query,
/// headers and body in; status and body out.
pub type Endpoint = Arc<dyn Fn(&str, &str, &[(String, String)], &[u8]) -> (u16, Vec<u8>) + Send + Sync>;

/// How to set up one test instance: the product's options, with the upstream and endpoints
/// the test wants.
#[derive(Clone)]
pub struct InstanceOptions {
    pub product: product::InstanceOptions,
    upstream: Upstream,
    /// Endpoints by authority (`sts.us-east-1.amazonaws.com`, `169.254.169.254`), answered
    /// before `upstream`.
    endpoints: HashMap<String, Endpoint>,
}

impl InstanceOptions {
    pub fn new(upstream: Upstream) -> Self {
        InstanceOptions {
            product: product::InstanceOptions::new(product::Upstream::Network),
            upstream,
            endpoints: HashMap::new(),
        }
    }

    /// Refuse every authority but `allowed` (`host:port`).
    pub fn egress(mut self, allowed: Vec<String>) -> Self {
        self.product = self.product.egress(allowed);
        self
    }

    pub fn env(mut self, pairs: &[(&str, &str)]) -> Self {
        self.product = self.product.env(pairs);
        self
    }

    pub fn endpoint(mut self, authority: &str, endpoint: Endpoint) -> Self {
        self.endpoints.insert(authority.to_string(), endpoint);
        self
    }

    pub fn dir(mut self, host: impl Into<PathBuf>, guest: &str) -> Self {
        self.product = self.product.dir(host, guest);
        self
    }

    /// The product's options, with the fakes as its transport; the secrets in the environment
    /// are noted for the scan.
    pub fn build(&self) -> product::InstanceOptions {
        crate::transcript::secrets_in_env(&self.product.env);
        let mut options = self.product.clone();
        options.upstream = match (&self.upstream, self.endpoints.is_empty()) {
            (Upstream::Network, true) => product::Upstream::Network,
            _ => product::Upstream::Custom(Arc::new(Routes {
                upstream: self.upstream.clone(),
                endpoints: self.endpoints.clone(),
            })),
        };
        options
    }
}

/// The tests' transport: endpoints by authority, then the upstream.
struct Routes {
    upstream: Upstream,
    endpoints: HashMap<String, Endpoint>,
}

/// A whole response, with nothing left to drive.
fn answered(response: http::Response<WasiBody>) -> Answered {
    Ok((response, Box::new(async { Ok(()) })))
}

impl Transport for Routes {
    fn send(&self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> ResponseFuture {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if let Some(endpoint) = self.endpoints.get(&authority).cloned() {
            return Box::new(async move {
                let (parts, headers, body) = read_request(request).await?;
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let (status, body) = endpoint(parts.method.as_str(), path, &headers, &body);
                answered(
                    http::Response::builder()
                        .status(status)
                        .body(full_body(body))
                        .expect("a valid response"),
                )
            });
        }
        match &self.upstream {
            Upstream::Network => Box::new(async move {
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
                ))
            }),
            Upstream::Instant(sink) => {
                let sink = sink.clone();
                Box::new(async move {
                    let (_, _, body) = read_request(request).await?;
                    answered(
                        http::Response::builder()
                            .status(200)
                            .body(full_body(sink.answer(&body)))
                            .expect("a valid response"),
                    )
                })
            }
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
                    let answer = match reply {
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
                        Reply::Response(answer) => answer,
                    };
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    let status = answer.status;
                    let body: WasiBody = answer
                        .into_body(|| wasmtime_wasi_http::Error::ConnectionTerminated)
                        .boxed_unsync();
                    answered(
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/x-amz-json-1.1")
                            .body(body)
                            .expect("a valid response"),
                    )
                })
            }
        }
    }
}

/// A request's head, headers as text pairs, and whole body.
async fn read_request(
    request: http::Request<WasiBody>,
) -> wasmtime_wasi_http::Result<(http::request::Parts, Vec<(String, String)>, Bytes)> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let headers = crate::fake_kinesis::header_pairs(&parts.headers);
    Ok((parts, headers, body))
}

/// The product's runtime, for tests.
pub struct Runtime(product::Runtime);

impl Runtime {
    /// Compile the component at `path` and link it against WASI and wasi:http.
    pub fn load(path: &Path) -> Result<Runtime> {
        product::Runtime::load(path).map(Runtime)
    }

    /// Link a component already compiled in `engine`.
    pub fn with_component(
        engine: wasmtime::Engine,
        component: &wasmtime::component::Component,
    ) -> Result<Runtime> {
        product::Runtime::with_component(engine, component).map(Runtime)
    }

    /// One runtime per test process, from [`component_path`].
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
        self.0.instantiate_with(options.build()).await.map(Instance)
    }
}

/// One instance, its texts recorded for the secret scan.
pub struct Instance(product::Instance);

impl Drop for Instance {
    fn drop(&mut self) {
        crate::transcript::record("guest stderr", &self.0.stderr());
    }
}

impl Instance {
    /// `sink.open(config)`: `Err` only for a trap; a refused config is the inner `Err`.
    pub async fn open(&mut self, config: &str) -> Result<std::result::Result<SinkHandle, ConfigError>> {
        crate::transcript::secrets_in_config(config);
        let result = self.0.open(config).await?;
        if let Err(e) = &result {
            crate::transcript::record("open", &format!("{e:?} {}", e.message));
        }
        Ok(result)
    }

    /// `sink.put(events)`.
    pub async fn put(&mut self, sink: SinkHandle, events: &[Event]) -> Result<PutReport> {
        let report = self.0.put(sink, events).await?;
        crate::transcript::record("put", &format!("{report:?}"));
        Ok(report)
    }

    /// `sink.put-packed(events)`, in the core's terms.
    pub async fn put_packed(
        &mut self,
        sink: SinkHandle,
        events: &PackedEvents,
    ) -> Result<kinesis_output::PutReport> {
        let report = self.0.put_packed(sink, events).await?;
        crate::transcript::record("put-packed", &format!("{report:?}"));
        Ok(report)
    }

    /// Hear of each record stored during the next puts (the `stored` import).
    pub fn on_stored(&mut self, hook: Option<StoredHook>) {
        self.0.on_stored(hook);
    }

    pub async fn close(&mut self, sink: SinkHandle) -> Result<()> {
        self.0.close(sink).await
    }

    pub fn peak_memory(&self) -> usize {
        self.0.peak_memory()
    }

    pub fn refused(&self) -> Vec<String> {
        self.0.refused()
    }

    pub fn stderr(&self) -> String {
        self.0.stderr()
    }
}

/// The product's proxy runtime, one per test process; hand it [`InstanceOptions::build`].
pub fn proxy_runtime() -> &'static kinesis_ship::proxy::ProxyRuntime {
    static RUNTIME: OnceLock<kinesis_ship::proxy::ProxyRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        kinesis_ship::proxy::ProxyRuntime::load(&proxy_component_path()).unwrap_or_else(|e| panic!("{e:#}"))
    })
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
