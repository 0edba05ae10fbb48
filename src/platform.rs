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

/// `url` as it may be shown in a message: any user information (`user:password@`, which may
/// hold a secret, even with `/`, `?` or `#` in it) replaced by `…@`.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_string(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => url.to_string(),
        },
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
    /// Give up on the whole exchange (head and body) this long after it starts, whatever the
    /// phases' timeouts allow: what is left of the `put_deadline`.
    pub within: Duration,
}

impl HttpRequest {
    /// The longest a request with `timeout` may take without a deadline of its own: the head
    /// within `timeout` of the start, the body within `timeout` of the head.
    pub fn unbounded_within(timeout: Duration) -> Duration {
        timeout.saturating_mul(2)
    }
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
    /// The SHA-256 of `data` as 64 lowercase hex characters, where the platform hashes faster
    /// than the core (a host with the CPU's SHA instructions); `None`: the core hashes itself.
    fn sha256_hex(&mut self, _data: &[u8]) -> Option<String> {
        None
    }
    /// The service stored the records of these events (indices into the running put's
    /// events), as each answer comes: a host that remembers what was stored across restarts
    /// writes it down before returning. The default forgets it.
    fn stored(&mut self, _events: &[u32]) {}
}

/// A platform bounded by a deadline (monotonic): every request's timeouts and `within` are cut
/// to the time left, every sleep too, and once the deadline has passed a request is not sent at
/// all (`PutDeadlineReached`: certainly not stored). Whatever is asked of it, no call outlasts
/// the deadline by more than the time to return.
///
/// A request cut by the deadline after it was sent may have been stored by the service, and its
/// records are then sent again: a second copy. So a request is not started either when the time
/// left is shorter than the slowest exchange of this bound so far (on a starved machine, the
/// calls just before the deadline would be cut half-way): not sent is certainly not stored.
pub struct Bounded<'a> {
    platform: &'a mut dyn Platform,
    deadline: Duration,
    /// What the deadline is, for messages (`put_deadline of 50s`).
    what: String,
    /// The longest a `send_all` took so far.
    slowest: Duration,
}

/// The transport code of a request not sent because the deadline had passed.
pub const DEADLINE_REACHED: &str = "PutDeadlineReached";

impl<'a> Bounded<'a> {
    pub fn new(platform: &'a mut dyn Platform, deadline: Duration, what: String) -> Bounded<'a> {
        Bounded {
            platform,
            deadline,
            what,
            slowest: Duration::ZERO,
        }
    }

    /// The time left until the deadline.
    pub fn left(&mut self) -> Duration {
        self.deadline.saturating_sub(self.platform.monotonic())
    }
}

impl Environment for Bounded<'_> {
    fn var(&mut self, name: &str) -> Option<String> {
        self.platform.var(name)
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.platform.read_file(path)
    }
}

impl Platform for Bounded<'_> {
    fn wall_clock(&mut self) -> SystemTime {
        self.platform.wall_clock()
    }
    fn monotonic(&mut self) -> Duration {
        self.platform.monotonic()
    }
    fn sleep(&mut self, duration: Duration) {
        let left = self.left();
        // Once less is left than the slowest exchange, nothing more is sent: a wait leads nowhere.
        if left < self.slowest {
            return;
        }
        self.platform.sleep(duration.min(left));
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        self.platform.fill_random(buf)
    }
    fn send_all(&mut self, mut requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        let left = self.left();
        let why = if left.is_zero() {
            Some(format!("not sent: the {} has passed", self.what))
        } else if left < self.slowest {
            Some(format!(
                "not sent: {left:?} were left of the {}, less than the slowest exchange so far ({:?})",
                self.what, self.slowest
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return requests
                .iter()
                .map(|_| Err(TransportError::new(DEADLINE_REACHED, why.clone())))
                .collect();
        }
        for r in &mut requests {
            r.timeout = r.timeout.min(left);
            r.within = r.within.min(left);
        }
        let started = self.platform.monotonic();
        let answers = self.platform.send_all(requests);
        self.slowest = self
            .slowest
            .max(self.platform.monotonic().saturating_sub(started));
        answers
    }
    fn run_process(&mut self, command: &str) -> Result<String, String> {
        self.platform.run_process(command)
    }
    fn sha256_hex(&mut self, data: &[u8]) -> Option<String> {
        self.platform.sha256_hex(data)
    }
    fn stored(&mut self, events: &[u32]) {
        self.platform.stored(events)
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn shown_urls_carry_no_user_information() {
        for (url, shown) in [
            ("https://user:s3cr/et?#@host:443", "https://…@host:443"),
            ("http://a@b@host", "http://…@host"),
            ("user:pw@host:80", "…@host:80"),
            ("https://host/path", "https://host/path"),
        ] {
            assert_eq!(shown_url(url), shown);
        }
    }
}
