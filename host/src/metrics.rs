//! What `kinesis-ship serve` counts, served at `GET /metrics` in the Prometheus text format
//! (version 0.0.4). The names are the ones the Fluent Bit plugin gives its counters in Fluent
//! Bit's own metrics (`kinesis_output_records_total{outcome}`, `…_retries_total`, …), plus what
//! only a host sees: the PutRecords requests by status and their latency, the answers given to
//! agents, the instances that trapped.
//!
//! Records are counted from the component's answers (every answer carries its counts, its
//! problems and its counters); requests and their latency where the host sends them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// Upper bounds of the request-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters of one serve process. Every method takes `&self`: requests update it concurrently.
#[derive(Default)]
pub struct Metrics {
    delivered: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    failed_by_code: Labelled,
    rejected_by_kind: Labelled,
    throttled_records: AtomicU64,
    retries: AtomicU64,
    bytes_sent: AtomicU64,
    credential_refreshes: AtomicU64,
    keys_truncated: AtomicU64,
    traps: AtomicU64,
    requests_by_status: Labelled,
    latency: Histogram,
    answers_by_status: Labelled,
    in_flight: AtomicI64,
}

/// A counter per label value.
#[derive(Default)]
struct Labelled(Mutex<BTreeMap<String, u64>>);

impl Labelled {
    fn add(&self, label: &str, n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(label.to_string()).or_default() += n;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Default)]
struct Histogram {
    /// Observations at most `BUCKETS[i]` (not cumulative; summed when written).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A request in progress, counted in `kinesis_output_serve_requests_in_flight` until dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Count a request from an agent as being shipped (let in, not yet answered) until the
    /// guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// How many requests from agents are in progress.
    pub fn requests_in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count the answer given to an agent: its status, and the records, problems and counters
    /// its body reports (the proxy world's answer; other bodies count no records).
    pub fn answered(&self, status: u16, body: &[u8]) {
        self.answers_by_status.add(&status.to_string(), 1);
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let count = |name: &str| answer.get(name).and_then(Value::as_u64).unwrap_or(0);
        self.delivered.fetch_add(count("delivered"), Ordering::Relaxed);
        self.failed.fetch_add(count("failed"), Ordering::Relaxed);
        self.rejected.fetch_add(count("rejected"), Ordering::Relaxed);
        for problem in answer
            .get("problems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let code = problem.get("code").and_then(Value::as_str).unwrap_or("unknown");
            match problem.get("outcome").and_then(Value::as_str) {
                Some("rejected") => self.rejected_by_kind.add(code, 1),
                // Not stored yet: counted when they are stored or become final.
                Some("retrying") => {}
                _ => self.failed_by_code.add(code, 1),
            }
        }
        if let Some(Value::Object(c)) = answer.get("counters") {
            let counter = |name: &str| c.get(name).and_then(Value::as_u64).unwrap_or(0);
            self.throttled_records
                .fetch_add(counter("throttled_records"), Ordering::Relaxed);
            self.retries.fetch_add(counter("retries"), Ordering::Relaxed);
            self.bytes_sent
                .fetch_add(counter("bytes_sent"), Ordering::Relaxed);
            self.credential_refreshes
                .fetch_add(counter("credential_refreshes"), Ordering::Relaxed);
            self.keys_truncated
                .fetch_add(counter("partition_keys_truncated"), Ordering::Relaxed);
        }
    }

    /// Count one call the component made to `service` (`kinesis`: PutRecords, `firehose`:
    /// PutRecordBatch): the status of its answer (`None`: no answer, a network error) and the
    /// time to the answer's head.
    pub fn put_records(&self, service: &str, status: Option<u16>, took: Duration) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.requests_by_status.add(
            &format!("service=\"{}\",status=\"{}\"", escape(service), escape(&status)),
            1,
        );
        self.latency.observe(took);
    }

    /// Count an instance that trapped.
    pub fn trapped(&self) {
        self.traps.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            &mut out,
            "kinesis_output_records_total",
            "counter",
            "Records by outcome: delivered (stored), failed (sent, not stored), rejected (never sent).",
            [
                ("outcome=\"delivered\"".to_string(), get(&self.delivered)),
                ("outcome=\"failed\"".to_string(), get(&self.failed)),
                ("outcome=\"rejected\"".to_string(), get(&self.rejected)),
            ],
        );
        family(
            &mut out,
            "kinesis_output_failed_records_total",
            "counter",
            "Records not stored, by the code of their last failure.",
            labelled("code", &self.failed_by_code),
        );
        family(
            &mut out,
            "kinesis_output_rejected_records_total",
            "counter",
            "Records never sent, by why.",
            labelled("kind", &self.rejected_by_kind),
        );
        for (name, help, value) in [
            (
                "kinesis_output_throttled_records_total",
                "Record failures that were throttling, per record or for a whole request.",
                &self.throttled_records,
            ),
            (
                "kinesis_output_retries_total",
                "Records sent again after a retryable failure.",
                &self.retries,
            ),
            (
                "kinesis_output_bytes_sent_total",
                "Request body bytes sent (PutRecords and PutRecordBatch).",
                &self.bytes_sent,
            ),
            (
                "kinesis_output_credential_refreshes_total",
                "Credentials fetched from their source (each serve request opens a fresh instance).",
                &self.credential_refreshes,
            ),
            (
                "kinesis_output_partition_keys_truncated_total",
                "Partition keys longer than Kinesis's 256 characters, cut to 256.",
                &self.keys_truncated,
            ),
            (
                "kinesis_output_traps_total",
                "Component instances that trapped (their request answered 503 or 202 by what was stored).",
                &self.traps,
            ),
        ] {
            family(&mut out, name, "counter", help, [(String::new(), get(value))]);
        }
        family(
            &mut out,
            "kinesis_output_requests_total",
            "counter",
            "PutRecords (service kinesis) and PutRecordBatch (service firehose) requests sent, by the HTTP status of the answer (error: none came).",
            self.requests_by_status.snapshot(),
        );
        let name = "kinesis_output_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} PutRecords and PutRecordBatch requests: time from sending to the answer's head."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.latency.buckets) {
            cumulative += get(n);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = get(&self.latency.count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.latency.sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        family(
            &mut out,
            "kinesis_output_serve_responses_total",
            "counter",
            "Answers given to agents, by HTTP status.",
            labelled("status", &self.answers_by_status),
        );
        let name = "kinesis_output_serve_requests_in_flight";
        let _ = writeln!(
            out,
            "# HELP {name} Requests from agents let in and not yet answered."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", self.requests_in_flight());
        out
    }
}

fn labelled(label: &str, counters: &Labelled) -> Vec<(String, u64)> {
    counters
        .snapshot()
        .into_iter()
        .map(|(value, n)| (format!("{label}=\"{}\"", escape(&value)), n))
        .collect()
}

/// One metric family: HELP, TYPE and a sample per label set (`""`: no labels).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    }

    #[test]
    fn answers_and_requests_become_prometheus_samples() {
        let m = Metrics::default();
        m.answered(
            202,
            br#"{"delivered":3,"failed":1,"rejected":2,"problems":[
                {"line":2,"outcome":"failed","code":"ProvisionedThroughputExceededException","message":"x"},
                {"line":4,"outcome":"rejected","code":"NotJson","message":"y"},
                {"line":5,"outcome":"rejected","code":"NotJson","message":"y"}],
               "counters":{"requests":4,"retries":3,"throttled_records":2,"bytes_sent":900,"credential_refreshes":1,"partition_keys_truncated":2}}"#,
        );
        m.answered(
            200,
            br#"{"delivered":5,"failed":0,"rejected":0,"counters":{"retries":0}}"#,
        );
        m.answered(413, b"{\"error\":\"too large\"}");
        m.answered(404, b"not json");
        m.put_records("kinesis", Some(200), Duration::from_millis(3));
        m.put_records("kinesis", Some(400), Duration::from_millis(70));
        m.put_records("firehose", None, Duration::from_secs(40));
        m.trapped();
        let _busy = m.in_flight();
        let text = m.render();
        assert_eq!(
            sample(&text, "kinesis_output_records_total{outcome=\"delivered\"}"),
            8
        );
        assert_eq!(
            sample(&text, "kinesis_output_records_total{outcome=\"failed\"}"),
            1
        );
        assert_eq!(
            sample(&text, "kinesis_output_records_total{outcome=\"rejected\"}"),
            2
        );
        assert_eq!(
            sample(
                &text,
                "kinesis_output_failed_records_total{code=\"ProvisionedThroughputExceededException\"}"
            ),
            1
        );
        assert_eq!(
            sample(&text, "kinesis_output_rejected_records_total{kind=\"NotJson\"}"),
            2
        );
        assert_eq!(sample(&text, "kinesis_output_retries_total "), 3);
        assert_eq!(sample(&text, "kinesis_output_partition_keys_truncated_total "), 2);
        assert_eq!(sample(&text, "kinesis_output_throttled_records_total "), 2);
        assert_eq!(sample(&text, "kinesis_output_bytes_sent_total "), 900);
        assert_eq!(sample(&text, "kinesis_output_credential_refreshes_total "), 1);
        assert_eq!(sample(&text, "kinesis_output_traps_total "), 1);
        assert_eq!(
            sample(
                &text,
                "kinesis_output_requests_total{service=\"kinesis\",status=\"200\"}"
            ),
            1
        );
        assert_eq!(
            sample(
                &text,
                "kinesis_output_requests_total{service=\"firehose\",status=\"error\"}"
            ),
            1
        );
        // Buckets are cumulative; 40 s is past the last bound and only in +Inf.
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("kinesis_output_request_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!((bucket("0.005"), bucket("0.05"), bucket("0.1")), (1, 1, 2));
        assert_eq!((bucket("30"), bucket("+Inf")), (2, 3));
        assert_eq!(sample(&text, "kinesis_output_request_duration_seconds_count"), 3);
        assert_eq!(
            sample(&text, "kinesis_output_serve_responses_total{status=\"413\"}"),
            1
        );
        assert_eq!(sample(&text, "kinesis_output_serve_requests_in_flight"), 1);
        // Every family is declared once, before its samples.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert_eq!(text.matches(&format!("# TYPE {family} ")).count(), 1, "{line}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
