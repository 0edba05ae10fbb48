//! The answers of the proxy world: to a body that cannot be taken, to a configuration the sink
//! refused, and, once every record of a body has an outcome, to the records.
//!
//! ## How a request is answered (the delivery rule, [`crate::front::ledger`])
//! The proxy answers only when every record sent has an outcome, and picks the status so that a
//! log agent that re-sends on failure neither loses nor duplicates a record:
//!
//! | status | when | the agent |
//! |---|---|---|
//! | 200 | every record of the body stored (in this attempt or an earlier one) | done |
//! | 202 | every record settled: some stored, the others final (rejected, or a failure no retry can fix) | done |
//! | 503 + `Retry-After` | records that may still be stored are not yet: the proxy remembers what was stored, and the re-sent body ships only the rest | re-sends the body |
//! | 422 | every record final, none stored | gives up: re-sending cannot help |
//! | 400 | the body is not what its headers claim (with the line) | gives up |
//! | 413 | the body or its record count exceeds the limits | gives up |
//!
//! Answers stay small (well under the 4 KB Fluent Bit's HTTP client reads): counts and the first
//! [`PROBLEMS_SHOWN`] problems; `?problems=all` (or a host asking for the detail) gets every one.
//! 202 and not 207 for a partial delivery: Fluent Bit re-sends anything outside 200–205.

use serde_json::{json, Value};

use super::body::{BodyError, Item};
use super::ledger::{Entry, Settlement, Verdict};
use super::report::{Problem, Tally};
use crate::config::ConfigError;
use crate::kinesis::code::Verdict as CodeVerdict;
use crate::kinesis::{Counters, Outcome};

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

/// The seconds a client should wait before re-sending a body with records not yet stored.
pub const RETRY_AFTER_THROTTLED: u32 = 1;
pub const RETRY_AFTER_OTHER: u32 = 5;

/// Problems an answer lists unless asked for all of them.
pub const PROBLEMS_SHOWN: usize = 5;
/// The longest code and message an answer shows of a problem, in characters.
const CODE_SHOWN: usize = 64;
const MESSAGE_SHOWN: usize = 200;

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// How much an answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detail {
    /// Every problem, each message whole (`?problems=all`, or a host that asks).
    pub all_problems: bool,
    /// The body's entry after the attempt, as `ledger` (for a host that remembers bodies).
    pub ledger: bool,
}

/// The answer once an attempt at a body has settled (see the module documentation):
/// `settlement` of `entry` (the body's memory after the attempt), the records' `items`, the
/// put's `counters`.
pub fn settled_reply(
    items: &[Item],
    settlement: &Settlement,
    entry: &Entry,
    counters: &Counters,
    detail: Detail,
) -> Reply {
    let all_problems = detail.all_problems;
    let mut tally = Tally::default();
    let line = |place: u32| items.get(place as usize).map_or(0, |i| i.line);
    for (place, outcome) in &settlement.finals {
        tally.add(line(*place), outcome);
    }
    tally.add_counters(counters);
    let mut problems: Vec<Value> = tally.problems.iter().map(Problem::to_json).collect();
    let why_held = settlement.why_held.as_ref().and_then(|o| match o {
        Outcome::Failed { code, message, .. } => Some((code, message)),
        _ => None,
    });
    if settlement.verdict == Verdict::Retry {
        if let Some((code, message)) = why_held {
            // One line stands for the records held (they share the answer's Retry-After).
            problems.push(json!({
                "line": settlement.held.first().map_or(0, |p| line(*p)),
                "outcome": "retrying",
                "code": code.as_str(),
                "message": message,
                "records": settlement.held.len(),
            }));
        }
    }
    let mut body = serde_json::Map::new();
    body.insert("delivered".into(), json!(settlement.stored_now));
    body.insert("failed".into(), json!(tally.failed));
    body.insert("rejected".into(), json!(tally.rejected));
    let stored_before = entry.stored - settlement.stored_now;
    if stored_before > 0 {
        body.insert("stored_before".into(), json!(stored_before));
    }
    if settlement.verdict == Verdict::Retry {
        body.insert("pending".into(), json!(settlement.held.len()));
    }
    if !problems.is_empty() {
        body.insert("problems".into(), Value::Array(problems));
    }
    body.insert("counters".into(), tally.counters_json());
    if detail.ledger {
        body.insert("ledger".into(), json!(entry.to_text()));
    }
    if !all_problems {
        trim_for_agent(&mut body);
    }
    let status = match settlement.verdict {
        Verdict::Done => 200,
        Verdict::Partial => {
            body.insert(
                "note".into(),
                json!("every record is settled: the delivered ones are stored, the ones under problems never will be; do not re-send this body"),
            );
            202
        }
        Verdict::Retry => {
            body.insert(
                "note".into(),
                json!("records of this body are not stored yet: send it again; what is stored is remembered and not sent twice"),
            );
            503
        }
        Verdict::GiveUp => 422,
    };
    let reply = Reply::json(status, &Value::Object(body));
    if status == 503 {
        let throttled = why_held.is_some_and(|(code, _)| code.record_verdict() == CodeVerdict::Throttled);
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

/// An answer of the proxy world made fit for an agent by a host that asked for the detail: the
/// `ledger` taken out, the problems cut to [`PROBLEMS_SHOWN`] (each code and message cut short)
/// with `problems_total`. Returns the ledger text, if there was one.
pub fn trim_for_agent(body: &mut serde_json::Map<String, Value>) -> Option<String> {
    let ledger = match body.remove("ledger") {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    if let Some(Value::Array(problems)) = body.get_mut("problems") {
        let total = problems.len();
        problems.truncate(PROBLEMS_SHOWN);
        for p in problems.iter_mut() {
            for (field, chars) in [("code", CODE_SHOWN), ("message", MESSAGE_SHOWN)] {
                if let Some(Value::String(text)) = p.get(field) {
                    let shown = cut(text, chars);
                    p[field] = Value::String(shown);
                }
            }
        }
        if total > PROBLEMS_SHOWN {
            body.insert("problems_total".into(), json!(total));
        }
    }
    ledger
}
