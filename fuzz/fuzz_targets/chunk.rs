//! Any chunk of records, under any of several configurations, against a Kinesis whose answers
//! are drawn from the input (success, per-record throttling, 5xx, garbage, broken transports):
//! exactly one outcome per event, a record that was answered as stored is never sent again,
//! and no panic.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kinesis_output::{Environment, Event, HttpRequest, HttpResponse, Outcome, Platform, Sink, TransportError};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const CONFIGS: [&str; 9] = [
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","retry_base_delay":0.001}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","partition_key":"pod","max_concurrent_requests":3,"batch_request_max_count":3}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","compression":"gzip","partition_key":"$.kubernetes.pod","batch_request_max_size":2048,"max_record_size":2000}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","aggregate":true,"fixed_partition_key":"k"}"#,
    r#"{"stream_name":"logs-${tag[1]}-${$.app}","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","inject":{"tag_key":"tag","time_key":"time"}}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","data_key":"log","max_record_size":64,"retries_on_batch_request":2}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","format":{"type":"single_value","message_key":"msg"},"chomp_record":true}"#,
    // Numbers of any size and form through Ruby's to_s and inspect, and as partition keys.
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","format":{"type":"hash"},"partition_key":"n"}"#,
    r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKIDFUZZ","aws_sec_key":"fuzz-secret","format":{"type":"ltsv"},"inject":{"time_key":"t","time_type":"float"},"partition_key":"$.a[0]"}"#,
];

/// Kinesis as the fuzzer decides, on a clock that moves only when the core sleeps.
struct Fuzzed<'a> {
    script: &'a [u8],
    next: usize,
    now: Duration,
    /// Records answered as stored, counting repeats.
    stored: usize,
}

impl Fuzzed<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.script.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        b
    }

    fn answer(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(_) => return Ok(HttpResponse { status: 200, body: b"{}".to_vec() }),
        };
        let sent = body["Records"].as_array().map_or(0, Vec::len);
        let choice = self.byte();
        match choice % 8 {
            0 => Err(TransportError::new("ConnectionRefused", "refused")),
            1 => Ok(HttpResponse { status: 500, body: br#"{"__type":"InternalFailure"}"#.to_vec() }),
            2 => Ok(HttpResponse { status: 400, body: br#"{"__type":"ProvisionedThroughputExceededException","message":"slow down"}"#.to_vec() }),
            3 => Ok(HttpResponse {
                status: 200,
                // Never a valid answer (it starts with `<`), whatever follows.
                body: std::iter::once(b'<')
                    .chain(self.script[self.next.min(self.script.len())..].iter().take(40).copied())
                    .collect(),
            }),
            _ => {
                let mut failed = 0;
                let mut entries = Vec::new();
                for _ in 0..sent {
                    if self.byte() % 3 == 0 {
                        failed += 1;
                        entries.push(json!({"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"throttled"}));
                    } else {
                        self.stored += 1;
                        entries.push(json!({"SequenceNumber":"1","ShardId":"shardId-000000000000"}));
                    }
                }
                let body = json!({"FailedRecordCount": failed, "Records": entries});
                Ok(HttpResponse { status: 200, body: body.to_string().into_bytes() })
            }
        }
    }
}

impl Environment for Fuzzed<'_> {
    fn var(&mut self, _name: &str) -> Option<String> {
        None
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("{path}: no files while fuzzing"))
    }
}

impl Platform for Fuzzed<'_> {
    fn wall_clock(&mut self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.now
    }
    fn monotonic(&mut self) -> Duration {
        self.now
    }
    fn sleep(&mut self, d: Duration) {
        self.now += d;
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.byte();
        }
    }
    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        requests.iter().map(|r| self.answer(r)).collect()
    }
    fn run_process(&mut self, command: &str) -> Result<String, String> {
        Err(format!("no processes while fuzzing: {command}"))
    }
}

fuzz_target!(|data: &[u8]| {
    // Layout: config selector, script length, the script, then records one per line.
    let [selector, script_len, rest @ ..] = data else {
        return;
    };
    let (script, records) = rest.split_at(usize::from(*script_len).min(rest.len()));
    let mut platform = Fuzzed {
        script,
        next: 0,
        now: Duration::ZERO,
        stored: 0,
    };
    let mut sink = match Sink::open(CONFIGS[usize::from(*selector) % CONFIGS.len()], &mut platform) {
        Ok(sink) => sink,
        Err(e) => panic!("a preset configuration failed: {} {}", e.field, e.message),
    };
    let events: Vec<Event> = records
        .split(|b| *b == b'\n')
        .take(64)
        .enumerate()
        .map(|(i, record)| Event {
            tag: if i % 2 == 0 { "app.web" } else { "kube.system" },
            seconds: 1_700_000_000 + i as i64,
            nanoseconds: (i as u32) * 1000,
            record,
        })
        .collect();
    let report = sink.put(&events, &mut platform);
    assert_eq!(report.outcomes.len(), events.len(), "one outcome per event");
    for outcome in &report.outcomes {
        if let Outcome::Failed { code, message, .. } = outcome {
            assert!(!code.as_str().is_empty() && !message.is_empty(), "a failure says why");
        }
    }
    // Each record answered as stored is one delivered event: a record sent again after it was
    // stored would be counted twice. (Aggregation packs several events into one record.)
    if usize::from(*selector) % CONFIGS.len() != 3 {
        let delivered = report
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Delivered { .. }))
            .count();
        assert_eq!(platform.stored, delivered, "a record answered as stored was sent again");
    }
});
