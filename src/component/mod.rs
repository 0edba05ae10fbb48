//! The WASI glue: the only module that touches generated bindings.
//!
//! It implements [`Platform`] with `wasi:clocks`, `wasi:random`, `wasi:cli/environment` and
//! `wasi:http/outgoing-handler`, and exports one world, chosen by Cargo feature: `sink` (the
//! typed `kinesis:output/shipper` interface; no feature), `proxy` (a `wasi:http` incoming
//! handler; feature `proxy`) or `command` (`wasi:cli/run`; feature `command`).
#![allow(unsafe_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::platform::{Environment, HttpRequest, HttpResponse, Platform, TransportCode, TransportError};

#[cfg(all(feature = "proxy", feature = "command"))]
compile_error!("choose one world: the features `proxy` and `command` exclude each other");

mod bindings {
    #[cfg(not(any(feature = "proxy", feature = "command")))]
    wit_bindgen::generate!({
        world: "sink",
        path: "wit",
        generate_all,
    });
    #[cfg(feature = "proxy")]
    wit_bindgen::generate!({
        world: "proxy",
        path: "wit",
        generate_all,
    });
    #[cfg(all(feature = "command", not(feature = "proxy")))]
    wit_bindgen::generate!({
        world: "command",
        path: "wit",
        generate_all,
    });
}

#[cfg(all(feature = "command", not(feature = "proxy")))]
mod command_world;
#[cfg(feature = "proxy")]
mod proxy_world;
#[cfg(not(any(feature = "proxy", feature = "command")))]
mod sink_world;

use bindings::wasi::cli::environment;
use bindings::wasi::clocks::{monotonic_clock, wall_clock};
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use bindings::wasi::io::poll;
use bindings::wasi::io::streams::StreamError;
use bindings::wasi::random::random;

/// [`Platform`] on WASI 0.2.
pub(crate) struct Wasi;

impl Environment for Wasi {
    fn var(&mut self, name: &str) -> Option<String> {
        environment::get_environment()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Through `wasi:filesystem`: the host must grant (preopen) the folder.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}

impl Platform for Wasi {
    fn wall_clock(&mut self) -> SystemTime {
        let now = wall_clock::now();
        UNIX_EPOCH + Duration::new(now.seconds, now.nanoseconds)
    }

    fn monotonic(&mut self) -> Duration {
        Duration::from_nanos(monotonic_clock::now())
    }

    fn sleep(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        if nanos > 0 {
            monotonic_clock::subscribe_duration(nanos).block();
        }
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        let bytes = random::get_random_bytes(buf.len() as u64);
        buf.copy_from_slice(&bytes[..buf.len()]);
    }

    #[cfg(not(any(feature = "proxy", feature = "command")))]
    fn run_process(&mut self, command: &str) -> Result<String, String> {
        bindings::kinesis::output::host::run_credential_process(command)
    }

    /// The sink world's host hashes (with the CPU's SHA instructions); an answer that is not a
    /// digest leaves the hashing to the core.
    #[cfg(not(any(feature = "proxy", feature = "command")))]
    fn sha256_hex(&mut self, data: &[u8]) -> Option<String> {
        let hex = bindings::kinesis::output::host::payload_sha256(data);
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
    }

    /// The sink world's host hears of each stored record (it may keep that across restarts).
    #[cfg(not(any(feature = "proxy", feature = "command")))]
    fn stored(&mut self, events: &[u32]) {
        bindings::kinesis::output::host::stored(events);
    }

    #[cfg(any(feature = "proxy", feature = "command"))]
    fn run_process(&mut self, _command: &str) -> Result<String, String> {
        Err("process_credentials needs the sink world, whose host runs processes; this world has no process runner".to_string())
    }

    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        // Start every request (handle first, then the body: writing first stalls large bodies),
        // then wait for all of them together: response heads and bodies alike, so that a slow
        // or stalled body never holds up the others.
        // Each request has its own deadline, `request_timeout` from its start for the head and
        // as long again from the head for the body, kept here with a clock pollable: a host that
        // ignores the request options, or an endpoint that stalls, can delay a request but
        // never hang the put.
        // `within` bounds the whole exchange besides: no head or body is waited for past it.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let started = monotonic_clock::now();
        let timeouts: Vec<(u64, u64)> = requests
            .iter()
            .map(|r| (nanos(r.timeout), started.saturating_add(nanos(r.within))))
            .collect();
        let mut slots: Vec<Slot> = requests
            .iter()
            .zip(&timeouts)
            .map(|(r, (timeout, end))| {
                let deadline = started.saturating_add(*timeout).min(*end);
                match start_request(r, deadline) {
                    Ok((future, write_error)) => Slot::Waiting {
                        future,
                        write_error,
                        deadline,
                    },
                    Err(e) => Slot::Done(Err(e)),
                }
            })
            .collect();
        loop {
            let mut pollables = Vec::new();
            let mut earliest: Option<u64> = None;
            for slot in &slots {
                let (pollable, deadline) = match slot {
                    Slot::Waiting { future, deadline, .. } => (future.subscribe(), *deadline),
                    Slot::Reading(r) => (r.stream.subscribe(), r.deadline),
                    Slot::Done(_) => continue,
                };
                pollables.push(pollable);
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
            let Some(earliest) = earliest else {
                break;
            };
            let timer = monotonic_clock::subscribe_instant(earliest);
            let mut refs: Vec<&poll::Pollable> = pollables.iter().collect();
            refs.push(&timer);
            poll::poll(&refs);
            drop(refs);
            drop(timer);
            drop(pollables);
            // Move every request on as far as it goes without waiting.
            let now = monotonic_clock::now();
            for (slot, (timeout, end)) in slots.iter_mut().zip(&timeouts) {
                let current = std::mem::replace(slot, Slot::Done(Err(local_error("", ""))));
                *slot = current.advance(now, *timeout, *end);
            }
        }
        slots
            .into_iter()
            .zip(&requests)
            .map(|(slot, request)| match slot {
                Slot::Done(Err(e)) if e.code == TransportCode::Denied => Err(local_error(
                    "HttpRequestDenied",
                    format!(
                        "the host refused the request to {}: its egress policy does not allow it",
                        authority_of(&request.url)
                    ),
                )),
                Slot::Done(Err(e)) if is_timeout(&e) => Err(timed_out(request, &e.message)),
                Slot::Done(result) => result,
                _ => unreachable!("every request ends done"),
            })
            .collect()
    }
}

/// Where one request of [`Platform::send_all`] is.
enum Slot {
    /// Sent; its response head has not come yet.
    Waiting {
        future: FutureIncomingResponse,
        /// A body that failed to send usually means the request failed: the future then holds
        /// the precise error (a refused connection, say), which wins over this one.
        write_error: Option<TransportError>,
        deadline: u64,
    },
    Reading(Reading),
    Done(Result<HttpResponse, TransportError>),
}

/// A response whose body is being read. Fields drop in order: the stream before its body,
/// the body before its response.
struct Reading {
    stream: bindings::wasi::io::streams::InputStream,
    body: Option<IncomingBody>,
    _response: bindings::wasi::http::types::IncomingResponse,
    status: u16,
    bytes: Vec<u8>,
    deadline: u64,
    write_error: Option<TransportError>,
}

impl Slot {
    /// Move on without waiting. The body's deadline is `timeout` after its head, and never
    /// past `end` (the whole exchange's).
    fn advance(self, now: u64, timeout: u64, end: u64) -> Slot {
        match self {
            Slot::Waiting {
                future,
                write_error,
                deadline,
            } => match future.get() {
                Some(Ok(Ok(response))) => {
                    match start_reading(response, write_error, now.saturating_add(timeout).min(end)) {
                        Ok(reading) => Slot::Reading(reading).advance(now, timeout, end),
                        Err(e) => Slot::Done(Err(e)),
                    }
                }
                Some(Ok(Err(e))) => Slot::Done(Err(transport_error(&e))),
                Some(Err(())) => Slot::Done(Err(local_error("HttpProtocolError", "response already taken"))),
                // Dropping the future cancels the request in the host.
                None if now >= deadline => Slot::Done(Err(local_error(REQUEST_TIMEOUT, "no response"))),
                None => Slot::Waiting {
                    future,
                    write_error,
                    deadline,
                },
            },
            Slot::Reading(mut r) => loop {
                match r.stream.read(64 * 1024) {
                    Ok(chunk) if chunk.is_empty() => {
                        if now >= r.deadline {
                            return Slot::Done(Err(local_error(
                                REQUEST_TIMEOUT,
                                "the response body stalled",
                            )));
                        }
                        return Slot::Reading(r);
                    }
                    Ok(chunk) => {
                        r.bytes.extend_from_slice(&chunk);
                        if r.bytes.len() > MAX_RESPONSE_BODY {
                            return Slot::Done(Err(local_error(
                                "HttpResponseBodySize",
                                format!("the response body is larger than {MAX_RESPONSE_BODY} bytes"),
                            )));
                        }
                    }
                    Err(StreamError::Closed) => {
                        let Reading {
                            stream,
                            mut body,
                            _response,
                            status,
                            bytes,
                            write_error,
                            ..
                        } = r;
                        drop(stream);
                        if let Some(body) = body.take() {
                            drop(IncomingBody::finish(body));
                        }
                        return Slot::Done(match write_error {
                            Some(e) => Err(e),
                            None => Ok(HttpResponse { status, body: bytes }),
                        });
                    }
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Slot::Done(Err(local_error("HttpResponseIncomplete", e.to_debug_string())))
                    }
                }
            },
            done @ Slot::Done(_) => done,
        }
    }
}

fn start_reading(
    response: bindings::wasi::http::types::IncomingResponse,
    write_error: Option<TransportError>,
    deadline: u64,
) -> Result<Reading, TransportError> {
    let status = response.status();
    let body = response
        .consume()
        .map_err(|_| local_error("HttpProtocolError", "response body unavailable"))?;
    let stream = body
        .stream()
        .map_err(|_| local_error("HttpProtocolError", "response body stream unavailable"))?;
    Ok(Reading {
        stream,
        body: Some(body),
        _response: response,
        status,
        bytes: Vec::new(),
        deadline,
        write_error,
    })
}

/// Our code for a request the component stopped waiting for at its deadline.
const REQUEST_TIMEOUT: &str = "RequestTimeout";
/// The most of a response body the component reads (PutRecords answers 500 records in ~75 KB).
const MAX_RESPONSE_BODY: usize = 8 * 1024 * 1024;

/// Whether the component stopped waiting for `e`'s request at its deadline.
fn is_timeout(e: &TransportError) -> bool {
    matches!(&e.code, TransportCode::Other(code) if code == REQUEST_TIMEOUT)
}

/// `what` happened at `request`'s deadline: "no response", "the response body stalled".
fn timed_out(request: &HttpRequest, what: &str) -> TransportError {
    local_error(
        REQUEST_TIMEOUT,
        format!(
            "{what} from {} within the request_timeout of {:?}",
            authority_of(&request.url),
            request.timeout
        ),
    )
}

/// Wait until `pollable` is ready or `deadline` (monotonic nanoseconds) passes; false on the
/// deadline.
fn ready_before(pollable: &poll::Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    let ready = poll::poll(&[pollable, &timer]);
    ready.contains(&0)
}

/// `scheme://authority` of a URL, for messages.
fn authority_of(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)))
        .unwrap_or_else(|| url.to_string())
}

/// wasi:http's error as our code (its case name: `ConnectionRefused`, `HttpRequestDenied`)
/// and message (the case with its details).
fn transport_error(e: &ErrorCode) -> TransportError {
    let text = format!("{e:?}");
    // The generated Debug names the enum first: `ErrorCode::DnsError(…)`.
    let text = text.strip_prefix("ErrorCode::").unwrap_or(&text).to_string();
    let code = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .filter(|c| !c.is_empty())
        .unwrap_or("HttpError")
        .to_string();
    TransportError::new(&code, text)
}

fn local_error(code: &str, message: impl Into<String>) -> TransportError {
    TransportError::new(code, message)
}

fn start_request(
    request: &HttpRequest,
    deadline: u64,
) -> Result<(FutureIncomingResponse, Option<TransportError>), TransportError> {
    let uri: http::Uri = request
        .url
        .parse()
        .map_err(|_| local_error("HttpRequestUriInvalid", "the endpoint URL does not parse"))?;
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&headers).map_err(|e| local_error("HttpRequestHeaderInvalid", format!("{e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        "POST" => Method::Post,
        "GET" => Method::Get,
        "PUT" => Method::Put,
        other => Method::Other(other.to_string()),
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        _ => Scheme::Https,
    };
    let set = |ok: Result<(), ()>, what: &str| {
        ok.map_err(|_| local_error("HttpRequestUriInvalid", format!("invalid {what}")))
    };
    set(outgoing.set_method(&method), "method")?;
    set(outgoing.set_scheme(Some(&scheme)), "scheme")?;
    set(
        outgoing.set_authority(uri.authority().map(|a| a.as_str())),
        "authority",
    )?;
    set(
        outgoing.set_path_with_query(Some(uri.path_and_query().map_or("/", |p| p.as_str()))),
        "path",
    )?;
    let body = outgoing
        .body()
        .map_err(|_| local_error("HttpProtocolError", "request body unavailable"))?;
    // Hosts that do not support a timeout refuse to set it; the request then runs with the host's own.
    let options = RequestOptions::new();
    let nanos = u64::try_from(request.timeout.as_nanos()).unwrap_or(u64::MAX);
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| transport_error(&e))?;
    let write_error = write_body(body, &request.body, deadline)
        .map_err(|e| {
            if is_timeout(&e) {
                timed_out(request, &e.message)
            } else {
                e
            }
        })
        .err();
    Ok((future, write_error))
}

fn write_body(body: OutgoingBody, bytes: &[u8], deadline: u64) -> Result<(), TransportError> {
    let stream = body
        .write()
        .map_err(|_| local_error("HttpProtocolError", "request body stream unavailable"))?;
    write_all(&stream, bytes, Some(deadline))?;
    // No flush after the last write: the host may already have dropped the finished body.
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| transport_error(&e))
}

/// Write all of `bytes` as fast as the stream takes them, giving up at `deadline` (monotonic
/// nanoseconds) if there is one.
pub(crate) fn write_all(
    stream: &bindings::wasi::io::streams::OutputStream,
    bytes: &[u8],
    deadline: Option<u64>,
) -> Result<(), TransportError> {
    let mut offset = 0;
    while offset < bytes.len() {
        let permit = match stream.check_write() {
            Ok(0) => {
                let writable = stream.subscribe();
                match deadline {
                    None => writable.block(),
                    Some(d) if !ready_before(&writable, d) => {
                        return Err(local_error(REQUEST_TIMEOUT, "the request body could not be sent"))
                    }
                    Some(_) => {}
                }
                continue;
            }
            Ok(n) => n as usize,
            Err(e) => return Err(stream_error(e)),
        };
        let end = bytes.len().min(offset + permit);
        stream.write(&bytes[offset..end]).map_err(stream_error)?;
        offset = end;
    }
    Ok(())
}

fn stream_error(e: StreamError) -> TransportError {
    match e {
        StreamError::LastOperationFailed(err) => local_error("HttpIoError", err.to_debug_string()),
        StreamError::Closed => local_error("ConnectionTerminated", "the connection closed while sending"),
    }
}
