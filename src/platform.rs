//! Everything the core needs from outside, behind one trait.
//!
//! The component implements [`Platform`] with WASI (clocks, random, environment, `wasi:http`);
//! tests implement it with fakes, so that retries, backoff and deadlines run natively and
//! deterministically.

use std::time::{Duration, SystemTime};

use crate::config::Environment;

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

/// The request did not produce a complete response (refused connection, timeout, broken body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// A short name such as `ConnectionRefused` or `HttpResponseIncomplete`.
    pub code: String,
    pub message: String,
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
