//! The one report shape of every door: counts of delivered, failed and rejected records, the
//! request counters, and a problem for every record not delivered (its line, its outcome, its
//! code, and why). `kinesis-ship --report`, the proxy's answers and the command world's summary
//! all come from a [`Tally`].

use serde_json::{json, Map, Value};

use crate::kinesis::{Code, Counters, Outcome, PutReport};

/// A record that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the input (or body) the record came from.
    pub line: usize,
    pub code: Code,
    pub message: String,
}

impl Problem {
    /// The problem `outcome` is, for the record of `line`; `None` when it was delivered.
    pub fn of(line: usize, outcome: &Outcome) -> Option<Problem> {
        let message = match outcome {
            Outcome::Delivered { .. } => return None,
            Outcome::Failed {
                message, attempts, ..
            } => format!("{message} (after {attempts} attempts)"),
            Outcome::Rejected(r) => r.message.clone(),
        };
        Some(Problem {
            line,
            code: outcome.code()?,
            message,
        })
    }

    /// `failed` or `rejected`.
    pub fn outcome(&self) -> &'static str {
        match self.code {
            Code::Rejected(_) => "rejected",
            _ => "failed",
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "line": self.line, "outcome": self.outcome(), "code": self.code.as_str(), "message": self.message })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} {}: {}",
            self.line,
            self.outcome(),
            self.code,
            self.message
        )
    }
}

/// The one warning a door logs for a put that cut partition keys: how many, and where the
/// first came from (`line 17`, `record 5 of the chunk`).
pub fn key_cut_warning(report: &PutReport, first: impl FnOnce(usize) -> String) -> Option<String> {
    let index = report.first_key_cut?;
    let count = report.counters.partition_keys_truncated;
    Some(format!(
        "{count} partition key{} longer than Kinesis's 256 characters cut to 256 (the first: {}); records whose keys differ only past that share a shard",
        if count == 1 { "" } else { "s" },
        first(index)
    ))
}

/// What became of the records of a run, a request or a chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records read (blank lines are not records).
    pub lines: usize,
    pub delivered: usize,
    pub failed: usize,
    pub rejected: usize,
    pub counters: Counters,
    /// Where the credentials came from (the last put's), without secrets.
    pub credential_source: String,
    /// Every record not delivered, in order.
    pub problems: Vec<Problem>,
}

impl Tally {
    /// Count the outcome of the record from `line`.
    pub fn add(&mut self, line: usize, outcome: &Outcome) {
        self.lines += 1;
        match outcome {
            Outcome::Delivered { .. } => self.delivered += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Rejected(_) => self.rejected += 1,
        }
        self.problems.extend(Problem::of(line, outcome));
    }

    /// Count a put of the records from `lines` (in the order they were put).
    pub fn add_report(&mut self, lines: impl IntoIterator<Item = usize>, report: &PutReport) {
        for (line, outcome) in lines.into_iter().zip(&report.outcomes) {
            self.add(line, outcome);
        }
        self.add_counters(&report.counters);
        self.credential_source.clone_from(&report.credential_source);
    }

    /// Take in another tally of the same run: its counts and its problems.
    pub fn merge(&mut self, other: Tally) {
        self.add_counts(&other);
        self.problems.extend(other.problems);
    }

    /// Count what `other` counted (not its problems): totals over many puts.
    pub fn add_counts(&mut self, other: &Tally) {
        self.lines += other.lines;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.add_counters(&other.counters);
        self.credential_source.clone_from(&other.credential_source);
    }

    pub fn add_counters(&mut self, c: &Counters) {
        self.counters.requests += c.requests;
        self.counters.retries += c.retries;
        self.counters.throttled_records += c.throttled_records;
        self.counters.bytes_sent += c.bytes_sent;
        self.counters.credential_refreshes += c.credential_refreshes;
        self.counters.partition_keys_truncated += c.partition_keys_truncated;
    }

    /// Count a record the service stored, known from the host's own view of the exchange (after
    /// a trap, the component's report is lost).
    pub fn add_delivered(&mut self) {
        self.lines += 1;
        self.delivered += 1;
    }

    /// Count a record that has no outcome from the sink (a host's own failure, such as
    /// `ComponentTrap`).
    pub fn add_failure(&mut self, line: usize, code: Code, message: &str) {
        self.lines += 1;
        self.failed += 1;
        self.problems.push(Problem {
            line,
            code,
            message: message.to_string(),
        });
    }

    /// Every record was delivered.
    pub fn all_delivered(&self) -> bool {
        self.delivered == self.lines
    }

    /// One line for a log: `N lines: a delivered, b failed, c rejected; r requests, …`.
    pub fn summary(&self) -> String {
        format!(
            "{} lines: {} delivered, {} failed, {} rejected; {} requests, {} retries, {} throttled, {} bytes sent",
            self.lines,
            self.delivered,
            self.failed,
            self.rejected,
            self.counters.requests,
            self.counters.retries,
            self.counters.throttled_records,
            self.counters.bytes_sent
        )
    }

    /// The counts and problems, as every door reports them.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("delivered".into(), json!(self.delivered));
        m.insert("failed".into(), json!(self.failed));
        m.insert("rejected".into(), json!(self.rejected));
        m.insert(
            "problems".into(),
            Value::Array(self.problems.iter().map(Problem::to_json).collect()),
        );
        m
    }

    /// The request counters, as the proxy's answers carry them (for a host's metrics).
    pub fn counters_json(&self) -> Value {
        json!({
            "requests": self.counters.requests,
            "retries": self.counters.retries,
            "throttled_records": self.counters.throttled_records,
            "bytes_sent": self.counters.bytes_sent,
            "credential_refreshes": self.counters.credential_refreshes,
            "partition_keys_truncated": self.counters.partition_keys_truncated,
        })
    }

    /// [`Tally::to_json`] with the counters and the credential source: `kinesis-ship --report`.
    pub fn to_report(&self, warnings: &[String]) -> Value {
        let mut m = self.to_json();
        m.insert("lines".into(), json!(self.lines));
        m.insert("requests".into(), json!(self.counters.requests));
        m.insert("retries".into(), json!(self.counters.retries));
        m.insert("throttled_records".into(), json!(self.counters.throttled_records));
        m.insert("bytes_sent".into(), json!(self.counters.bytes_sent));
        m.insert(
            "credential_refreshes".into(),
            json!(self.counters.credential_refreshes),
        );
        m.insert(
            "partition_keys_truncated".into(),
            json!(self.counters.partition_keys_truncated),
        );
        m.insert("credential_source".into(), json!(self.credential_source));
        m.insert("warnings".into(), json!(warnings));
        Value::Object(m)
    }
}
