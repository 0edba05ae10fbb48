//! The delivery loop against a scripted fake platform: deterministic time, randomness and
//! responses.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::platform::TransportCode;

type Handler = Box<dyn FnMut(usize, &Value) -> Result<HttpResponse, TransportError>>;
type Endpoint = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, TransportError>>;

/// A platform whose clock moves only when the core sleeps.
struct Fake {
    now: Duration,
    sleeps: Vec<Duration>,
    random_counter: u8,
    env: HashMap<String, String>,
    /// Called with the request number and the parsed body.
    handler: Handler,
    requests: Vec<HttpRequest>,
    /// Answers requests to credential endpoints (anything not PutRecords).
    credentials_endpoint: Option<Endpoint>,
    /// Hash bodies as a host does (`payload-sha256`), counting them; `None`: the core hashes.
    host_hashes: Option<usize>,
    /// Every record the fake stored: (data, partition key).
    stored: Vec<(Vec<u8>, String)>,
    batch_sizes: Vec<usize>,
    /// What the sink told the platform it had stored, call by call.
    told_stored: Vec<Vec<u32>>,
    /// How long each PutRecords exchange takes, by request number (none: no time). One that
    /// takes longer than its `within` is processed (its records stored) and its answer lost.
    latency: Vec<Duration>,
}

impl Fake {
    fn new(handler: impl FnMut(usize, &Value) -> Result<HttpResponse, TransportError> + 'static) -> Fake {
        Fake {
            now: Duration::ZERO,
            sleeps: Vec::new(),
            random_counter: 0,
            env: HashMap::new(),
            handler: Box::new(handler),
            requests: Vec::new(),
            credentials_endpoint: None,
            host_hashes: None,
            stored: Vec::new(),
            batch_sizes: Vec::new(),
            told_stored: Vec::new(),
            latency: Vec::new(),
        }
    }
}

impl Environment for Fake {
    fn var(&mut self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("{path}: no files here"))
    }
}

impl Platform for Fake {
    fn wall_clock(&mut self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.now
    }
    fn monotonic(&mut self) -> Duration {
        self.now
    }
    fn sleep(&mut self, d: Duration) {
        self.sleeps.push(d);
        self.now += d;
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.random_counter;
            self.random_counter = self.random_counter.wrapping_add(1);
        }
    }
    fn run_process(&mut self, command: &str) -> Result<String, String> {
        Err(format!("no process runner for {command}"))
    }
    fn stored(&mut self, events: &[u32]) {
        self.told_stored.push(events.to_vec());
    }
    fn sha256_hex(&mut self, data: &[u8]) -> Option<String> {
        use sha2::Digest as _;
        let count = self.host_hashes.as_mut()?;
        *count += 1;
        Some(
            sha2::Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        let mut out = Vec::new();
        // Requests sent together take as long as the slowest.
        let mut longest = Duration::ZERO;
        for r in requests {
            if !r.headers.iter().any(|(k, _)| k == "x-amz-target") {
                // A credential endpoint.
                let response = match &mut self.credentials_endpoint {
                    Some(endpoint) => endpoint(&r),
                    None => Err(TransportError::new("ConnectionRefused", "no credential endpoint")),
                };
                let response = self.hang_out(&r, response, &mut longest);
                self.requests.push(r);
                out.push(response);
                continue;
            }
            let body: Value = serde_json::from_slice(&r.body).expect("the core sends JSON");
            let n = self.requests.len();
            self.batch_sizes.push(body["Records"].as_array().unwrap().len());
            let response = (self.handler)(n, &body);
            // Remember what a 200 stored, to check that nothing is stored twice.
            if let Ok(resp) = &response {
                if resp.status == 200 {
                    if let Ok(parsed) = serde_json::from_slice::<Value>(&resp.body) {
                        let entries = parsed["Records"]
                            .as_array()
                            .or_else(|| parsed["RequestResponses"].as_array());
                        if let Some(entries) = entries {
                            for (rec, entry) in body["Records"].as_array().unwrap().iter().zip(entries) {
                                if entry.get("SequenceNumber").is_some() || entry.get("RecordId").is_some() {
                                    self.stored.push(decode(rec));
                                }
                            }
                        }
                    }
                }
            }
            let mut response = self.hang_out(&r, response, &mut longest);
            if let Some(&took) = self.latency.get(n) {
                if took > r.within {
                    longest = longest.max(r.within);
                    response = Err(TransportError::new(
                        "ConnectionReadTimeout",
                        "the answer came too late",
                    ));
                } else {
                    longest = longest.max(took);
                }
            }
            self.requests.push(r);
            out.push(response);
        }
        self.now += longest;
        out
    }
}

impl Fake {
    /// A handler's `Hang`: the endpoint never answers, so the request takes all the time it is
    /// allowed (`within`), then times out.
    fn hang_out(
        &mut self,
        r: &HttpRequest,
        response: Result<HttpResponse, TransportError>,
        longest: &mut Duration,
    ) -> Result<HttpResponse, TransportError> {
        match response {
            Err(e) if e.code == TransportCode::Other("Hang".into()) => {
                *longest = (*longest).max(r.within);
                Err(TransportError::new("ConnectionReadTimeout", "no answer"))
            }
            other => other,
        }
    }
}

fn hang() -> Result<HttpResponse, TransportError> {
    Err(TransportError::new("Hang", ""))
}

fn decode(rec: &Value) -> (Vec<u8>, String) {
    let data = base64::engine::general_purpose::STANDARD
        .decode(rec["Data"].as_str().unwrap())
        .unwrap();
    // Firehose records have no key: their data stands for it.
    let key = match rec["PartitionKey"].as_str() {
        Some(k) => k.to_string(),
        None => String::from_utf8_lossy(&data).into_owned(),
    };
    (data, key)
}

/// A 200 response where `fail(position in request, record)` picks which entries fail and how.
fn respond(body: &Value, mut fail: impl FnMut(usize, &Value) -> Option<&'static str>) -> HttpResponse {
    let records = body["Records"].as_array().unwrap();
    let mut failed = 0;
    let entries: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| match fail(i, r) {
            Some(code) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": format!("{code} for entry {i}")})
            }
            None => {
                json!({"SequenceNumber": format!("seq-{}", decode(r).1), "ShardId": "shardId-000000000000"})
            }
        })
        .collect();
    HttpResponse {
        status: 200,
        body: serde_json::to_vec(&json!({"FailedRecordCount": failed, "Records": entries})).unwrap(),
    }
}

fn ok(body: &Value) -> Result<HttpResponse, TransportError> {
    Ok(respond(body, |_, _| None))
}

fn error(status: u16, kind: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status,
        body: serde_json::to_vec(&json!({"__type": kind, "message": format!("{kind} happened")})).unwrap(),
    })
}

fn sink(extra: &str) -> Sink {
    let json = format!(
        r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE","partition_key":"k"{extra}}}"#
    );
    open(&json)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn open(json: &str) -> Sink {
    let config = Config::from_json(json, &mut no_env).unwrap();
    let credentials = crate::config::resolve(&config, &mut no_env).unwrap();
    Sink::new(config, credentials)
}

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| serde_json::to_vec(&json!({"k": format!("key-{i}"), "log": format!("line {i}")})).unwrap())
        .collect()
}

fn events(records: &[Vec<u8>]) -> Vec<Event<'_>> {
    records
        .iter()
        .map(|r| Event {
            tag: "kube.var.log",
            seconds: 1_700_000_000,
            nanoseconds: 0,
            record: r,
        })
        .collect()
}

/// The code, message and attempts of a failed outcome.
fn failed(o: &Outcome) -> (&str, &str, u32) {
    match o {
        Outcome::Failed {
            code,
            message,
            attempts,
        } => (code.as_str(), message, *attempts),
        other => panic!("expected failed, got {other:?}"),
    }
}

fn assert_delivered_once(fake: &Fake, n: usize) {
    let mut keys: Vec<&str> = fake.stored.iter().map(|(_, k)| k.as_str()).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "a record was stored twice");
    assert_eq!(keys.len(), n, "not every record was stored");
}

/// A key past 256 characters is cut (Kinesis takes no more) and counted, and the report names
/// the first record it happened to, for the door's one warning a put.
#[test]
fn cut_partition_keys_are_counted_and_the_first_named() {
    let recs: Vec<Vec<u8>> = [
        json!({"k": "short"}),
        json!({"k": "a".repeat(300)}),
        json!({"k": "b".repeat(256)}),
        json!({"k": "ü".repeat(257)}),
    ]
    .iter()
    .map(|r| serde_json::to_vec(r).unwrap())
    .collect();
    let mut fake = Fake::new(|_, body| ok(body));
    let report = sink("").put(&events(&recs), &mut fake);
    assert_eq!(report.counters.partition_keys_truncated, 2);
    assert_eq!(report.first_key_cut, Some(1));
    let keys: Vec<usize> = fake.stored.iter().map(|(_, k)| k.chars().count()).collect();
    assert_eq!(keys, vec![5, 256, 256, 256]);
    let warning = crate::front::report::key_cut_warning(&report, |i| format!("line {}", i + 10)).unwrap();
    assert!(
        warning.starts_with(
            "2 partition keys longer than Kinesis's 256 characters cut to 256 (the first: line 11)"
        ),
        "{warning}"
    );
    let report = sink("").put(&events(&records(3)), &mut Fake::new(|_, body| ok(body)));
    assert_eq!(
        (report.counters.partition_keys_truncated, report.first_key_cut),
        (0, None)
    );
    assert!(crate::front::report::key_cut_warning(&report, |i| i.to_string()).is_none());
}

#[test]
fn a_chunk_is_split_into_requests_and_every_record_delivered() {
    let recs = records(1200);
    let mut fake = Fake::new(|_, body| ok(body));
    let report = sink("").put(&events(&recs), &mut fake);
    assert_eq!(fake.batch_sizes, vec![500, 500, 200]);
    assert_eq!(report.outcomes.len(), 1200);
    for (i, o) in report.outcomes.iter().enumerate() {
        assert_eq!(
            o,
            &Outcome::Delivered {
                shard_id: "shardId-000000000000".into(),
                sequence_number: format!("seq-key-{i}")
            }
        );
    }
    assert_eq!(report.counters.requests, 3);
    assert_eq!(report.counters.retries, 0);
    assert_eq!(
        report.counters.bytes_sent,
        fake.requests.iter().map(|r| r.body.len() as u64).sum::<u64>()
    );
    assert_delivered_once(&fake, 1200);
    // Bytes and keys arrive as formatted.
    assert_eq!(
        fake.stored[7],
        (
            b"{\"k\":\"key-7\",\"log\":\"line 7\"}\n".to_vec(),
            "key-7".to_string()
        )
    );
    assert!(fake.sleeps.is_empty());
}

#[test]
fn requests_carry_the_kinesis_headers_and_a_signature() {
    let recs = records(1);
    let mut fake = Fake::new(|_, body| ok(body));
    sink(r#","endpoint":"http://127.0.0.1:4567""#).put(&events(&recs), &mut fake);
    let r = &fake.requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "http://127.0.0.1:4567/");
    let header = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(header("x-amz-target"), Some("Kinesis_20131202.PutRecords"));
    assert_eq!(header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(header("authorization")
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 Credential=AKID/"));
    assert!(header("x-amz-date").is_some());
    assert!(header("host").is_none(), "the transport sets host");
}

#[test]
fn only_failed_records_are_sent_again() {
    let recs = records(10);
    let mut fake = Fake::new(|n, body| {
        Ok(respond(body, |i, _| match (n, i % 3) {
            (0, 0) => Some("ProvisionedThroughputExceededException"),
            (0, 1) => Some("InternalFailure"),
            _ => None,
        }))
    });
    let report = sink("").put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered));
    assert_eq!(fake.batch_sizes, vec![10, 7]);
    let resent: Vec<String> = serde_json::from_slice::<Value>(&fake.requests[1].body).unwrap()["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| decode(r).1)
        .collect();
    assert_eq!(
        resent,
        ["key-0", "key-1", "key-3", "key-4", "key-6", "key-7", "key-9"]
    );
    assert_delivered_once(&fake, 10);
    assert_eq!(report.counters.requests, 2);
    assert_eq!(report.counters.retries, 7);
    assert_eq!(report.counters.throttled_records, 4);
    assert_eq!(fake.sleeps.len(), 1);
}

#[test]
fn backoff_doubles_from_the_base_with_five_percent_jitter() {
    let recs = records(2);
    let mut fake = Fake::new(|_, body| {
        Ok(respond(body, |_, _| {
            Some("ProvisionedThroughputExceededException")
        }))
    });
    let report = sink(r#","retries_on_batch_request":4"#).put(&events(&recs), &mut fake);
    assert_eq!(fake.requests.len(), 5);
    let expected = [0.3, 0.6, 1.2, 2.4];
    assert_eq!(fake.sleeps.len(), 4);
    for (got, want) in fake.sleeps.iter().zip(expected) {
        let got = got.as_secs_f64();
        assert!(
            got >= want * 0.95 - 1e-9 && got <= want * 1.05 + 1e-9,
            "{got} vs {want}"
        );
    }
    for o in &report.outcomes {
        let (code, message, attempts) = failed(o);
        assert_eq!(code, "ProvisionedThroughputExceededException");
        assert_eq!(attempts, 5);
        assert!(
            message.contains("not stored after 4 retries in this put"),
            "{message}"
        );
    }
    assert_eq!(report.counters.throttled_records, 10);
}

#[test]
fn a_round_that_stores_most_records_resets_the_backoff_and_a_storm_does_not() {
    // Each round stores the first half of what it sends: with reset on, every wait is the
    // base delay.
    let halves = |_: usize, body: &Value| {
        let n = body["Records"].as_array().map_or(0, Vec::len);
        Ok(respond(body, move |i, _| {
            (i >= n.div_ceil(2)).then_some("ProvisionedThroughputExceededException")
        }))
    };
    let recs = records(8);
    let mut fake = Fake::new(halves);
    sink("").put(&events(&recs), &mut fake);
    assert_eq!(fake.batch_sizes, vec![8, 4, 2, 1]);
    assert!(
        fake.sleeps
            .iter()
            .all(|d| (d.as_secs_f64() - 0.3).abs() <= 0.015 + 1e-9),
        "{:?}",
        fake.sleeps
    );
    // A storm that lets one record of each request through (a quarter, then a third) is not
    // progress: the waits keep doubling until a round stores half.
    let storm = |_: usize, body: &Value| {
        Ok(respond(body, |i, _| {
            (i > 0).then_some("ProvisionedThroughputExceededException")
        }))
    };
    let recs = records(4);
    let mut fake = Fake::new(storm);
    sink("").put(&events(&recs), &mut fake);
    assert_eq!(fake.batch_sizes, vec![4, 3, 2, 1]);
    let secs: Vec<f64> = fake.sleeps.iter().map(Duration::as_secs_f64).collect();
    for (got, want) in secs.iter().zip([0.3, 0.6, 0.3]) {
        assert!((got - want).abs() <= want * 0.05 + 1e-9, "{secs:?}");
    }
    assert_eq!(secs.len(), 3);
    assert_delivered_once(&fake, 4);
    // The platform heard of each stored record as its answer came, by its place in the put.
    assert_eq!(fake.told_stored, vec![vec![0], vec![1], vec![2], vec![3]]);

    let script = storm;
    let mut fake = Fake::new(script);
    sink(r#","reset_backoff_if_success":false"#).put(&events(&recs), &mut fake);
    let secs: Vec<f64> = fake.sleeps.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs.len(), 3);
    assert!(
        (secs[1] / secs[0] - 2.0).abs() < 0.25 && (secs[2] / secs[1] - 2.0).abs() < 0.25,
        "{secs:?}"
    );
    assert_delivered_once(&fake, 4);
}

#[test]
fn waits_are_capped_and_the_deadline_is_kept() {
    assert_eq!(
        backoff_delay(Duration::from_millis(300), Duration::from_secs(30), 20, 0.5),
        Duration::from_secs(30)
    );
    let low = backoff_delay(Duration::from_millis(300), Duration::from_secs(30), 0, 0.0);
    assert!((low.as_secs_f64() - 0.285).abs() < 1e-6, "{low:?}");
    let high = backoff_delay(Duration::from_millis(300), Duration::from_secs(30), 1, 0.999_999);
    assert!((high.as_secs_f64() - 0.63).abs() < 1e-6, "{high:?}");
    let recs = records(1);
    let mut fake = Fake::new(|_, _| error(500, "InternalFailure"));
    let report = sink(r#","put_deadline":1.0"#).put(&events(&recs), &mut fake);
    // Waits of ~0.3 and ~0.6 fit in one second; the third (~1.2) would not.
    assert_eq!(fake.sleeps.len(), 2);
    let (code, message, attempts) = failed(&report.outcomes[0]);
    assert_eq!(code, "InternalFailure");
    assert_eq!(attempts, 3);
    assert!(message.contains("put_deadline"), "{message}");
}

#[test]
fn whole_request_failures_are_retried_on_the_same_schedule() {
    let recs = records(3);
    let mut fake = Fake::new(|n, body| match n {
        0 => error(500, "InternalFailure"),
        1 => Err(TransportError::new("ConnectionRefused", "refused")),
        2 => error(400, "LimitExceededException"),
        3 => Ok(HttpResponse {
            status: 200,
            body: b"{\"Records\":[{\"SequenceNu".to_vec(),
        }),
        _ => ok(body),
    });
    let report = sink("").put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered));
    assert_eq!(fake.requests.len(), 5);
    assert_eq!(fake.sleeps.len(), 4);
    assert_eq!(report.counters.throttled_records, 3);
    assert_eq!(report.counters.retries, 12);
}

#[test]
fn last_error_is_reported_when_retries_run_out() {
    let recs = records(1);
    let mut fake = Fake::new(|_, _| Err(TransportError::new("ConnectionRefused", "connection refused")));
    let report = sink(r#","retries_on_batch_request":1,"retry_base_delay":0"#).put(&events(&recs), &mut fake);
    let (code, message, attempts) = failed(&report.outcomes[0]);
    assert_eq!(code, "NetworkError");
    assert!(message.contains("ConnectionRefused"), "{message}");
    assert_eq!(attempts, 2);
}

#[test]
fn non_retryable_errors_fail_at_once() {
    for kind in [
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
        "InvalidArgumentException",
    ] {
        let recs = records(3);
        let mut fake = Fake::new(move |_, _| error(400, kind));
        let report = sink("").put(&events(&recs), &mut fake);
        assert_eq!(fake.requests.len(), 1, "{kind}");
        assert!(fake.sleeps.is_empty());
        for o in report.outcomes {
            assert_eq!(
                o,
                Outcome::Failed {
                    code: Code::Service(kind.into()),
                    message: format!("{kind} happened"),
                    attempts: 1
                }
            );
        }
    }
    // A per-record error that no retry can fix fails that record only.
    let recs = records(3);
    let mut fake = Fake::new(|_, body| {
        Ok(respond(body, |i, _| {
            (i == 1).then_some("KMSAccessDeniedException")
        }))
    });
    let report = sink("").put(&events(&recs), &mut fake);
    assert!(report.outcomes[0].is_delivered() && report.outcomes[2].is_delivered());
    assert!(
        matches!(&report.outcomes[1], Outcome::Failed { code, attempts: 1, .. } if code.as_str() == "KMSAccessDeniedException")
    );
    assert_eq!(fake.requests.len(), 1);
}

#[test]
fn bad_records_are_rejected_and_the_rest_ship() {
    let big = serde_json::to_vec(&json!({"k": "big", "log": "x".repeat(200)})).unwrap();
    let recs: Vec<Vec<u8>> = vec![
        br#"{"k":"a"}"#.to_vec(),
        b"not json".to_vec(),
        br#"{"nokey":1}"#.to_vec(),
        big,
        b"[1]".to_vec(),
        br#"{"k":"b"}"#.to_vec(),
    ];
    let mut fake = Fake::new(|_, body| ok(body));
    let report = sink(r#","max_record_size":100"#).put(&events(&recs), &mut fake);
    let kinds: Vec<Option<RejectionKind>> = report
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::Rejected(r) => Some(r.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            None,
            Some(RejectionKind::NotJson),
            Some(RejectionKind::NoPartitionKey),
            Some(RejectionKind::TooLarge),
            Some(RejectionKind::NotAnObject),
            None
        ]
    );
    assert!(report.outcomes[0].is_delivered() && report.outcomes[5].is_delivered());
    assert_eq!(fake.batch_sizes, vec![2]);
}

#[test]
fn batches_respect_count_and_bytes() {
    assert_eq!(plan_batches([10, 10, 10], 2, 100), vec![0..2, 2..3]);
    assert_eq!(
        plan_batches([60, 40, 1, 100, 5], 500, 100),
        vec![0..2, 2..3, 3..4, 4..5]
    );
    assert_eq!(
        plan_batches(std::iter::empty(), 500, 100),
        Vec::<std::ops::Range<usize>>::new()
    );
    // Request size counts data + key, as the service does.
    let recs: Vec<Vec<u8>> = (0..10)
        .map(|i| serde_json::to_vec(&json!({"k": format!("{i:04}"), "p": "y".repeat(80)})).unwrap())
        .collect();
    let size = recs[0].len() + 1 + 4;
    let mut fake = Fake::new(|_, body| ok(body));
    sink(&format!(
        r#","batch_request_max_size":{},"max_record_size":{}"#,
        size * 3,
        size
    ))
    .put(&events(&recs), &mut fake);
    assert_eq!(fake.batch_sizes, vec![3, 3, 3, 1]);
}

#[test]
fn concurrent_waves_send_several_requests_at_once() {
    let recs = records(10);
    let mut fake = Fake::new(|_, body| ok(body));
    let report =
        sink(r#","batch_request_max_count":2,"max_concurrent_requests":3"#).put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered));
    assert_eq!(fake.batch_sizes, vec![2, 2, 2, 2, 2]);
    assert_eq!(report.counters.requests, 5);
}

#[test]
fn random_keys_are_32_hex_characters() {
    let recs = vec![br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec()];
    let json = r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE"}"#;
    let mut s = open(json);
    let mut fake = Fake::new(|_, body| ok(body));
    s.put(&events(&recs), &mut fake);
    let k0 = &fake.stored[0].1;
    let k1 = &fake.stored[1].1;
    assert_eq!(k0.len(), 32);
    assert!(k0
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_ne!(k0, k1);
}

#[test]
fn open_reads_the_environment_through_the_platform() {
    let mut fake = Fake::new(|_, body| ok(body));
    fake.env.insert("AWS_REGION".into(), "eu-central-1".into());
    fake.env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDENV".into());
    fake.env
        .insert("AWS_SECRET_ACCESS_KEY".into(), "ENVSECRET".into());
    let s = Sink::open(r#"{"stream_name":"s"}"#, &mut fake).unwrap();
    assert_eq!(s.config().endpoint, "https://kinesis.eu-central-1.amazonaws.com");
    assert!(!format!("{s:?}").contains("ENVSECRET"));
    let e = Sink::open(r#"{"stream_name":"s","batch_request_max_count":501}"#, &mut fake).unwrap_err();
    assert_eq!(
        e.to_string(),
        "batch_request_max_count: 501 exceeds the limit of 500"
    );
}

#[test]
fn an_empty_chunk_sends_nothing() {
    let mut fake = Fake::new(|_, body| ok(body));
    let report = sink("").put(&[], &mut fake);
    assert!(report.outcomes.is_empty());
    assert!(fake.requests.is_empty());
}

#[test]
fn one_put_routes_records_to_several_streams() {
    let recs: Vec<Vec<u8>> = (0..7)
        .map(|i| {
            serde_json::to_vec(
                &json!({"k": format!("key-{i}"), "app": if i % 2 == 0 { "web" } else { "db" }}),
            )
            .unwrap()
        })
        .chain([br#"{"k":"x"}"#.to_vec()])
        .collect();
    let mut fake = Fake::new(|_, body| ok(body));
    let report =
        sink(r#","stream_name":"logs-${$.app}","batch_request_max_count":3"#).put(&events(&recs), &mut fake);
    // Per stream, in input order, in batches of at most three.
    let streams: Vec<(String, usize)> = fake
        .requests
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (
                v["StreamName"].as_str().unwrap().to_string(),
                v["Records"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        streams,
        [
            ("logs-db".to_string(), 3),
            ("logs-web".to_string(), 3),
            ("logs-web".to_string(), 1)
        ]
    );
    for (i, o) in report.outcomes.iter().take(7).enumerate() {
        assert_eq!(
            o,
            &Outcome::Delivered {
                shard_id: "shardId-000000000000".into(),
                sequence_number: format!("seq-key-{i}")
            }
        );
    }
    let Outcome::Rejected(r) = &report.outcomes[7] else {
        panic!("{:?}", report.outcomes[7])
    };
    assert_eq!(r.kind, RejectionKind::NoStreamName);
    assert!(r.message.contains("$.app"), "{}", r.message);
}

/// The user records inside a KPL aggregate, checking its magic and digest (a minimal reader
/// for unit tests; the official deaggregator checks the same bytes in the integration tests).
fn unpack(data: &[u8]) -> (Vec<String>, Vec<Vec<u8>>) {
    use md5::{Digest, Md5};
    assert_eq!(&data[..4], &crate::kinesis::aggregate::MAGIC);
    let (message, digest) = data[4..].split_at(data.len() - 20);
    assert_eq!(digest, Md5::digest(message).as_slice());
    let varint = |b: &[u8], i: &mut usize| {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            n |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return n;
            }
            shift += 7;
        }
    };
    let (mut keys, mut records) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < message.len() {
        let tag = message[i];
        i += 1;
        let len = varint(message, &mut i);
        let body = &message[i..i + len];
        i += len;
        match tag {
            0x0a => keys.push(String::from_utf8(body.to_vec()).unwrap()),
            0x1a => {
                // partition_key_index (08 00), then data (1a len bytes).
                assert_eq!(&body[..2], &[0x08, 0x00]);
                let mut j = 3;
                let n = varint(body, &mut j);
                records.push(body[j..j + n].to_vec());
            }
            other => panic!("unexpected field tag {other:#x}"),
        }
    }
    (keys, records)
}

#[test]
fn aggregation_packs_records_and_shares_outcomes() {
    let recs: Vec<Vec<u8>> = (0..100)
        .map(|i| serde_json::to_vec(&json!({"k": format!("key-{}", i % 2), "n": i})).unwrap())
        .collect();
    // Grouped by partition key: two aggregates, one per key.
    let mut fake = Fake::new(|_, body| ok(body));
    let report = sink(r#","aggregate":true"#).put(&events(&recs), &mut fake);
    assert_eq!(fake.batch_sizes, vec![2]);
    let body: Value = serde_json::from_slice(&fake.requests[0].body).unwrap();
    for (g, rec) in body["Records"].as_array().unwrap().iter().enumerate() {
        let (data, key) = decode(rec);
        let (keys, inner) = unpack(&data);
        assert_eq!(keys, vec![format!("key-{g}")]);
        assert_eq!(key, format!("key-{g}"));
        assert_eq!(inner.len(), 50);
        assert_eq!(
            inner[1],
            format!("{{\"k\":\"key-{g}\",\"n\":{}}}\n", 2 + g).into_bytes()
        );
    }
    // Every event carries its aggregate's outcome.
    assert_eq!(report.outcomes[0], report.outcomes[98]);
    assert_eq!(report.outcomes[1], report.outcomes[99]);
    assert_ne!(report.outcomes[0], report.outcomes[1]);

    // A small limit splits aggregates; a record that cannot fit alone is rejected.
    let json = r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE",
        "aggregate":true,"fixed_partition_key":"fixed","max_record_size":100}"#;
    let mut s = open(json);
    let mut recs: Vec<Vec<u8>> = (0..10).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    recs.insert(3, serde_json::to_vec(&json!({"big": "x".repeat(300)})).unwrap());
    let mut fake = Fake::new(|_, body| ok(body));
    let report = s.put(&events(&recs), &mut fake);
    let Outcome::Rejected(r) = &report.outcomes[3] else {
        panic!("{:?}", report.outcomes[3])
    };
    assert_eq!(r.kind, RejectionKind::TooLarge);
    let body: Value = serde_json::from_slice(&fake.requests[0].body).unwrap();
    let mut total = 0;
    for rec in body["Records"].as_array().unwrap() {
        let (data, key) = decode(rec);
        assert_eq!(key, "fixed");
        assert!(data.len() + key.len() <= 100, "{}", data.len());
        total += unpack(&data).1.len();
    }
    assert_eq!(total, 10);
    assert!(body["Records"].as_array().unwrap().len() > 1);

    // Retries re-send whole aggregates; counters count user records.
    let recs: Vec<Vec<u8>> = (0..4).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    let json = r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE","aggregate":true,"retry_base_delay":0}"#;
    let mut s = open(json);
    let mut fake = Fake::new(|n, body| {
        Ok(respond(body, |_, _| {
            (n == 0).then_some("ProvisionedThroughputExceededException")
        }))
    });
    let report = s.put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered));
    assert_eq!(report.counters.throttled_records, 4);
    assert_eq!(report.counters.retries, 4);
    let (_, key) = decode(&serde_json::from_slice::<Value>(&fake.requests[0].body).unwrap()["Records"][0]);
    assert_eq!(key.len(), 32, "a random key per aggregate");
}

mod property {
    //! For any chunk and any sequence of answers: exactly one outcome per event, in input
    //! order, and no record stored twice.
    use super::*;
    use proptest::prelude::*;

    /// What one event holds.
    #[derive(Debug, Clone)]
    enum Shape {
        /// A keyed object: delivered, or failed with a reason.
        Good(String),
        /// Not JSON, or JSON that is not an object.
        Garbage(Vec<u8>),
        /// An object without the key field.
        Keyless,
        /// Over `max_record_size`.
        Huge,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            6 => ".{0,40}".prop_map(Shape::Good),
            1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Shape::Garbage),
            1 => Just(Shape::Keyless),
            1 => Just(Shape::Huge),
        ]
    }

    fn record(i: usize, shape: &Shape) -> Vec<u8> {
        match shape {
            Shape::Good(log) => serde_json::to_vec(&json!({"k": format!("key-{i}"), "log": log})).unwrap(),
            Shape::Garbage(bytes) => {
                let mut b = bytes.clone();
                b.insert(0, b'#'); // never an object
                b
            }
            Shape::Keyless => br#"{"log":"no key here"}"#.to_vec(),
            Shape::Huge => {
                serde_json::to_vec(&json!({"k": format!("key-{i}"), "log": "x".repeat(600)})).unwrap()
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn every_event_gets_one_outcome_in_order(
            shapes in proptest::collection::vec(shape(), 0..80),
            answers in proptest::collection::vec(any::<u8>(), 1..64),
            max_count in 1usize..12,
            concurrency in 1usize..5,
            retries in 0u32..6,
        ) {
            let recs: Vec<Vec<u8>> = shapes.iter().enumerate().map(|(i, s)| record(i, s)).collect();
            let mut s = sink(&format!(
                r#","max_record_size":400,"batch_request_max_count":{max_count},"max_concurrent_requests":{concurrency},"retries_on_batch_request":{retries},"retry_base_delay":0.001"#
            ));
            let mut fake = Fake::new(move |n, body| {
                let a = answers[n % answers.len()];
                match a % 6 {
                    0 => error(500, "InternalFailure"),
                    1 => Err(TransportError::new("ConnectionReset", "reset")),
                    2 => error(400, "ProvisionedThroughputExceededException"),
                    _ => Ok(respond(body, |pos, _| {
                        ((a >> (pos % 8)) & 1 == 1).then_some("ProvisionedThroughputExceededException")
                    })),
                }
            });
            let report = s.put(&events(&recs), &mut fake);
            prop_assert_eq!(report.outcomes.len(), shapes.len());
            for (i, (shape, outcome)) in shapes.iter().zip(&report.outcomes).enumerate() {
                match (shape, outcome) {
                    (Shape::Good(_), Outcome::Delivered { sequence_number, .. }) => {
                        prop_assert_eq!(sequence_number, &format!("seq-key-{i}"));
                    }
                    (Shape::Good(_), Outcome::Failed { code, message, attempts }) => {
                        prop_assert!(!code.as_str().is_empty() && !message.is_empty());
                        prop_assert!(*attempts >= 1);
                    }
                    (Shape::Garbage(_), Outcome::Rejected(r)) => {
                        prop_assert!(matches!(r.kind, RejectionKind::NotJson | RejectionKind::NotAnObject), "{:?}", r);
                    }
                    (Shape::Keyless, Outcome::Rejected(r)) => prop_assert_eq!(r.kind, RejectionKind::NoPartitionKey),
                    (Shape::Huge, Outcome::Rejected(r)) => prop_assert_eq!(r.kind, RejectionKind::TooLarge),
                    (shape, outcome) => prop_assert!(false, "event {} ({:?}) got {:?}", i, shape, outcome),
                }
            }
            let mut keys: Vec<&str> = fake.stored.iter().map(|(_, k)| k.as_str()).collect();
            keys.sort_unstable();
            let stored = keys.len();
            keys.dedup();
            prop_assert_eq!(stored, keys.len(), "a record was stored twice");
        }
    }
}

#[test]
fn a_request_the_host_refuses_fails_at_once_without_retries() {
    let recs = records(3);
    let mut s = sink(r#","retries_on_batch_request":5,"retry_base_delay":0.001"#);
    let mut fake = Fake::new(|_, _| {
        Err(TransportError {
            code: TransportCode::Denied,
            message: "the host refused the request to https://x.test: its egress policy does not allow it"
                .to_string(),
        })
    });
    let report = s.put(&events(&recs), &mut fake);
    for o in &report.outcomes {
        let (code, message, attempts) = failed(o);
        assert_eq!((code, attempts), ("HttpRequestDenied", 1));
        assert!(message.contains("egress policy"), "{message}");
    }
    assert_eq!(fake.requests.len(), 1, "no retries");
    assert!(fake.sleeps.is_empty());
}

/// `put_deadline` is a hard bound. The fake's endpoints take all the time a request allows when
/// they hang; whatever hangs, inside one put, the put returns by its deadline.
#[test]
fn put_deadline_bounds_every_wait_and_request_inside_a_put() {
    let deadline = Duration::from_secs(7);
    let within_deadline = |fake: &Fake, what: &str| {
        assert!(fake.now <= deadline, "{what}: the put took {:?}", fake.now);
        assert!(
            fake.requests
                .iter()
                .all(|r| r.within <= deadline && r.timeout <= deadline),
            "{what}: a request was allowed past the deadline"
        );
    };
    let recs = records(3);

    // Hung and stalled PutRecords requests (request_timeout 60 s, each may take 120 s).
    let mut fake = Fake::new(|_, _| hang());
    let report = sink(r#","put_deadline":7,"request_timeout":60"#).put(&events(&recs), &mut fake);
    within_deadline(&fake, "hung requests");
    let (code, message, _) = failed(&report.outcomes[0]);
    assert_eq!(code, "NetworkError");
    assert!(message.contains("put_deadline"), "{message}");

    // The instance profile failing at every attempt, with the most retries: its waits
    // (retry_base_delay × 2^n) would add up to hours; they stop at the deadline.
    let mut fake = Fake::new(|_, body| ok(body));
    fake.credentials_endpoint = Some(Box::new(|_| {
        Ok(HttpResponse {
            status: 500,
            body: b"busy".to_vec(),
        })
    }));
    let json = r#"{"stream_name":"s","region":"us-east-1","aws_iam_retries":20,"retry_base_delay":30,"retry_max_delay":3600,"put_deadline":7}"#;
    let mut imds = Sink::open(json, &mut fake).unwrap();
    let report = imds.put(&events(&recs), &mut fake);
    within_deadline(&fake, "IMDS failing");
    assert!(matches!(report.outcomes[0], Outcome::Failed { .. }));
    assert!(fake.stored.is_empty());

    // The instance profile hanging.
    let mut fake = Fake::new(|_, body| ok(body));
    fake.credentials_endpoint = Some(Box::new(|_| hang()));
    let mut imds = Sink::open(json, &mut fake).unwrap();
    imds.put(&events(&recs), &mut fake);
    within_deadline(&fake, "IMDS hanging");

    // STS hanging under assume_role_credentials.
    let mut fake = Fake::new(|_, body| ok(body));
    fake.credentials_endpoint = Some(Box::new(|_| hang()));
    let assume = r#","put_deadline":7,"assume_role_credentials":{"role_arn":"arn:aws:iam::123456789012:role/r","role_session_name":"s1"}"#;
    let report = sink(assume).put(&events(&recs), &mut fake);
    within_deadline(&fake, "STS hanging");
    let (code, _, _) = failed(&report.outcomes[0]);
    assert_eq!(code, "CredentialsUnavailable");
}

/// Exchanges that take 4 s each: once less than that is left of `put_deadline`, no call
/// starts. Started, it would be cut by the deadline after the service stored its records, which
/// would then be sent again by the next put (a re-post): a second copy.
#[test]
fn no_call_starts_when_less_is_left_of_put_deadline_than_the_slowest_exchange() {
    let recs = records(3);
    // The first two calls are answered with every record throttled.
    let mut fake = Fake::new(|n, body| {
        if n < 2 {
            Ok(respond(body, |_, _| {
                Some("ProvisionedThroughputExceededException")
            }))
        } else {
            ok(body)
        }
    });
    fake.latency = vec![Duration::from_secs(4); 8];
    let settings =
        r#","put_deadline":10,"retry_base_delay":0.3,"retry_max_delay":0.5,"retries_on_batch_request":20"#;
    let report = sink(settings).put(&events(&recs), &mut fake);
    assert!(fake.now <= Duration::from_secs(10), "{:?}", fake.now);
    assert_eq!(fake.requests.len(), 2, "a third call would have been cut");
    // One wait, after the first call: after the second less is left than a call takes, and
    // nothing more can be sent, so waiting leads nowhere.
    assert_eq!(fake.sleeps.len(), 1, "{:?}", fake.sleeps);
    assert!(fake.stored.is_empty(), "nothing stored behind the sink's back");
    for o in &report.outcomes {
        assert!(matches!(o, Outcome::Failed { .. }), "{o:?}");
    }
    // The re-post's put stores each record once.
    let mut sink = sink(settings);
    fake.now = Duration::ZERO;
    let report = sink.put(&events(&recs), &mut fake);
    assert!(report
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Delivered { .. })));
    let mut stored = fake.stored.clone();
    stored.sort();
    stored.dedup();
    assert_eq!(stored.len(), fake.stored.len(), "no record twice");
    assert_eq!(fake.stored.len(), 3);
}

/// IMDS retries wait `retry_base_delay × 2^(n-1)`, at most `retry_max_delay` each.
#[test]
fn instance_profile_waits_are_capped_by_retry_max_delay() {
    let mut fake = Fake::new(|_, body| ok(body));
    fake.credentials_endpoint = Some(Box::new(|_| {
        Ok(HttpResponse {
            status: 500,
            body: Vec::new(),
        })
    }));
    let json = r#"{"stream_name":"s","region":"us-east-1","aws_iam_retries":6,"retry_base_delay":1,"retry_max_delay":5,"retries_on_batch_request":0}"#;
    let mut sink = Sink::open(json, &mut fake).unwrap();
    sink.put(&events(&records(1)), &mut fake);
    let secs: Vec<u64> = fake.sleeps.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 5, 5, 5]);
}

/// Records of four keys, throttled at random-looking places on their first attempts.
fn order_run(preserve: bool) -> (Fake, PutReport) {
    let recs: Vec<Vec<u8>> = (0..60)
        .map(|i| serde_json::to_vec(&json!({"k": format!("key-{}", i % 4), "n": i})).unwrap())
        .collect();
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let mut fake = Fake::new(move |_, body| {
        Ok(respond(body, |_, r| {
            let (data, _) = decode(r);
            let text = String::from_utf8(data).unwrap();
            let n = attempts.entry(text.clone()).or_default();
            *n += 1;
            // Every third record fails its first two attempts.
            let i: u64 = serde_json::from_str::<Value>(&text).unwrap()["n"]
                .as_u64()
                .unwrap();
            (i % 3 == 1 && *n <= 2).then_some("ProvisionedThroughputExceededException")
        }))
    });
    let extra = if preserve { r#","preserve_order":true"# } else { "" };
    let report = sink(&format!(
        r#","retry_base_delay":0.001,"retries_on_batch_request":20{extra}"#
    ))
    .put(&events(&recs), &mut fake);
    (fake, report)
}

/// The input order of each key's stored records.
fn stored_order(fake: &Fake) -> HashMap<String, Vec<u64>> {
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    for (data, key) in &fake.stored {
        let n = serde_json::from_slice::<Value>(data).unwrap()["n"]
            .as_u64()
            .unwrap();
        by_key.entry(key.clone()).or_default().push(n);
    }
    by_key
}

#[test]
fn preserve_order_stores_each_keys_records_in_input_order_under_failures() {
    let (fake, report) = order_run(true);
    assert_delivered_once_by_data(&fake, 60);
    assert!(report
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Delivered { .. })));
    for (key, order) in stored_order(&fake) {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "{key} stored out of order");
    }
    // A request carries at most one record of a key.
    for r in &fake.requests {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let keys: Vec<&str> = body["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["PartitionKey"].as_str().unwrap())
            .collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
    }

    // Without it, PutRecords goes on after a failed record: the retry lands after later ones.
    let (fake, _) = order_run(false);
    assert_delivered_once_by_data(&fake, 60);
    assert!(
        stored_order(&fake)
            .values()
            .any(|order| order.windows(2).any(|w| w[0] > w[1])),
        "without preserve_order some key should be out of order"
    );
}

fn assert_delivered_once_by_data(fake: &Fake, n: usize) {
    let mut data: Vec<&Vec<u8>> = fake.stored.iter().map(|(d, _)| d).collect();
    data.sort_unstable();
    data.dedup();
    assert_eq!(data.len(), n);
    assert_eq!(fake.stored.len(), n, "a record was stored twice");
}

/// Under preserve_order, every record of a throttled key gets its own retries, one after the
/// other; those still waiting when the put_deadline comes fail with the first one's code, saying
/// why they were not sent.
#[test]
fn records_waiting_behind_a_failed_one_say_why() {
    let recs: Vec<Vec<u8>> = (0..3)
        .map(|i| serde_json::to_vec(&json!({"k": "same", "n": i})).unwrap())
        .collect();
    let throttled = |_: usize, body: &Value| {
        Ok(respond(body, |_, _| {
            Some("ProvisionedThroughputExceededException")
        }))
    };
    let mut fake = Fake::new(throttled);
    let report = sink(r#","retry_base_delay":0.001,"retries_on_batch_request":2,"preserve_order":true"#)
        .put(&events(&recs), &mut fake);
    assert_eq!(fake.requests.len(), 9, "each record three times, one at a time");
    for o in &report.outcomes {
        let (code, _, attempts) = failed(o);
        assert_eq!((code, attempts), ("ProvisionedThroughputExceededException", 3));
    }

    let mut fake = Fake::new(throttled);
    let report = sink(
        r#","retry_base_delay":1,"put_deadline":2.5,"retries_on_batch_request":10,"preserve_order":true"#,
    )
    .put(&events(&recs), &mut fake);
    assert_eq!(
        fake.requests.len(),
        2,
        "the first record twice, then the deadline"
    );
    assert_eq!(failed(&report.outcomes[0]).2, 2);
    for o in &report.outcomes[1..] {
        let (code, message, attempts) = failed(o);
        assert_eq!((code, attempts), ("ProvisionedThroughputExceededException", 0));
        assert!(
            message.starts_with("not sent: an earlier record of its partition key"),
            "{message}"
        );
    }
}

/// A host that hashes bodies (the sink world's `payload-sha256`) gets the same signatures as the
/// core hashing them itself, one hash per request.
#[test]
fn a_host_hash_signs_the_same_as_the_cores_own() {
    let recs = records(1200);
    let authorizations = |host: bool| {
        let mut fake = Fake::new(|_, body| ok(body));
        if host {
            fake.host_hashes = Some(0);
        }
        sink("").put(&events(&recs), &mut fake);
        let auth: Vec<String> = fake
            .requests
            .iter()
            .map(|r| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .unwrap()
                    .1
                    .clone()
            })
            .collect();
        (auth, fake.host_hashes)
    };
    let (own, none) = authorizations(false);
    let (hosted, hashes) = authorizations(true);
    assert_eq!(none, None);
    assert_eq!(hashes, Some(3), "one hash per request");
    assert_eq!(own, hosted);
}

/// A PutRecordBatch answer where `fail(position, record)` picks which entries fail and how.
fn respond_batch(body: &Value, mut fail: impl FnMut(usize, &Value) -> Option<&'static str>) -> HttpResponse {
    let records = body["Records"].as_array().unwrap();
    let mut failed = 0;
    let entries: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| match fail(i, r) {
            Some(code) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": format!("{code} for entry {i}")})
            }
            None => json!({"RecordId": format!("id-{i}")}),
        })
        .collect();
    HttpResponse {
        status: 200,
        body: serde_json::to_vec(&json!({"FailedPutCount": failed, "RequestResponses": entries})).unwrap(),
    }
}

fn firehose(extra: &str) -> Sink {
    open(&format!(
        r#"{{"delivery_stream_name":"to-s3","region":"eu-west-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE"{extra}}}"#
    ))
}

/// The same delivery engine under PutRecordBatch: the call, its signature and body, records
/// one a line, throttled records (ServiceUnavailableException) retried alone, each record
/// delivered once with its RecordId.
#[test]
fn firehose_puts_record_batches_and_retries_only_what_failed() {
    let recs = records(7);
    let mut fake = Fake::new(|n, body| {
        assert_eq!(body["DeliveryStreamName"], "to-s3");
        Ok(respond_batch(body, move |i, _| {
            (n == 0 && i % 2 == 0).then_some("ServiceUnavailableException")
        }))
    });
    let mut sink = firehose(r#","format":{"type":"json","add_newline":false}"#);
    let report = sink.put(&events(&recs), &mut fake);
    let r = &fake.requests[0];
    assert_eq!(r.url, "https://firehose.eu-west-1.amazonaws.com/");
    let header = |name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-amz-target"), Some("Firehose_20150804.PutRecordBatch"));
    assert!(header("authorization")
        .unwrap()
        .contains("/eu-west-1/firehose/aws4_request"));
    assert_eq!(fake.batch_sizes, vec![7, 4]);
    assert_eq!(report.counters.throttled_records, 4);
    for o in &report.outcomes {
        match o {
            Outcome::Delivered {
                shard_id,
                sequence_number,
            } => {
                assert!(shard_id.is_empty() && sequence_number.starts_with("id-"), "{o:?}")
            }
            other => panic!("{other:?}"),
        }
    }
    // append_new_line: every record ends in one newline, the formatter's own or not.
    assert!(fake
        .stored
        .iter()
        .all(|(d, _)| d.ends_with(b"}\n") && !d.ends_with(b"\n\n")));
    assert_eq!(fake.stored.len(), 7);
}

/// `aggregate` with Firehose joins consecutive records, newline-separated, into records of at
/// most `max_record_size` (Firehose bills each record rounded up to 5 KB): 10,000 lines of 200
/// bytes fit in 2 records instead of 10,000, and each line keeps its own outcome.
#[test]
fn firehose_joins_records_to_cut_billed_units() {
    let recs: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            let mut r = serde_json::to_vec(&json!({"i": i, "log": "x".repeat(170)})).unwrap();
            r.truncate(200.min(r.len()));
            r
        })
        .collect();
    let billed = |sizes: &[usize]| -> usize {
        sizes
            .iter()
            .map(|s| s.div_ceil(crate::kinesis::limits::FIREHOSE_BILLING_UNIT))
            .sum()
    };
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let report = firehose(r#","aggregate":true"#).put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered));
    let joined: Vec<usize> = fake.stored.iter().map(|(d, _)| d.len()).collect();
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(joined.iter().all(|n| *n <= 1_024_000));
    let lines: usize = fake
        .stored
        .iter()
        .map(|(d, _)| d.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())
        .sum();
    assert_eq!(lines, 10_000, "one record a line, none lost");
    let mut fake = Fake::new(|_, body| ok_batch(body));
    firehose("").put(&events(&recs), &mut fake);
    let single: Vec<usize> = fake.stored.iter().map(|(d, _)| d.len()).collect();
    assert_eq!((billed(&single), billed(&joined)), (10_000, 371));

    // Compressed once, joined: it reads back as the lines.
    let mut fake = Fake::new(|_, body| ok_batch(body));
    firehose(r#","aggregate":true,"compression":"gzip""#).put(&events(&recs[..100]), &mut fake);
    assert_eq!(fake.stored.len(), 1);
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&fake.stored[0].0[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(text.lines().count(), 100);
    // A record too large alone is rejected; the others ship.
    let big = serde_json::to_vec(&json!({"log": "y".repeat(1_100_000)})).unwrap();
    let small = serde_json::to_vec(&json!({"log": "small"})).unwrap();
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let report = firehose(r#","aggregate":true"#).put(&events(&[big, small]), &mut fake);
    assert!(matches!(&report.outcomes[0], Outcome::Rejected(r) if r.kind == RejectionKind::TooLarge));
    assert!(report.outcomes[1].is_delivered());
}

/// Joining judges a record as it would be sent alone: one too large to join with others but
/// under `max_record_size` compressed goes alone; a record of exactly `max_record_size` without
/// a newline is not pushed over by a separator; a tiny `max_record_size` with compression is
/// not wiped out by the margin.
#[test]
fn firehose_joining_judges_records_as_sent() {
    let compressible = serde_json::to_vec(&json!({"log": "y".repeat(1_015_000)})).unwrap();
    let small = serde_json::to_vec(&json!({"log": "small"})).unwrap();
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let recs = [small.clone(), compressible.clone(), small.clone()];
    let report = firehose(r#","aggregate":true,"compression":"gzip""#).put(&events(&recs), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered), "{report:?}");
    assert_eq!(fake.stored.len(), 3, "the large one alone, between the others");
    let mut big = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&fake.stored[1].0[..]), &mut big).unwrap();
    assert_eq!(big, [compressible.as_slice(), b"\n"].concat());

    // Exactly max_record_size, no newline of its own (append_new_line off): it fits alone.
    let exact = serde_json::to_vec(&json!({"l": "x".repeat(1_024_000 - 8)})).unwrap();
    assert_eq!(exact.len(), 1_024_000);
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let report =
        firehose(r#","aggregate":true,"append_new_line":false,"format":{"type":"json","add_newline":false}"#)
            .put(&events(&[exact.clone(), small.clone()]), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered), "{report:?}");
    assert_eq!(fake.stored[0].0, exact);
    // Separators go between records only.
    let mut fake = Fake::new(|_, body| ok_batch(body));
    firehose(r#","aggregate":true,"append_new_line":false,"format":{"type":"json","add_newline":false}"#)
        .put(&events(&[small.clone(), small.clone()]), &mut fake);
    assert_eq!(
        fake.stored[0].0,
        [small.as_slice(), b"\n", small.as_slice()].concat()
    );

    // A tiny max_record_size with compression: records judged compressed, not refused by a
    // limit the user never set.
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let tiny = serde_json::to_vec(&json!({"a": "b".repeat(90)})).unwrap();
    let report = firehose(r#","aggregate":true,"compression":"zlib","max_record_size":64"#)
        .put(&events(&[tiny.clone(), tiny]), &mut fake);
    assert!(report.outcomes.iter().all(Outcome::is_delivered), "{report:?}");
    // Too large even compressed: the message gives the size as sent and the user's limit.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..1_100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let noisy = serde_json::to_vec(
        &json!({"log": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &noise)}),
    )
    .unwrap();
    let report = firehose(r#","aggregate":true,"compression":"gzip""#)
        .put(&events(&[noisy]), &mut Fake::new(|_, body| ok_batch(body)));
    match &report.outcomes[0] {
        Outcome::Rejected(r) => {
            assert_eq!(r.kind, RejectionKind::TooLarge);
            assert!(
                r.message
                    .contains("compressed, over the max_record_size limit of 1024000"),
                "{}",
                r.message
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Firehose settings that would do harm are refused: a newline after MessagePack changes its
/// values; preserve_order would send one record a call; an allowed stream longer than Firehose
/// takes could never be shipped to.
#[test]
fn firehose_refuses_settings_that_would_do_harm() {
    let err = |extra: &str| {
        Config::from_json(
            &format!(r#"{{"delivery_stream_name":"d","region":"us-east-1"{extra}}}"#),
            &mut no_env,
        )
        .unwrap_err()
    };
    let e = err(r#","format":{"type":"msgpack"},"append_new_line":true"#);
    assert_eq!(e.field, "append_new_line");
    assert!(e.message.contains("MessagePack"), "{e}");
    let ok = |extra: &str| {
        Config::from_json(
            &format!(r#"{{"delivery_stream_name":"d","region":"us-east-1"{extra}}}"#),
            &mut no_env,
        )
        .unwrap()
    };
    assert!(
        !ok(r#","format":{"type":"msgpack"}"#).shape.append_new_line,
        "off by default"
    );
    assert!(
        ok(r#","format":{"type":"msgpack"},"data_key":"log""#)
            .shape
            .append_new_line,
        "data_key sends text"
    );
    let e = err(r#","preserve_order":true"#);
    assert_eq!(e.field, "preserve_order");
    let e = err(&format!(
        r#","delivery_stream_name":"${{tag}}","allowed_streams":["{}"]"#,
        "a".repeat(100)
    ));
    assert_eq!(e.field, "allowed_streams");
    assert!(e.message.contains("64 characters"), "{e}");
    // The msgpack bytes a record's last byte 0x0d would lose: they ship as formatted.
    let mut fake = Fake::new(|_, body| ok_batch(body));
    let rec = serde_json::to_vec(&json!({"n": 13})).unwrap();
    let mut sink = open(
        r#"{"delivery_stream_name":"d","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"SECRETVALUE","format":{"type":"msgpack"}}"#,
    );
    sink.put(&events(&[rec]), &mut fake);
    assert_eq!(fake.stored[0].0, vec![0x81, 0xa1, b'n', 0x0d]);
}

fn ok_batch(body: &Value) -> Result<HttpResponse, TransportError> {
    Ok(respond_batch(body, |_, _| None))
}

#[test]
fn a_firehose_configuration_is_checked_against_firehose() {
    let err = |json: &str| Config::from_json(json, &mut no_env).unwrap_err();
    let base = r#""region":"us-east-1","aws_key_id":"a","aws_sec_key":"b""#;
    let e = err(&format!(
        r#"{{"stream_name":"s","delivery_stream_name":"d",{base}}}"#
    ));
    assert_eq!(e.field, "delivery_stream_name");
    assert!(e.message.contains("stream_name"), "{e}");
    let e = err(&format!(
        r#"{{"delivery_stream_name":"d","partition_key":"pod",{base}}}"#
    ));
    assert_eq!(e.field, "partition_key");
    let e = err(&format!(
        r#"{{"stream_name":"s","append_new_line":false,{base}}}"#
    ));
    assert_eq!(e.field, "append_new_line");
    let e = err(&format!(
        r#"{{"delivery_stream_name":"d","max_record_size":1048576,{base}}}"#
    ));
    assert_eq!(e.field, "max_record_size");
    assert!(e.message.contains("1024000"), "{e}");
    let e = err(&format!(
        r#"{{"delivery_stream_name":"d","batch_request_max_size":5242880,{base}}}"#
    ));
    assert_eq!(e.field, "batch_request_max_size");
    let e = err(&format!(
        r#"{{"delivery_stream_name":"{}",{base}}}"#,
        "n".repeat(65)
    ));
    assert_eq!(e.field, "delivery_stream_name");
    let c = Config::from_json(&format!(r#"{{"delivery_stream_name":"d",{base}}}"#), &mut no_env).unwrap();
    assert_eq!(c.service, crate::kinesis::Service::Firehose);
    assert_eq!(c.endpoint, "https://firehose.us-east-1.amazonaws.com");
    assert_eq!(
        (c.batch_request_max_size, c.shape.max_record_size),
        (4 << 20, 1_024_000)
    );
    assert!(c.shape.append_new_line);
}
