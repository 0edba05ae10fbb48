//! The `proxy` world: a `wasi:http` incoming handler. `POST /` with records, answered once every
//! record sent has an outcome (see [`crate::front::reply`] for the statuses); `GET /health`.
//!
//! A body with records not yet stored is answered 503, and what was stored of it is remembered
//! so that the re-sent body ships only the rest: by the instance itself (keyed by the body, its
//! tag, type and sender) where the host keeps instances between requests (jco), or by a host
//! that remembers bodies itself and hands over their entry (`kinesis-ship serve`, through the
//! [`LEDGER_HEADER`]).

use std::cell::RefCell;

use super::bindings;
use super::{write_all, Wasi};
use crate::config::{env as envconfig, ConfigError, FrontSettings, Settings};
use crate::delivery::Sink;
use crate::front::body::{self, BodyError, Item};
use crate::front::ledger::{key_of, Attempt, Entry, Key, Ledger, Rule, Verdict, LEDGER_HEADER};
use crate::front::reply::{self, Detail, Reply};
use crate::front::time::arrival;
use crate::kinesis::Event;
use crate::platform::{Environment, Platform};
use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::StreamError;

struct Component;

/// The configuration, read once, and the sink opened with it.
struct Opened {
    sink: Sink,
    front: FrontSettings,
    rule: Rule,
}

/// Bodies this instance remembers at most, and the bytes they may take.
const MEMORY_CAPACITY: usize = 10_000;
const MEMORY_BYTES: usize = 8 << 20;

thread_local! {
    /// Opened at the first request and kept while the host keeps this instance (hosts that
    /// reuse instances then reuse its credentials); `wasmtime serve` starts each request afresh.
    /// A configuration error is not kept: the next request reads the configuration again (a
    /// secret file may have appeared meanwhile).
    static OPENED: RefCell<Option<Opened>> = const { RefCell::new(None) };
    /// What this instance remembers of bodies with records not yet stored.
    static MEMORY: RefCell<Option<Ledger>> = const { RefCell::new(None) };
}

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut reply = serve(&request);
        if matches!(request.method(), Method::Head) {
            reply.body.clear();
        }
        respond(response_out, reply);
    }
}

/// The environment, read once per request.
struct Snapshot(Vec<(String, String)>);

impl Environment for Snapshot {
    fn var(&mut self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Wasi.read_file(path)
    }
}

fn serve(request: &IncomingRequest) -> Reply {
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
    let path = path_and_query.split('?').next().unwrap_or("/");
    let method = request.method();
    match path {
        "/health" | "/healthz" => match method {
            Method::Get | Method::Head => health(),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/" => match method {
            Method::Post => ingest(request, query_asks_all_problems(&path_and_query)),
            _ => method_not_allowed("POST"),
        },
        _ => Reply::json(
            404,
            &serde_json::json!({ "error": format!("no such path {path:?}: POST records to /, GET /health") }),
        ),
    }
}

fn method_not_allowed(allow: &str) -> Reply {
    Reply::json(
        405,
        &serde_json::json!({ "error": format!("method not allowed here; use {allow}") }),
    )
    .with_header("allow", allow)
}

/// Read the configuration from the environment (with the proxy's defaults) and open the sink.
fn open() -> Result<Opened, ConfigError> {
    let mut env = Snapshot(bindings::wasi::cli::environment::get_environment());
    let text = envconfig::from_env(&mut env)?.ok_or_else(|| {
        ConfigError::new(
            envconfig::CONFIG_VAR,
            "no configuration: set KINESIS_OUTPUT_CONFIG (JSON), KINESIS_OUTPUT_CONFIG_FILE, or one KINESIS_OUTPUT_<SETTING> variable per setting",
        )
    })?;
    let settings = Settings::for_proxy(&text, &mut env)?;
    let rule = Rule {
        bound: settings.buffer.retry,
        drop_failed: settings.sink.drop_failed_records,
    };
    let sink = Sink::new_resolved(settings.sink, &mut env)?;
    Ok(Opened {
        sink,
        front: settings.front,
        rule,
    })
}

/// Run `f` with this instance's sink and settings, opening them at the first call.
fn with_opened<T>(f: impl FnOnce(&mut Opened) -> T) -> Result<T, ConfigError> {
    OPENED.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(open()?);
        }
        Ok(f(slot.as_mut().expect("opened above")))
    })
}

fn health() -> Reply {
    match with_opened(|opened| opened.sink.credential_source()) {
        Ok(source) => Reply::json(
            200,
            &serde_json::json!({ "status": "ok", "credential_source": source }),
        ),
        Err(e) => reply::config_error_reply(&e).with_status(503),
    }
}

fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// `?problems=all`: every problem in the answer.
fn query_asks_all_problems(path_and_query: &str) -> bool {
    path_and_query
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p == "problems=all"))
}

/// The identity of a body for this instance's memory: its sender, tag, type and records.
fn body_key(request: &IncomingRequest, tag: &str, body: &[u8]) -> Key {
    let sender = header(request, "authorization").unwrap_or_default();
    let content_type = header(request, "content-type").unwrap_or_default();
    key_of(&[sender.as_bytes(), tag.as_bytes(), content_type.as_bytes(), body])
}

fn ingest(request: &IncomingRequest, all_problems: bool) -> Reply {
    // A host that remembers bodies itself hands over the body's entry (empty: not seen before).
    let hosted = header(request, LEDGER_HEADER);
    let answered = with_opened(|opened| match take_records(request, &opened.front) {
        Ok((body, items, tag)) => {
            let wall = Wasi.wall_clock();
            let now = wall
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut key = None;
            let previous = match &hosted {
                Some(text) if text.trim().is_empty() => None,
                Some(text) => Entry::parse(text)
                    .map_err(|e| {
                        eprintln_bounded(&format!("{LEDGER_HEADER}: {e}; the body is shipped as new"))
                    })
                    .ok(),
                // The instance's own memory, looked into only when it holds something.
                None => MEMORY.with(|m| {
                    let m = m.borrow();
                    let ledger = m.as_ref().filter(|l| !l.is_empty())?;
                    let k = *key.insert(body_key(request, &tag, &body));
                    ledger.get(&k).cloned()
                }),
            };
            let mut attempt = Attempt::begin(previous, items.len() as u32, now);
            let places = attempt.to_send();
            let arrived = arrival(wall);
            let events: Vec<Event<'_>> = places
                .iter()
                .map(|&p| {
                    let item = &items[p as usize];
                    let (seconds, nanoseconds) = item.time.unwrap_or(arrived);
                    Event {
                        tag: &tag,
                        seconds,
                        nanoseconds,
                        record: &body[item.start..item.end],
                    }
                })
                .collect();
            let report = opened.sink.put(&events, &mut Wasi);
            let line_of = |i: usize| format!("line {} of the body", items[places[i] as usize].line);
            if let Some(warning) = crate::front::report::key_cut_warning(&report, line_of) {
                eprintln_bounded(&warning);
            }
            let settlement = attempt.settle(&places, report.outcomes, &opened.rule, now);
            if hosted.is_none() {
                MEMORY.with(|m| {
                    let mut m = m.borrow_mut();
                    let ledger = m.get_or_insert_with(|| Ledger::new(MEMORY_CAPACITY, MEMORY_BYTES));
                    if settlement.verdict == Verdict::Retry {
                        let k = *key.get_or_insert_with(|| body_key(request, &tag, &body));
                        ledger.put(k, attempt.entry.clone());
                    } else if let Some(k) = &key {
                        ledger.remove(k);
                    }
                });
            }
            let detail = Detail {
                all_problems: all_problems || hosted.is_some(),
                ledger: hosted.is_some(),
            };
            reply::settled_reply(&items, &settlement, &attempt.entry, &report.counters, detail)
        }
        Err(e) => reply::body_error_reply(&e),
    });
    let reply = match answered {
        Ok(reply) => reply,
        Err(e) => {
            eprintln_bounded(&format!("configuration: {e}"));
            return reply::config_error_reply(&e);
        }
    };
    // A host that remembers bodies logs the answer's problems itself.
    if reply.status != 200 && hosted.is_none() {
        eprintln_bounded(&format!(
            "POST / answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).trim_end()
        ));
    }
    reply
}

/// The longest line the component writes to stderr, in characters: a host's pipe may be small
/// (and a full one must never trap the component).
const LOG_LINE_CHARS: usize = 2000;

/// One line on stderr, cut to [`LOG_LINE_CHARS`]; a write that fails is let go.
fn eprintln_bounded(message: &str) {
    use std::io::Write as _;
    let line: String = match message.char_indices().nth(LOG_LINE_CHARS) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &message[..at], message.len()),
        None => message.to_string(),
    };
    let _ = writeln!(std::io::stderr(), "kinesis-output: {line}");
}

/// Read, decode and split the body; the tag from its header.
fn take_records(
    request: &IncomingRequest,
    settings: &FrontSettings,
) -> Result<(Vec<u8>, Vec<Item>, String), BodyError> {
    let framing = body::framing(header(request, "content-type").as_deref())?;
    let encoding = header(request, "content-encoding");
    let tag = header(request, &settings.tag_header).unwrap_or_else(|| settings.default_tag.clone());
    let raw = read_body(request, settings.max_body_size)?;
    let decoded = body::decode(encoding.as_deref(), raw, settings.max_body_size)?;
    let items = body::split(framing, &decoded, settings)?;
    Ok((decoded, items, tag))
}

/// The request body, refused with 413 once it passes `max` bytes.
fn read_body(request: &IncomingRequest, max: usize) -> Result<Vec<u8>, BodyError> {
    let unreadable = |why: &str| BodyError {
        status: 400,
        message: format!("the request body could not be read: {why}"),
        line: None,
    };
    let body = request.consume().map_err(|_| unreadable("already taken"))?;
    let stream = body.stream().map_err(|_| unreadable("no stream"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(256 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > max {
                    return Err(BodyError {
                        status: 413,
                        message: format!("the body exceeds {max} bytes"),
                        line: None,
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(unreadable(&e.to_debug_string())),
        }
    }
    Ok(bytes)
}

fn respond(response_out: ResponseOutparam, reply: Reply) {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    headers.push((
        "content-length".to_string(),
        reply.body.len().to_string().into_bytes(),
    ));
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = body.write() {
        if let Err(e) = write_all(&stream, &reply.body, None) {
            eprintln_bounded(&format!("writing the answer: {}", e.message));
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

bindings::export!(Component with_types_in bindings);
