//! `kinesis-ship serve`: host the `proxy` world over HTTP, for users without a wasmtime CLI. One
//! fresh instance per request, as `wasmtime serve` does.
//!
//! Beside the component's own routes it answers `GET /metrics` (Prometheus text, see
//! [`crate::metrics`]). With `--tls-cert`/`--tls-key` it speaks https; with
//! `--auth-token-file`/`--basic-auth-file` it asks who sends (see [`crate::listener_auth`]).
//! On SIGTERM or SIGINT it stops accepting, lets every request already read finish and be
//! answered (each within the configuration's `put_deadline`), closes idle connections, and
//! returns.
//!
//! ## The delivery rule over HTTP
//! Serve remembers each body with records not yet stored (keyed by the sender's credentials,
//! the tag, the content type and encoding, and the body's bytes; in memory, and on disk with
//! `--state-dir`) and hands its entry to the proxy world with every re-post, which then ships
//! only the records not settled (`front::ledger`). A re-post that arrives while the same body
//! is being shipped waits for it. Agents get the proxy world's answer cut to a few problems
//! (Fluent Bit reads at most 4 KB); the whole list goes to serve's log.
//!
//! ## Slow and idle clients
//! A request head must arrive within `--header-timeout` ([`HEADER_TIMEOUT`] by default; it also
//! closes keep-alive connections idle that long), a body within the room's `BODY_READ_TIMEOUT`, and at most
//! `--max-connections` are open at once (the others wait in the listen queue).

use std::collections::HashMap;
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

use crate::engine::{proxy_component, ComponentSource};
use crate::listener_auth::{check_exposure, is_loopback, ListenerAuth};
use crate::log::{self, Level};
use crate::memory::{key_of, now, Memory};
use crate::metrics::Metrics;
use crate::proxy::{ProxyBody, ProxyRuntime};
use crate::recovery::split_stored;
use crate::room::{Admitted, Room};
use crate::setup::{egress_policy, proxy_document, proxy_env, proxy_settings, read_config, Sandbox};
use crate::ship::usage;
use kinesis_output::config::env as envconfig;
use kinesis_output::config::Settings;
use kinesis_output::front::body as front_body;
use kinesis_output::front::ledger::{Attempt, Entry, Key, Rule, DEFAULT_CAPACITY, LEDGER_HEADER};
use kinesis_output::front::reply;

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
    /// `--state-dir`: bodies with records not yet stored are remembered here across restarts.
    pub state_dir: Option<PathBuf>,
    /// `--max-connections`: connections open at once.
    pub max_connections: usize,
    /// `--header-timeout`: the longest a request head may take, and a keep-alive connection
    /// may stay idle.
    pub header_timeout: Duration,
}

/// Connections open at once when `--max-connections` is not given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request head, and a keep-alive connection may stay
/// idle, when `--header-timeout` is not given.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer a body's shipping came to, for a re-post that waited for it.
#[derive(Clone)]
struct Finished {
    head: hyper::http::response::Parts,
    body: Bytes,
}

/// Problems of one answer written to serve's log, one a line.
const PROBLEMS_LOGGED: usize = 20;

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
    /// What is remembered of bodies not finished.
    memory: Memory,
    /// One turn a body: a re-post waits while the same body is being shipped.
    turns: std::sync::Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Option<Finished>>>>>,
    /// The proxy world's settings read natively (`None`: they do not parse; the component
    /// answers the error): the tag header, and trap recovery.
    settings: Option<Settings>,
    header_timeout: Duration,
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
    let source = opts
        .component
        .clone()
        .map(ComponentSource::File)
        .unwrap_or_else(proxy_component);
    let runtime = ProxyRuntime::load_from(&source).map_err(usage)?;
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
    if let Some(s) = &settings {
        log::line(
            Level::Info,
            "kinesis-ship serve",
            &crate::setup::endpoint_line(&s.sink),
        );
    }
    let put_deadline = settings
        .as_ref()
        .map_or(kinesis_output::config::front::PROXY_PUT_DEADLINE, |s| {
            s.sink.put_deadline
        });
    let max_body = settings.as_ref().map_or(
        kinesis_output::config::FrontSettings::default().max_body_size,
        |s| s.front.max_body_size,
    );
    let room = Room::new(
        &settings.as_ref().map(|s| s.buffer.clone()).unwrap_or_default(),
        opts.max_requests,
        max_body,
    );
    let memory = Memory::open(
        opts.state_dir.as_deref(),
        DEFAULT_CAPACITY,
        Box::new(|m| log::line(Level::Warn, "kinesis-ship serve", m)),
    )
    .map_err(|e| usage(anyhow!("--state-dir: {e:#}")))?;
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
        memory,
        turns: std::sync::Mutex::new(HashMap::new()),
        settings,
        header_timeout: opts.header_timeout,
    });
    let connection_slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let signal = loop {
        // A connection is accepted only with a slot free: the others wait in the listen queue.
        let slot = tokio::select! {
            slot = connection_slots.clone().acquire_owned() => slot.expect("never closed"),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let (shared, stopping) = (shared.clone(), stopping.clone());
                    match acceptor.clone() {
                        None => connections.spawn(async move {
                            connection(shared, client, peer, Vec::new(), stopping).await;
                            drop(slot);
                        }),
                        Some(acceptor) => connections.spawn(async move {
                            let _slot = slot;
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client)).await {
                                Ok(Ok(tls)) => {
                                    // A client certificate is who the sender is, for the body's
                                    // memory.
                                    let identity = tls
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .map(|c| c.as_ref().to_vec())
                                        .unwrap_or_default();
                                    connection(shared, tls, peer, identity, stopping).await
                                }
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
    let drained = tokio::time::timeout(wait, async {
        while connections.join_next().await.is_some() {}
        // Requests whose client went away are still shipped by their own tasks.
        while shared.metrics.requests_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
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
/// `certificate`: the client's certificate (mutual TLS), empty without one.
async fn connection<Io>(
    shared: Arc<Shared>,
    client: Io,
    peer: SocketAddr,
    certificate: Vec<u8>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let certificate = Arc::new(certificate);
    let header_timeout = shared.header_timeout;
    let service = hyper::service::service_fn(move |req| {
        let (shared, certificate) = (shared.clone(), certificate.clone());
        async move { handle(shared, req, peer, &certificate).await }
    });
    // Without a timer hyper enforces no header timeout: a client that sends half a head would
    // hold its connection forever.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer)
        .header_read_timeout(header_timeout)
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
    shared: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    certificate: &[u8],
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
            // Shipped by a task of its own: a client that goes away does not stop it half-way
            // (the component's instance would go on, without the room, the turn or the memory
            // of what it stored).
            let (shared, certificate) = (shared.clone(), certificate.to_vec());
            return tokio::spawn(async move {
                let _shipping = shared.metrics.in_flight();
                ship(&shared, admitted, &certificate).await
            })
            .await
            .map_err(|e| anyhow!("shipping the request failed: {e}"))?;
        }
        Err(answer) => answer,
    };
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| anyhow!("the answer broke off: {e:?}"))?
        .to_bytes();
    shared.metrics.answered(parts.status.as_u16(), &body);
    Ok(hyper::Response::from_parts(parts, full(body)))
}

/// Ship an admitted request through a fresh instance, with what is remembered of its body, and
/// answer the agent with what it needs (see the module documentation).
async fn ship(shared: &Shared, admitted: Admitted, certificate: &[u8]) -> Result<hyper::Response<ProxyBody>> {
    let mut parts = admitted.parts.clone();
    let body = admitted.body.clone();
    // Only serve speaks to the component of what is remembered.
    parts.headers.remove(LEDGER_HEADER);
    let records = parts.method == hyper::Method::POST && parts.uri.path() == "/";
    let header = |name: &str| parts.headers.get(name).map_or(&[][..], |v| v.as_bytes()).to_vec();
    let tag_header = shared
        .settings
        .as_ref()
        .map_or_else(|| "x-tag".to_string(), |s| s.front.tag_header.clone());
    let sender = if certificate.is_empty() {
        header("authorization")
    } else {
        certificate.to_vec()
    };
    let key = key_of(&[
        &sender,
        &header(&tag_header),
        &header("content-type"),
        &header("content-encoding"),
        &body,
    ]);
    // One turn a body: a re-post arriving while it is shipped waits; it gets the same answer
    // when that one settled the body, else ships what is left.
    let turn = records.then(|| {
        shared
            .turns
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_default()
            .clone()
    });
    // However this ends (an error included), the turn is let go.
    let _release = Release {
        shared,
        turn: turn.clone(),
        key,
    };
    let mut turn_guard = match &turn {
        Some(t) => Some(t.lock().await),
        None => None,
    };
    if let Some(finished) = turn_guard.as_ref().and_then(|g| g.as_ref()).cloned() {
        return Ok(hyper::Response::from_parts(finished.head, full(finished.body)));
    }
    let entry = if records { shared.memory.recall(&key) } else { None };
    if records {
        let text = entry.as_ref().map(Entry::to_text).unwrap_or_default();
        parts.headers.insert(
            LEDGER_HEADER,
            hyper::header::HeaderValue::from_str(&text).expect("ASCII"),
        );
    }
    let request = hyper::Request::from_parts(parts.clone(), Full::new(body.clone()));
    let handled = shared.runtime.handle_traps(&shared.options, request).await?;
    let (mut head, answer) = handled.response.into_parts();
    let answer = answer
        .collect()
        .await
        .map_err(|e| anyhow!("the component's answer broke off: {e:?}"))?
        .to_bytes();
    let reply = match (records, handled.trap) {
        (true, Some(trap)) => after_trap(shared, &parts, &body, entry, &trap),
        _ => None,
    };
    let (status, answer) = match reply {
        Some(reply) => {
            head.status = hyper::StatusCode::from_u16(reply.status).expect("a status");
            head.headers.clear();
            for (k, v) in &reply.headers {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    hyper::header::HeaderValue::from_str(v),
                ) {
                    head.headers.insert(k, v);
                }
            }
            (reply.status, Bytes::from(reply.body))
        }
        None => (head.status.as_u16(), answer),
    };
    shared.metrics.answered(status, &answer);
    let answer = match serde_json::from_slice::<Value>(&answer) {
        Ok(Value::Object(mut fields)) if records => {
            let all_problems = parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "problems=all"));
            if let Some(text) = trim_for_agent_logging(&mut fields, status, all_problems) {
                match Entry::parse(&text) {
                    Ok(entry) if status == 503 => shared.memory.keep(&key, &entry),
                    Ok(_) => shared.memory.forget(&key),
                    Err(e) => log::line(
                        Level::Warn,
                        "kinesis-ship serve",
                        &format!("the component's ledger is not readable ({e}); the body is not remembered"),
                    ),
                }
            }
            let mut text = Value::Object(fields).to_string();
            text.push('\n');
            Bytes::from(text)
        }
        _ => answer,
    };
    head.headers.remove(hyper::header::CONTENT_LENGTH);
    if let Some(guard) = turn_guard.as_mut() {
        // A re-post waiting now gets this answer, unless records are still to be stored.
        if status != 503 {
            **guard = Some(Finished {
                head: head.clone(),
                body: answer.clone(),
            });
        }
    }
    drop(turn_guard);
    drop(admitted);
    Ok(hyper::Response::from_parts(head, full(answer)))
}

/// Lets go of a body's turn when dropped; the last one out removes it.
struct Release<'a> {
    shared: &'a Shared,
    turn: Option<Arc<tokio::sync::Mutex<Option<Finished>>>>,
    key: Key,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Some(turn) = self.turn.take() {
            let mut turns = self.shared.turns.lock().expect("not poisoned");
            // The map's, the caller's and this one: nobody else waits for the body.
            if Arc::strong_count(&turn) <= 3 {
                turns.remove(&self.key);
            }
        }
    }
}

/// Take the `ledger` out of the component's answer, log its problems (all of them, bounded)
/// and cut them for the agent unless it asked for all (`?problems=all`); the ledger's text, if
/// there was one.
fn trim_for_agent_logging(
    fields: &mut serde_json::Map<String, Value>,
    status: u16,
    all_problems: bool,
) -> Option<String> {
    if let Some(Value::Array(problems)) = fields.get("problems") {
        for p in problems.iter().take(PROBLEMS_LOGGED) {
            log::line(
                if p["outcome"] == "retrying" {
                    Level::Warn
                } else {
                    Level::Error
                },
                "kinesis-ship serve",
                &format!(
                    "answered {status}: line {}: {} {}: {}{}",
                    p["line"],
                    p["outcome"].as_str().unwrap_or_default(),
                    p["code"].as_str().unwrap_or_default(),
                    cut(p["message"].as_str().unwrap_or_default(), 300),
                    p.get("records")
                        .map_or(String::new(), |n| format!(" ({n} records)"))
                ),
            );
        }
        if problems.len() > PROBLEMS_LOGGED {
            log::line(
                Level::Error,
                "kinesis-ship serve",
                &format!(
                    "… and {} more problems in that answer",
                    problems.len() - PROBLEMS_LOGGED
                ),
            );
        }
    }
    if all_problems {
        return match fields.remove("ledger") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
    }
    reply::trim_for_agent(fields)
}

/// `text`, cut to `chars` characters.
fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The component trapped: which records of the body the service stored is told apart natively
/// (the body split and each record formatted as the component does), so that the agent's
/// re-post ships only the others (with aggregation records packed together cannot be told apart:
/// they count as not stored, at worst a second copy). `None` when serve cannot read the body or
/// its settings: the component's own trap answer (503) stands.
fn after_trap(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    entry: Option<Entry>,
    trap: &crate::proxy::Trapped,
) -> Option<reply::Reply> {
    let settings = shared.settings.as_ref()?;
    // Read as the component reads them (lossy UTF-8).
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let framing = front_body::framing(header("content-type").as_deref()).ok()?;
    let decoded = front_body::decode(
        header("content-encoding").as_deref(),
        body.to_vec(),
        settings.front.max_body_size,
    )
    .ok()?;
    let items = front_body::split(framing, &decoded, &settings.front).ok()?;
    let tag = header(&settings.front.tag_header).unwrap_or_else(|| settings.front.default_tag.clone());
    let rule = Rule {
        bound: settings.buffer.retry,
        drop_failed: settings.sink.drop_failed_records,
    };
    let mut attempt = Attempt::begin(entry, items.len() as u32, now());
    let open: Vec<u32> = attempt.to_send();
    // Records without a time of their own got the component's clock: they cannot be told apart
    // and count as not stored (at worst a second copy, never a loss).
    let candidates: Vec<(u32, (i64, u32), &[u8])> = open
        .iter()
        .filter(|_| !settings.sink.shape.aggregate)
        .filter_map(|&p| {
            let item = &items[p as usize];
            item.time.map(|t| (p, t, &decoded[item.start..item.end]))
        })
        .collect();
    let (stored, _) = split_stored(
        &settings.sink.shape,
        &tag,
        candidates,
        trap.accepted.clone(),
        |c| (c.1, c.2),
    );
    for (place, _, _) in stored {
        attempt.stored(place);
    }
    // The trap's first line names it; its backtrace is in the log once already.
    let message = trap.message.lines().next().unwrap_or_default();
    let settlement = attempt.trapped(message, &rule, now());
    let mut reply = reply::settled_reply(
        &items,
        &settlement,
        &attempt.entry,
        &Default::default(),
        reply::Detail {
            all_problems: true,
            ledger: true,
        },
    );
    reply.headers.retain(|(k, _)| k != "content-length");
    Some(reply)
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// hyper's timer on tokio (hyper enforces its header timeout only with one).
#[derive(Clone, Copy)]
struct TokioTimer;

/// A tokio sleep as hyper's `Sleep`.
struct TokioSleep(std::pin::Pin<Box<tokio::time::Sleep>>);

impl std::future::Future for TokioSleep {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

impl hyper::rt::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }
}
