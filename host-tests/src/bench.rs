//! Benchmark support: an upstream that answers every PutRecords at once, the native core on a
//! platform that does the same, workloads of Kubernetes-style records, a plain local HTTP sink
//! for end-to-end runs, and CPU and memory readings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kinesis_output::platform::{HttpRequest, HttpResponse, Platform, TransportError};
use kinesis_output::Environment;
use serde_json::json;

/// Answers each PutRecords request with success for every record, checking nothing beyond
/// counting them, so that a benchmark measures the client.
#[derive(Default)]
pub struct InstantKinesis {
    responses: Mutex<HashMap<usize, Arc<Vec<u8>>>>,
    pub largest_request: AtomicUsize,
    pub records: AtomicU64,
    pub requests: AtomicU64,
}

impl InstantKinesis {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The success response to a PutRecords `body`.
    pub fn answer(&self, body: &[u8]) -> Vec<u8> {
        // Each record is one `{…}` inside the outer object; base64 has no braces and benchmark
        // keys have none either.
        let n = body.iter().filter(|b| **b == b'{').count().saturating_sub(1);
        self.largest_request.fetch_max(body.len(), Ordering::Relaxed);
        self.records.fetch_add(n as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let cached = self
            .responses
            .lock()
            .expect("not poisoned")
            .entry(n)
            .or_insert_with(|| Arc::new(success_response(n)))
            .clone();
        cached.as_ref().clone()
    }
}

/// `{"FailedRecordCount":0,"Records":[…n successes…]}`.
pub fn success_response(n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(40 + n * 110);
    out.push_str(r#"{"FailedRecordCount":0,"Records":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"SequenceNumber":"49590338271490256608559692538361571095921575989136588{i:06}","ShardId":"shardId-000000000000"}}"#
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The core natively, with an [`InstantKinesis`] behind `send_all` and a fast seeded random
/// source (the component uses `wasi:random`).
pub struct NativePlatform {
    pub upstream: Arc<InstantKinesis>,
    rng: u64,
    started: Instant,
}

impl NativePlatform {
    pub fn new(upstream: Arc<InstantKinesis>) -> Self {
        NativePlatform {
            upstream,
            rng: 0x9E37_79B9_7F4A_7C15,
            started: Instant::now(),
        }
    }
}

impl Environment for NativePlatform {
    fn var(&mut self, _name: &str) -> Option<String> {
        None
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("{path}: no files in the benchmark"))
    }
}

impl Platform for NativePlatform {
    fn wall_clock(&mut self) -> SystemTime {
        SystemTime::now()
    }
    fn monotonic(&mut self) -> Duration {
        self.started.elapsed()
    }
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration)
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            // xorshift64*
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let v = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn run_process(&mut self, _command: &str) -> Result<String, String> {
        Err("no processes in the benchmark".to_string())
    }
    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        requests
            .iter()
            .map(|r| {
                Ok(HttpResponse {
                    status: 200,
                    body: self.upstream.answer(&r.body),
                })
            })
            .collect()
    }
}

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Approximate bytes of each JSON record.
    pub size: usize,
    /// Key by the record's `pod` field (else a random key per record).
    pub partition_key: bool,
    /// gzip each record.
    pub gzip: bool,
    /// zstd each record (instead).
    pub zstd: bool,
    pub records: usize,
}

impl Workload {
    /// Each record compressed.
    pub fn compressed(&self) -> bool {
        self.gzip || self.zstd
    }

    pub fn name(&self) -> String {
        let size = if self.size >= 1024 {
            format!("{} KiB", self.size / 1024)
        } else {
            format!("{} B", self.size)
        };
        format!(
            "{size}, {}, {}",
            if self.zstd {
                "zstd"
            } else if self.gzip {
                "gzip"
            } else {
                "json"
            },
            if self.partition_key {
                "key field"
            } else {
                "random key"
            }
        )
    }

    /// The component's configuration for this workload.
    pub fn config(&self, endpoint: &str, concurrency: usize) -> serde_json::Value {
        let mut cfg = json!({
            "stream_name": "bench",
            "region": "us-east-1",
            "endpoint": endpoint,
            "aws_key_id": "AKIDBENCHMARK",
            "aws_sec_key": "bench-secret",
            "max_concurrent_requests": concurrency,
        });
        if self.partition_key {
            cfg["partition_key"] = json!("pod");
        }
        if self.zstd {
            cfg["compression"] = json!("zstd");
        } else if self.gzip {
            cfg["compression"] = json!("gzip");
        }
        cfg
    }
}

/// Kubernetes-style JSON log records of about `size` bytes each, deterministic, compact.
pub fn records(size: usize, n: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "GET",
        "/api/v1/orders",
        "200",
        "latency_ms=12",
        "user=4711",
        "cache=miss",
        "upstream=catalog",
        "trace_id=7f3a9c",
        "retry=0",
        "POST",
        "/healthz",
        "WARN",
        "connection",
        "reset",
        "by",
        "peer",
    ];
    (0..n)
        .map(|i| {
            let mut record = json!({
                "log": "",
                "stream": if i % 5 == 0 { "stderr" } else { "stdout" },
                "time": format!("2026-11-01T12:{:02}:{:02}.{:09}Z", (i / 60) % 60, i % 60, i * 7919 % 1_000_000_000),
                "pod": format!("web-7d9f8c6b5-{:05}", i % 50),
                "kubernetes": {"namespace_name": "shop", "container_name": "app", "labels": {"app": "web"}},
            });
            let base = record.to_string().len();
            let mut log = String::new();
            let mut w = i;
            while base + log.len() < size {
                log.push_str(WORDS[w % WORDS.len()]);
                log.push(' ');
                w = w.wrapping_mul(31).wrapping_add(7);
            }
            log.truncate(size.saturating_sub(base).max(1));
            record["log"] = json!(log);
            serde_json::to_vec(&record).expect("serialises")
        })
        .collect()
}

/// CPU time (user + system) of this process (all threads), or of its waited-for children.
pub fn cpu_time(children: bool) -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let who = if children {
        UsageWho::RUSAGE_CHILDREN
    } else {
        UsageWho::RUSAGE_SELF
    };
    let usage = getrusage(who).expect("getrusage works on Linux");
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

/// The process's resident set, current and peak, in KiB (from `/proc/self/status`).
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The median of `values` (sorted here).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A plain local HTTP sink for end-to-end runs: parses each PutRecords body and answers success.
pub mod sink {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::{http1, http2};
    use tokio::net::TcpListener;
    use wasmtime_wasi_http::io::TokioIo;

    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "StreamName")]
        _stream: String,
        #[serde(rename = "Records")]
        records: Vec<Record>,
    }

    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "Data")]
        data: String,
        #[serde(rename = "PartitionKey")]
        _key: String,
    }

    /// Runs HTTP/2 connection tasks on tokio.
    #[derive(Clone, Copy)]
    struct TokioExecutor;

    impl<F> hyper::rt::Executor<F> for TokioExecutor
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        fn execute(&self, future: F) {
            tokio::spawn(future);
        }
    }

    /// Counts of what the sink received.
    #[derive(Default)]
    pub struct Received {
        pub records: AtomicU64,
        pub data_bytes: AtomicU64,
        pub requests: AtomicU64,
    }

    /// Serve on 127.0.0.1 (a free port) until the runtime stops; returns the address.
    pub async fn start(received: Arc<Received>) -> std::io::Result<std::net::SocketAddr> {
        start_with(received, None).await
    }

    /// [`start`] over TLS with `tls` (HTTP/1.1), as Fluent Bit's native `kinesis_streams`
    /// output insists on TLS.
    pub async fn start_tls(
        received: Arc<Received>,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<std::net::SocketAddr> {
        start_with(received, Some(tls)).await
    }

    async fn start_with(
        received: Arc<Received>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<std::net::SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let responses: Arc<Mutex<HashMap<usize, Bytes>>> = Arc::default();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let received = received.clone();
                let responses = responses.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let received = received.clone();
                            let responses = responses.clone();
                            async move {
                                let body = req.into_body().collect().await?.to_bytes();
                                let (status, answer) = match serde_json::from_slice::<Body>(&body) {
                                    Ok(parsed) => {
                                        let n = parsed.records.len();
                                        received.records.fetch_add(n as u64, Ordering::Relaxed);
                                        received.requests.fetch_add(1, Ordering::Relaxed);
                                        let data: usize =
                                            parsed.records.iter().map(|r| r.data.len() / 4 * 3).sum();
                                        received.data_bytes.fetch_add(data as u64, Ordering::Relaxed);
                                        let answer = responses
                                            .lock()
                                            .expect("not poisoned")
                                            .entry(n)
                                            .or_insert_with(|| Bytes::from(success_response(n)))
                                            .clone();
                                        (200, answer)
                                    }
                                    Err(e) => (400, Bytes::from(format!("{{\"message\":\"{e}\"}}"))),
                                };
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/x-amz-json-1.1")
                                        .body(Full::new(answer))
                                        .expect("a valid response"),
                                )
                            }
                        });
                    if let Some(config) = tls {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(client).await else {
                            return;
                        };
                        let served = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            eprintln!("bench sink: connection: {e:?}");
                        }
                        return;
                    }
                    // The JS SDK's Kinesis client speaks HTTP/2 (prior knowledge over http://);
                    // kinesis-ship HTTP/1.1.
                    let mut preface = [0u8; 4];
                    let h2 = matches!(client.peek(&mut preface).await, Ok(4) if &preface == b"PRI ");
                    let served = if h2 {
                        http2::Builder::new(TokioExecutor)
                            .serve_connection(TokioIo::new(client), service)
                            .await
                    } else {
                        http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(client), service)
                            .await
                    };
                    if let Err(e) = served {
                        eprintln!("bench sink: connection: {e:?}");
                    }
                });
            }
        });
        Ok(addr)
    }
}
