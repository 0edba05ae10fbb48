//! The answers of the proxy world: to a body that cannot be taken, to a configuration the sink
//! refused, and, once every record of a body has an outcome, to the records.
//!
//! ## How a request is answered
//! The proxy answers only when every record of the body has an outcome, and picks the status so
//! that a log agent that re-sends on failure can never duplicate a record the service accepted:
//!
//! | status | when | the agent |
//! |---|---|---|
//! | 200 | every record delivered | done |
//! | 202 | some delivered, the others rejected or failed; `problems` lists each of those records | done: re-sending would duplicate the delivered ones |
//! | 503 + `Retry-After` | nothing delivered, at least one record failed (throttled, network, …) | re-sends the body; nothing in it was stored |
//! | 422 | nothing delivered, every record rejected (no partition key, too large, …) | gives up: re-sending cannot help |
//! | 400 | the body is not what its headers claim (with the line) | gives up |
//! | 413 | the body or its record count exceeds the limits | gives up |
//!
//! 202 and not 207 for a partial delivery: Fluent Bit re-sends anything outside 200–205.

use serde_json::{json, Value};

use super::body::{BodyError, Item};
use super::report::{Tally, Verdict as ChunkVerdict};
use crate::config::ConfigError;
use crate::kinesis::{Counters, Outcome, Verdict};

/// An HTTP answer: status, extra headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Reply {
        let mut text = body.to_string();
        text.push('\n');
        Reply {
            status,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: text.into_bytes(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The answer to a body that could not be taken.
pub fn body_error_reply(e: &BodyError) -> Reply {
    let mut body = json!({ "error": e.message });
    if let Some(line) = e.line {
        body["line"] = json!(line);
    }
    Reply::json(e.status, &body)
}

/// The answer to a configuration the sink refused: 500, so that agents keep the records and
/// retry while the operator fixes it.
pub fn config_error_reply(e: &ConfigError) -> Reply {
    Reply::json(
        500,
        &json!({ "error": "the proxy's configuration is invalid", "field": e.field, "message": e.message }),
    )
    .with_header("retry-after", "30")
}

/// The seconds a client should wait before re-sending a body none of whose records was stored.
pub const RETRY_AFTER_THROTTLED: u32 = 1;
pub const RETRY_AFTER_OTHER: u32 = 5;

/// The answer once every record of the body has an outcome (`outcomes[i]` is `items[i]`'s); see
/// the module documentation for the statuses.
pub fn outcome_reply(items: &[Item], outcomes: &[Outcome], counters: &Counters) -> Reply {
    let mut tally = Tally::default();
    for (item, outcome) in items.iter().zip(outcomes) {
        tally.add(item.line, outcome);
    }
    tally.add_counters(counters);
    let throttled = outcomes.iter().any(|o| match o {
        Outcome::Failed { code, .. } => code.record_verdict() == Verdict::Throttled,
        _ => false,
    });
    let mut body = tally.to_json();
    if tally.problems.is_empty() {
        body.remove("problems");
    }
    body.insert("counters".into(), tally.counters_json());
    let status = match tally.verdict() {
        ChunkVerdict::Done => 200,
        ChunkVerdict::Partial => {
            body.insert(
                "note".into(),
                json!("delivered records are stored; do not re-send this body, the records under problems were not stored"),
            );
            202
        }
        ChunkVerdict::RetryWhole => {
            body.insert(
                "note".into(),
                json!("no record of this body was stored; re-sending it creates no duplicates"),
            );
            503
        }
        ChunkVerdict::GiveUp => 422,
    };
    let reply = Reply::json(status, &Value::Object(body));
    if status == 503 {
        let after = if throttled {
            RETRY_AFTER_THROTTLED
        } else {
            RETRY_AFTER_OTHER
        };
        reply.with_header("retry-after", after.to_string())
    } else {
        reply
    }
}
