//! `kinesis-ship serve`'s buffer limit: at most `buffer.total_limit_size` bytes of request bodies
//! held at once, with Fluentd's `overflow_action` deciding what a request that does not fit gets:
//! a 503 with `Retry-After` (`throw_exception`; `drop_oldest_chunk` too, since serve holds no
//! queued chunk it could drop, only requests being shipped), or a wait for room (`block`).
//! Nothing is lost either way: a refused request was not read, and the agent sends it again.
//!
//! Before its body is weighed, a request takes one of `--max-requests` places (requests being
//! read or shipped at once), with the same choice past it: so a body without a length, read
//! before it can be weighed, is read by at most that many requests at a time. Every body is read
//! whole (serve remembers bodies by their bytes), never past `proxy.max_body_size`, and within
//! [`BODY_READ_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use kinesis_output::config::buffer::Overflow;
use kinesis_output::config::BufferSettings;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::proxy::ProxyBody;

/// Permits count KiB, so that any `total_limit_size` fits a semaphore's `u32` requests.
const UNIT: usize = 1024;
/// What a refused request is told to wait before sending again, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;
/// The longest a client may take to send a request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The room for request bodies.
pub struct Room {
    units: Arc<Semaphore>,
    limit: usize,
    /// The largest body taken (`proxy.max_body_size`), enforced while it is read.
    max_body: usize,
    block: bool,
    places: Arc<Semaphore>,
    max_requests: usize,
}

/// A request let in with its body read whole, and the room it holds until dropped.
pub struct Admitted {
    pub parts: hyper::http::request::Parts,
    pub body: Bytes,
    _held: Option<OwnedSemaphorePermit>,
    _place: OwnedSemaphorePermit,
}

/// Requests read or shipped at once when `--max-requests` is not given.
pub const DEFAULT_MAX_REQUESTS: usize = 16;

impl Room {
    /// `max_body`: the largest body taken, in bytes as sent.
    pub fn new(buffer: &BufferSettings, max_requests: usize, max_body: usize) -> Room {
        let units = buffer.total_limit_size.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        let max_requests = max_requests.clamp(1, Semaphore::MAX_PERMITS);
        Room {
            units: Arc::new(Semaphore::new(units)),
            limit: buffer.total_limit_size,
            max_body: max_body.min(buffer.total_limit_size),
            block: buffer.overflow_action == Overflow::Block,
            places: Arc::new(Semaphore::new(max_requests)),
            max_requests,
        }
    }

    fn too_large(&self, size: Option<usize>) -> hyper::Response<ProxyBody> {
        let what = size.map_or("the body".to_string(), |n| format!("the body ({n} bytes)"));
        let message = if self.max_body < self.limit {
            format!(
                "{what} is larger than proxy.max_body_size ({} bytes)",
                self.max_body
            )
        } else {
            format!(
                "{what} is larger than buffer.total_limit_size ({} bytes)",
                self.limit
            )
        };
        answer(413, &message, false)
    }

    /// Room for `size` bytes, or the answer to give.
    async fn hold(&self, size: usize) -> Result<Option<OwnedSemaphorePermit>, hyper::Response<ProxyBody>> {
        if size == 0 {
            return Ok(None);
        }
        let units = size.div_ceil(UNIT) as u32;
        let held = if self.block {
            self.units.clone().acquire_many_owned(units).await.ok()
        } else {
            self.units.clone().try_acquire_many_owned(units).ok()
        };
        match held {
            Some(permit) => Ok(Some(permit)),
            None => Err(answer(
                503,
                &format!(
                    "buffer.total_limit_size ({} bytes) is held by requests being shipped; send again later",
                    self.limit
                ),
                true,
            )),
        }
    }

    /// Let `request` in once there is a place for it and its body fits, its body read whole
    /// (never past the limits, and within [`BODY_READ_TIMEOUT`]), or answer it here.
    pub async fn admit(
        &self,
        request: hyper::Request<Incoming>,
    ) -> Result<Admitted, hyper::Response<ProxyBody>> {
        let place = if self.block {
            self.places.clone().acquire_owned().await.ok()
        } else {
            self.places.clone().try_acquire_owned().ok()
        };
        let Some(place) = place else {
            return Err(answer(
                503,
                &format!(
                    "{} requests are being shipped (--max-requests); send again later",
                    self.max_requests
                ),
                true,
            ));
        };
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        // A declared size is weighed before anything is read.
        let held = match declared {
            Some(size) if size > self.max_body => return Err(self.too_large(Some(size))),
            Some(size) => self.hold(size).await?,
            None => None,
        };
        let (parts, body) = request.into_parts();
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, self.max_body).collect()).await;
        let body = match read {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(self.too_large(None)),
            Ok(Err(e)) => return Err(answer(400, &format!("the body could not be read: {e}"), false)),
            Err(_) => {
                return Err(answer(
                    408,
                    &format!("the body did not arrive within {BODY_READ_TIMEOUT:?}"),
                    false,
                ))
            }
        };
        let held = match held {
            Some(held) => Some(held),
            None => self.hold(body.len()).await?,
        };
        Ok(Admitted {
            parts,
            body,
            _held: held,
            _place: place,
        })
    }
}

/// A JSON error answer, with `Retry-After` when sending again later can succeed.
pub fn answer(status: u16, message: &str, retry: bool) -> hyper::Response<ProxyBody> {
    answer_json(
        status,
        serde_json::json!({ "error": message }),
        retry.then_some(RETRY_AFTER_SECONDS),
    )
}

/// A JSON answer, with `Retry-After` seconds when given.
pub fn answer_json(
    status: u16,
    body: serde_json::Value,
    retry_after: Option<u32>,
) -> hyper::Response<ProxyBody> {
    let body = body.to_string();
    let mut response = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}
