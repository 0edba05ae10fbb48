//! The WASI glue: the only module that touches generated bindings.
//!
//! It implements [`Platform`] with `wasi:clocks`, `wasi:random`, `wasi:cli/environment` and
//! `wasi:http/outgoing-handler`, and exports one world, chosen by Cargo feature: `sink` (the
//! typed `kinesis:output/shipper` interface; no feature), `proxy` (a `wasi:http` incoming
//! handler; feature `proxy`) or `command` (`wasi:cli/run`; feature `command`).
#![allow(unsafe_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Environment;
use crate::platform::{HttpRequest, HttpResponse, Platform, TransportError};

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

    #[cfg(any(feature = "proxy", feature = "command"))]
    fn run_process(&mut self, _command: &str) -> Result<String, String> {
        Err("process_credentials needs the sink world, whose host runs processes; this world has no process runner".to_string())
    }

    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        // Start every request (handle first, then the body: writing first stalls large bodies),
        // then wait for all responses together.
        // A body that fails to send usually means the request failed: its future then holds the
        // precise error (a refused connection, say), which wins over the write error.
        let mut in_flight: Vec<Result<(FutureIncomingResponse, Option<TransportError>), TransportError>> =
            requests.iter().map(start_request).collect();
        let mut results: Vec<Option<Result<HttpResponse, TransportError>>> = vec![None; requests.len()];
        for (i, started) in in_flight.iter().enumerate() {
            if let Err(e) = started {
                results[i] = Some(Err(e.clone()));
            }
        }
        loop {
            let waiting: Vec<usize> = (0..requests.len()).filter(|i| results[*i].is_none()).collect();
            if waiting.is_empty() {
                break;
            }
            let pollables: Vec<_> = waiting
                .iter()
                .map(|i| in_flight[*i].as_ref().expect("started").0.subscribe())
                .collect();
            let refs: Vec<&poll::Pollable> = pollables.iter().collect();
            let ready = poll::poll(&refs);
            drop(refs);
            drop(pollables);
            for r in ready {
                let i = waiting[r as usize];
                let (future, write_error) = in_flight[i].as_mut().expect("started");
                if let Some(result) = future.get() {
                    results[i] = Some(match (finish_response(result), write_error.take()) {
                        (Ok(_), Some(e)) => Err(e),
                        (result, _) => result,
                    });
                }
            }
        }
        in_flight.clear();
        results
            .into_iter()
            .zip(&requests)
            .map(|(r, request)| match r.expect("every request resolved") {
                Err(e) if e.code == "HttpRequestDenied" => Err(local_error(
                    "HttpRequestDenied",
                    format!(
                        "the host refused the request to {}: its egress policy does not allow it",
                        authority_of(&request.url)
                    ),
                )),
                other => other,
            })
            .collect()
    }
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
    TransportError { code, message: text }
}

fn local_error(code: &str, message: impl Into<String>) -> TransportError {
    TransportError {
        code: code.to_string(),
        message: message.into(),
    }
}

fn start_request(
    request: &HttpRequest,
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
    let write_error = write_body(body, &request.body).err();
    Ok((future, write_error))
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), TransportError> {
    let stream = body
        .write()
        .map_err(|_| local_error("HttpProtocolError", "request body stream unavailable"))?;
    write_all(&stream, bytes)?;
    // No flush after the last write: the host may already have dropped the finished body.
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| transport_error(&e))
}

/// Write all of `bytes` as fast as the stream takes them.
pub(crate) fn write_all(
    stream: &bindings::wasi::io::streams::OutputStream,
    bytes: &[u8],
) -> Result<(), TransportError> {
    let mut offset = 0;
    while offset < bytes.len() {
        let permit = match stream.check_write() {
            Ok(0) => {
                stream.subscribe().block();
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

fn finish_response(
    result: Result<Result<bindings::wasi::http::types::IncomingResponse, ErrorCode>, ()>,
) -> Result<HttpResponse, TransportError> {
    let response = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(transport_error(&e)),
        Err(()) => return Err(local_error("HttpProtocolError", "response already taken")),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|_| local_error("HttpProtocolError", "response body unavailable"))?;
    let stream = body
        .stream()
        .map_err(|_| local_error("HttpProtocolError", "response body stream unavailable"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(local_error("HttpResponseIncomplete", e.to_debug_string()))
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(HttpResponse { status, body: bytes })
}
