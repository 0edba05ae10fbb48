//! Everything the core needs from outside, behind two traits: [`Environment`] (variables and
//! files, all that reading a configuration needs) and [`Platform`] (the rest: clocks, randomness,
//! HTTP, the host's process runner).
//!
//! The component implements them with WASI; tests implement them with fakes, so that retries,
//! backoff and deadlines run natively and deterministically. This module imports nothing of the
//! crate: it is the floor every stage stands on.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Environment variables and files, as the configuration may refer to them.
pub trait Environment {
    fn var(&mut self, name: &str) -> Option<String>;
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String>;
}

/// An environment of variables only (tests, hosts without files).
impl<F: FnMut(&str) -> Option<String>> Environment for F {
    fn var(&mut self, name: &str) -> Option<String> {
        self(name)
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("{path}: no files are available here"))
    }
}

/// A non-empty environment variable.
pub fn env_nonempty(env: &mut dyn Environment, name: &str) -> Option<String> {
    env.var(name).filter(|v| !v.trim().is_empty())
}

/// An HTTP request the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    /// `scheme://authority/path`.
    pub url: String,
    /// Header names in lower case. `host` is left to the transport, which derives it from the URL.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Give up on connecting, on the first response byte, and between response bytes after this
    /// long (each separately).
    pub timeout: Duration,
}

/// The response to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What kept a request from producing a complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportCode {
    /// The host refused to send it (its egress policy; wasi:http's `HttpRequestDenied`): no
    /// retry can change that.
    Denied,
    /// Anything else, by wasi:http's name for it (`ConnectionRefused`,
    /// `HttpResponseIncomplete`, …, or `DeadlineExceeded` for the core's own deadlines).
    Other(String),
}

impl fmt::Display for TransportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportCode::Denied => f.write_str("HttpRequestDenied"),
            TransportCode::Other(name) => f.write_str(name),
        }
    }
}

/// The request did not produce a complete response (refused connection, timeout, broken body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    pub code: TransportCode,
    pub message: String,
}

impl TransportError {
    /// A failure named by wasi:http's error code (`HttpRequestDenied` becomes
    /// [`TransportCode::Denied`]).
    pub fn new(code: &str, message: impl Into<String>) -> TransportError {
        let code = match code {
            "HttpRequestDenied" => TransportCode::Denied,
            other => TransportCode::Other(other.to_string()),
        };
        TransportError {
            code,
            message: message.into(),
        }
    }
}

/// The core's view of the world: environment variables and files ([`Environment`]) and the rest.
pub trait Platform: Environment {
    /// Wall-clock time, for signatures.
    fn wall_clock(&mut self) -> SystemTime;
    /// Monotonic time since an arbitrary origin, for deadlines.
    fn monotonic(&mut self) -> Duration;
    /// Block for `duration`.
    fn sleep(&mut self, duration: Duration);
    /// Fill `buf` with cryptographically secure random bytes.
    fn fill_random(&mut self, buf: &mut [u8]);
    /// Send all `requests` at once (concurrently where the platform can) and return one result
    /// per request, in the same order.
    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>>;
    /// Run a `credential_process` command through the host and return its standard output.
    fn run_process(&mut self, command: &str) -> Result<String, String>;
}
