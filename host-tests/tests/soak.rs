//! The soak under faults: many records through the component while the fake Kinesis throttles
//! 30% of records, fails 5% of requests in every way it knows (500s, dropped connections,
//! truncated, broken and stalled bodies, malformed answers, slow and hung responses, expired
//! tokens) and the credentials come from a container endpoint that must be asked again
//! whenever a token expires.
//!
//! `make test` runs 100,000 records; `make soak` runs `KINESIS_SOAK_RECORDS=1000000` in an
//! optimised build. The figures are printed (see README "Reliability").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tests::fake_kinesis::{FakeKinesis, Fault, RandomFaults};
use host_tests::runtime::{event, Endpoint, Event, InstanceOptions, Outcome, Runtime, Upstream};
use serde_json::json;

const STREAM: &str = "logs";
const ISSUED_KEY: &str = "ASIASOAKISSUED";
const ISSUED_SECRET: &str = "soak-issued-secret-value";
const AGENT: &str = "169.254.170.23";
const CHUNK: usize = 1000;
/// The linear memory an instance may reach over the whole run (1000-record chunks of ~200 B).
const MEMORY_BOUND: usize = 16 * 1024 * 1024;

fn records(from: usize, n: usize) -> Vec<Event> {
    (from..from + n)
        .map(|i| {
            let rec = json!({
                "log": format!("soak line {i} GET /api/v1/items?page={} 200", i % 97),
                "stream": "stdout",
                "pod": format!("pod-{}", i % 13),
                "seq": i,
            });
            event(rec.to_string(), 1_700_000_000 + i as i64)
        })
        .collect()
}

fn seq_of(data: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(data).expect("stored JSON")["seq"]
        .as_u64()
        .expect("seq")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_is_delivered_or_reported_and_none_is_resent_after_it_was_accepted() {
    let total: usize = std::env::var("KINESIS_SOAK_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fake = Arc::new(
        FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET).with_random_faults(
            RandomFaults {
                throttle_records: 0.3,
                fail_records: 0.0,
                request_fault_rate: 0.05,
                request_faults: vec![
                    Fault::ServerError,
                    Fault::DropConnection,
                    Fault::TruncatedBody,
                    Fault::BrokenBody,
                    Fault::MalformedBody,
                    Fault::Slow(Duration::from_millis(20)),
                    Fault::ExpiredToken,
                    Fault::Hang,
                    Fault::StallBody,
                ],
            },
            7,
        ),
    );
    let agent_calls = Arc::new(AtomicUsize::new(0));
    let calls = agent_calls.clone();
    let agent: Endpoint = Arc::new(move |method, path, _headers, _body| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if method != "GET" || path != "/v1/credentials" {
            return (404, b"{}".to_vec());
        }
        let expiration = kinesis_output::shaping::timefmt::iso8601(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
                + 3600,
            kinesis_output::shaping::timefmt::Zone::UTC,
        );
        let body = json!({"AccessKeyId": ISSUED_KEY, "SecretAccessKey": ISSUED_SECRET,
            "Token": format!("soak-session-{n}"), "Expiration": expiration});
        (200, body.to_string().into_bytes())
    });
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        )])
        .endpoint(AGENT, agent);
    let config = json!({
        "stream_name": STREAM,
        "region": "us-east-1",
        "endpoint": "http://kinesis.test:4567",
        "partition_key": "pod",
        "retries_on_batch_request": 40,
        "retry_base_delay": 0.001,
        "retry_max_delay": 0.004,
        // Hung requests and stalled bodies end here (the fake ignores the host timeouts);
        // long enough that a busy machine never times out a request the fake answered.
        "request_timeout": 2,
        "max_concurrent_requests": 4,
    })
    .to_string();

    host_tests::transcript::secret(ISSUED_SECRET);
    let started = Instant::now();
    let mut instance = Runtime::shared().instantiate_with(options).await.unwrap();
    let sink = instance.open(&config).await.unwrap().expect("config accepted");
    // Outcome per record, by its `seq`.
    let mut delivered: HashMap<u64, String> = HashMap::with_capacity(total);
    let mut failed = Vec::new();
    let mut retries = 0u64;
    let mut throttled = 0u64;
    for from in (0..total).step_by(CHUNK) {
        let n = CHUNK.min(total - from);
        let events = records(from, n);
        let report = instance.put(sink, &events).await.unwrap();
        assert_eq!(report.outcomes.len(), n, "one outcome per event");
        retries += report.counters.retries;
        throttled += report.counters.throttled_records;
        for (i, outcome) in report.outcomes.iter().enumerate() {
            let seq = (from + i) as u64;
            match outcome {
                Outcome::Delivered(d) => {
                    delivered.insert(seq, d.sequence_number.clone());
                }
                Outcome::Failed(f) => {
                    assert!(
                        !f.code.is_empty() && !f.message.is_empty(),
                        "a failure says why: {f:?}"
                    );
                    failed.push(seq);
                }
                other => panic!("record {seq}: unexpected outcome {other:?}"),
            }
        }
    }
    let wall = started.elapsed();
    let peak = instance.peak_memory();

    // Every delivered record is stored, under the sequence number its outcome names; a record
    // is stored twice only when the fake damaged the response after storing it (the component
    // could not know it had arrived), never after a response said it was accepted.
    let seen = fake.seen();
    let damaged: Vec<bool> = seen.iter().map(|s| s.response_damaged_after_store).collect();
    let mut stored_by_seq: HashMap<u64, Vec<(String, usize)>> = HashMap::with_capacity(total);
    for s in fake.stored() {
        stored_by_seq
            .entry(seq_of(&s.data))
            .or_default()
            .push((s.sequence_number, s.request));
    }
    let mut copies_after_damage = 0usize;
    for (seq, sequence_number) in &delivered {
        let copies = stored_by_seq.get(seq).expect("a delivered record is stored");
        let (_, accepted_in) = copies
            .iter()
            .find(|(n, _)| n == sequence_number)
            .expect("the outcome names a stored copy");
        for (_, request) in copies.iter().filter(|(n, _)| n != sequence_number) {
            assert!(
                damaged[*request],
                "record {seq} stored again (request {request}, {:?}) although request {accepted_in}'s response ({:?}) was intact",
                seen[*request].fault,
                seen[*accepted_in].fault
            );
            copies_after_damage += 1;
        }
    }
    for seq in &failed {
        for (_, request) in stored_by_seq.get(seq).map(Vec::as_slice).unwrap_or_default() {
            assert!(
                damaged[*request],
                "record {seq} failed although it was accepted intact"
            );
        }
    }
    assert_eq!(
        delivered.len() + failed.len(),
        total,
        "every record has an outcome"
    );
    let faults = seen.iter().filter(|s| s.fault.is_some()).count();
    let expired = seen
        .iter()
        .filter(|s| s.fault == Some(Fault::ExpiredToken))
        .count();
    assert!(expired > 0, "tokens expired during the run");
    assert!(
        agent_calls.load(Ordering::SeqCst) > expired / 2,
        "credentials were fetched again after tokens expired"
    );
    assert!(
        throttled as f64 > total as f64 * 0.25,
        "30% were throttled: {throttled}"
    );
    assert!(
        peak < MEMORY_BOUND,
        "linear memory reached {peak} bytes, over the bound of {MEMORY_BOUND}"
    );
    eprintln!(
        "soak: {total} records in {:.1} s: {} delivered, {} failed with a reason; {} requests, {} with a request fault ({} expired tokens, {} credential fetches); {} records throttled, {} retried; {} extra copies only after damaged responses; peak linear memory {:.1} MiB",
        wall.as_secs_f64(),
        delivered.len(),
        failed.len(),
        seen.len(),
        faults,
        expired,
        agent_calls.load(Ordering::SeqCst),
        throttled,
        retries,
        copies_after_damage,
        peak as f64 / (1024.0 * 1024.0),
    );
}
