//! The `proxy` world: a `wasi:http` incoming handler. `POST /` with records, answered once every
//! record has an outcome (see [`crate::ingest`] for the statuses); `GET /health`.

use std::cell::RefCell;

use super::bindings;
use super::{write_all, Wasi};
use crate::config::{ConfigError, Environment};
use crate::ingest::{self, BodyError, ProxySettings, Reply};
use crate::outcome::Event;
use crate::platform::Platform;
use crate::sink::Sink;
use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::StreamError;

struct Component;

thread_local! {
    /// The sink opened for a configuration, kept while the host keeps this instance (hosts that
    /// reuse instances then reuse its credentials); `wasmtime serve` starts each request afresh.
    static SINK: RefCell<Option<(String, Sink)>> = const { RefCell::new(None) };
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

/// The configuration text from the environment, with the proxy's defaults.
fn configuration() -> Result<(String, ProxySettings), ConfigError> {
    let mut env = Snapshot(bindings::wasi::cli::environment::get_environment());
    let text = crate::envconfig::from_env(&mut env)?.ok_or_else(|| {
        ConfigError::new(
            crate::envconfig::CONFIG_VAR,
            "no configuration: set KINESIS_OUTPUT_CONFIG (JSON), KINESIS_OUTPUT_CONFIG_FILE, or one KINESIS_OUTPUT_<SETTING> variable per setting",
        )
    })?;
    let settings = ProxySettings::from_config(&text)?;
    Ok((ingest::proxy_sink_config(&text), settings))
}

/// Run `f` with the sink for `config`, opening it when the configuration changed.
fn with_sink<T>(config: &str, f: impl FnOnce(&mut Sink) -> T) -> Result<T, ConfigError> {
    SINK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(text, _)| text != config) {
            let sink = Sink::open(config, &mut Wasi)?;
            *slot = Some((config.to_string(), sink));
        }
        let (_, sink) = slot.as_mut().expect("opened above");
        Ok(f(sink))
    })
}

fn health() -> Reply {
    let opened = configuration().and_then(|(config, _)| with_sink(&config, |sink| sink.credential_source()));
    match opened {
        Ok(source) => Reply::json(
            200,
            &serde_json::json!({ "status": "ok", "credential_source": source }),
        ),
        Err(e) => ingest::config_error_reply(&e).with_status(503),
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
    let (config, settings) = match configuration() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kinesis-output: configuration: {e}");
            return ingest::config_error_reply(&e);
        }
    };
    let reply = match take_records(request, &settings) {
        Ok((body, items, tag)) => {
            let now = Wasi.wall_clock();
            let now = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let events: Vec<Event<'_>> = items
                .iter()
                .map(|item| {
                    let (seconds, nanoseconds) =
                        item.time.unwrap_or((now.as_secs() as i64, now.subsec_nanos()));
                    Event {
                        tag: &tag,
                        seconds,
                        nanoseconds,
                        record: &body[item.start..item.end],
                    }
                })
                .collect();
            match with_sink(&config, |sink| sink.put(&events, &mut Wasi)) {
                Ok(report) => ingest::outcome_reply(&items, &report.outcomes),
                Err(e) => {
                    eprintln!("kinesis-output: configuration: {e}");
                    return ingest::config_error_reply(&e);
                }
            }
        }
        Err(e) => ingest::body_error_reply(&e),
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
    settings: &ProxySettings,
) -> Result<(Vec<u8>, Vec<ingest::Item>, String), BodyError> {
    let framing = ingest::framing(header(request, "content-type").as_deref())?;
    let encoding = header(request, "content-encoding");
    let tag = header(request, &settings.tag_header).unwrap_or_else(|| settings.default_tag.clone());
    let raw = read_body(request, settings.max_body_size)?;
    let body = ingest::decode(encoding.as_deref(), raw, settings.max_body_size)?;
    let items = ingest::split(framing, &body, settings)?;
    Ok((body, items, tag))
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
