//! `kinesis-ship serve`: host the `proxy` world over HTTP, for users without a wasmtime CLI. One
//! fresh instance per request, as `wasmtime serve` does.
//!
//! Beside the component's own routes it answers `GET /metrics` (Prometheus text, see
//! [`crate::metrics`]). With `--tls-cert`/`--tls-key` it speaks https; with
//! `--auth-token-file`/`--basic-auth-file` it asks who sends (see [`crate::listener_auth`]).
//! On SIGTERM or SIGINT it stops accepting, lets every request already read finish and be
//! answered (each within the configuration's `put_deadline`), closes idle connections, and
//! returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use wasmtime_wasi_http::io::TokioIo;

use crate::engine::proxy_component_path;
use crate::listener_auth::{check_exposure, is_loopback, ListenerAuth};
use crate::log::{self, Level};
use crate::metrics::Metrics;
use crate::proxy::{ProxyBody, ProxyRuntime};
use crate::room::Room;
use crate::setup::{egress_policy, proxy_document, proxy_env, proxy_settings, read_config, Sandbox};
use crate::ship::usage;
use kinesis_output::config::env as envconfig;

/// What `kinesis-ship serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub sandbox: Sandbox,
    /// Requests read or shipped at once (`--max-requests`).
    pub max_requests: usize,
    /// Who may send (`--auth-token-file`, `--basic-auth-file`).
    pub auth: Arc<ListenerAuth>,
    /// The listener's TLS (`--tls-cert`, `--tls-key`), and whether it asks clients for
    /// certificates (`--tls-client-ca`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub client_certificates: bool,
    /// `--insecure-no-auth`: listen beyond loopback without authentication.
    pub insecure_no_auth: bool,
    /// `--allow-stream`: the only streams records may be routed to (empty: any).
    pub allow_streams: Vec<String>,
}

/// How a serve run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The signal that stopped it.
    pub signal: &'static str,
    /// Connections still open when the wait for them ran out (0: every request answered).
    pub abandoned: usize,
}

/// What every connection shares.
struct Shared {
    runtime: ProxyRuntime,
    options: crate::sink::InstanceOptions,
    room: Room,
    metrics: Arc<Metrics>,
    auth: Arc<ListenerAuth>,
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time beyond `put_deadline` for a request's last answer to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Listen and serve until SIGTERM or SIGINT. `ready` gets the bound address.
pub async fn serve(opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<Stopped> {
    check_exposure(
        opts.listen,
        opts.auth.required() || opts.client_certificates,
        opts.insecure_no_auth,
    )
    .map_err(usage)?;
    let config = match &opts.config {
        Some(path) => Some(read_config(path).map_err(usage)?),
        None => None,
    };
    let path = opts.component.clone().unwrap_or_else(proxy_component_path);
    let runtime = ProxyRuntime::load(&path).map_err(usage)?;
    let mut env = proxy_env(config.as_ref());
    // Options that are settings go as the settings' own variables, which the proxy world reads
    // over the file: `--secrets-dir` as `secrets_dir`, `--allow-stream` as `allowed_streams`.
    let mut set = |setting: &str, value: String| {
        let variable = envconfig::variable_name(setting);
        env.retain(|(k, _)| *k != variable);
        env.push((variable, value));
    };
    if let Some(dir) = &opts.sandbox.secrets_dir {
        set("secrets_dir", dir.to_string_lossy().into_owned());
    }
    if !opts.allow_streams.is_empty() {
        set(
            "allowed_streams",
            serde_json::json!(opts.allow_streams).to_string(),
        );
    }
    // The document the component will read (the file and the variables merged), read natively
    // as it reads it: the folders it needs, the egress policy, the buffer limit and the
    // deadline. (One that does not parse reaches nothing; the component answers its error.)
    let document = proxy_document(&env);
    let settings = document.as_deref().and_then(|d| proxy_settings(d, &env));
    let egress = egress_policy(settings.as_ref().map(|s| &s.sink), &env);
    let put_deadline = settings
        .as_ref()
        .map_or(kinesis_output::config::front::PROXY_PUT_DEADLINE, |s| {
            s.sink.put_deadline
        });
    let room = Room::new(&settings.map(|s| s.buffer).unwrap_or_default(), opts.max_requests);
    let granted = document
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        .unwrap_or_else(|| Value::Object(Default::default()));
    let metrics = Arc::new(Metrics::default());
    let mut options = opts.sandbox.options(env, &granted, egress);
    opts.sandbox.network(&mut options).map_err(usage)?;
    // Text logs let the component write to stderr as it goes; JSON logs wrap its lines.
    options.inherit_stderr = !log::json();
    options.metrics = Some(metrics.clone());
    // What the service stored is kept per request, so that a trap is answered without a
    // re-send that would duplicate it.
    options.track_accepted = true;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))
        .map_err(usage)?;
    ready(listener.local_addr().map_err(|e| anyhow!("{e}"))?);
    let shared = Arc::new(Shared {
        runtime,
        options,
        room,
        metrics,
        auth: opts.auth.clone(),
    });
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let (shared, stopping) = (shared.clone(), stopping.clone());
                    match acceptor.clone() {
                        None => connections.spawn(connection(shared, client, peer, stopping)),
                        Some(acceptor) => connections.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client)).await {
                                Ok(Ok(tls)) => connection(shared, tls, peer, stopping).await,
                                Ok(Err(e)) => log::line(Level::Warn, "kinesis-ship serve", &format!("TLS handshake with {peer}: {e}")),
                                Err(_) => log::line(Level::Warn, "kinesis-ship serve", &format!("TLS handshake with {peer}: no handshake within {HANDSHAKE_TIMEOUT:?}")),
                            }
                        }),
                    };
                }
                // Out of file descriptors and the like: wait, and accept again.
                Err(e) => {
                    log::line(Level::Error, "kinesis-ship serve", &format!("accepting: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
        }
    };
    // Stop accepting; answer what was read; close idle connections.
    drop(listener);
    let _ = stop.send(true);
    let wait = put_deadline + SHUTDOWN_GRACE;
    log::line(
        Level::Info,
        "kinesis-ship serve",
        &format!(
            "{signal}: no longer accepting; answering {} requests in flight (waiting up to {wait:?})",
            shared.metrics.requests_in_flight()
        ),
    );
    let drained =
        tokio::time::timeout(wait, async { while connections.join_next().await.is_some() {} }).await;
    let abandoned = if drained.is_ok() { 0 } else { connections.len() };
    connections.abort_all();
    log::line(
        if abandoned == 0 { Level::Info } else { Level::Error },
        "kinesis-ship serve",
        &if abandoned == 0 {
            "stopped: every request answered".to_string()
        } else {
            format!("stopped with {abandoned} connections still busy past {wait:?}")
        },
    );
    Ok(Stopped { signal, abandoned })
}

/// Serve one connection until it closes, or until shutdown lets its request in progress end.
async fn connection<Io>(
    shared: Arc<Shared>,
    client: Io,
    peer: SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { handle(&shared, req, peer).await }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(client), service);
    tokio::pin!(conn);
    let mut asked = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    log::line(Level::Warn, "kinesis-ship serve", &format!("connection: {e}"));
                }
                return;
            }
            changed = stopping.changed(), if !asked => {
                // Finish the request being served (if any), then close.
                asked = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answer one request: credentials checked, `/metrics` here, everything else through the room
/// and the component, counting what its answer reports.
async fn handle(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Result<hyper::Response<ProxyBody>> {
    let reading = matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
    let open_route = reading && matches!(req.uri().path(), "/health" | "/metrics");
    if shared.auth.required()
        && !(open_route && is_loopback(peer.ip()))
        && !shared.auth.accepts(
            req.headers()
                .get(hyper::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    {
        // Nothing of what was presented is logged or kept.
        let mut answer = crate::room::answer(401, "missing or wrong credentials", false);
        for challenge in shared.auth.challenges() {
            answer.headers_mut().append(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static(challenge),
            );
        }
        shared.metrics.answered(401, b"");
        return Ok(answer);
    }
    if req.uri().path() == "/metrics" && reading {
        return Ok(hyper::Response::builder()
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(full(shared.metrics.render()))
            .expect("a valid response"));
    }
    let response = match shared.room.admit(req).await {
        // The room is held until the component has answered.
        Ok(admitted) => {
            let _shipping = shared.metrics.in_flight();
            shared.runtime.handle(&shared.options, admitted.request).await?
        }
        Err(answer) => answer,
    };
    // The component's answer is small (counts, and a line per record not delivered): read it
    // whole to count it, and send it on.
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| anyhow!("the component's answer broke off: {e:?}"))?
        .to_bytes();
    shared.metrics.answered(parts.status.as_u16(), &body);
    Ok(hyper::Response::from_parts(parts, full(body)))
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
