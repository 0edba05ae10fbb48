//! The `proxy` world: a `wasi:http` incoming handler. `POST /` with records, answered once every
//! record has an outcome (see [`crate::front::reply`] for the statuses); `GET /health`.

use std::cell::RefCell;

use super::bindings;
use super::{write_all, Wasi};
use crate::config::{env as envconfig, ConfigError, FrontSettings, Settings};
use crate::delivery::Sink;
use crate::front::body::{self, BodyError, Item};
use crate::front::reply::{self, Reply};
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
}

thread_local! {
    /// Opened at the first request and kept while the host keeps this instance (hosts that
    /// reuse instances then reuse its credentials); `wasmtime serve` starts each request afresh.
    /// A configuration error is not kept: the next request reads the configuration again (a
    /// secret file may have appeared meanwhile).
    static OPENED: RefCell<Option<Opened>> = const { RefCell::new(None) };
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
            Method::Post => ingest(request),
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
    let sink = Sink::new_resolved(settings.sink, &mut env)?;
    Ok(Opened {
        sink,
        front: settings.front,
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

fn ingest(request: &IncomingRequest) -> Reply {
    let answered = with_opened(|opened| match take_records(request, &opened.front) {
        Ok((body, items, tag)) => {
            let now = arrival(Wasi.wall_clock());
            let events: Vec<Event<'_>> = items
                .iter()
                .map(|item| {
                    let (seconds, nanoseconds) = item.time.unwrap_or(now);
                    Event {
                        tag: &tag,
                        seconds,
                        nanoseconds,
                        record: &body[item.start..item.end],
                    }
                })
                .collect();
            let report = opened.sink.put(&events, &mut Wasi);
            reply::outcome_reply(&items, &report.outcomes, &report.counters)
        }
        Err(e) => reply::body_error_reply(&e),
    });
    let reply = match answered {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("kinesis-output: configuration: {e}");
            return reply::config_error_reply(&e);
        }
    };
    if reply.status != 200 {
        eprintln!(
            "kinesis-output: POST / answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).trim_end()
        );
    }
    reply
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
            eprintln!("kinesis-output: writing the answer: {}", e.message);
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

bindings::export!(Component with_types_in bindings);
