//! The built component in wasmtime, against the in-process fake Kinesis: one test binary, a
//! module per area. The helpers every area uses are here.

mod credentials;
mod deadlines;
mod delivery;
mod egress;
mod firehose;
mod proxy;
mod shaping;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use host_tests::fake_kinesis::{FakeKinesis, Fault, RandomFaults};
use host_tests::runtime::{
    event, Endpoint, Event, Instance, InstanceOptions, Outcome, PutReport, RejectionKind, Runtime, Upstream,
};
use serde_json::json;

const KEY_ID: &str = "AKIDTESTHARNESS";
const SECRET: &str = "harness-secret/value+0123456789";
const TOKEN: &str = "harness-session-token-value";
const STREAM: &str = "logs";

fn config(extra: serde_json::Value) -> String {
    let mut base = json!({
        "stream_name": STREAM,
        "region": "us-east-1",
        "endpoint": "http://kinesis.test:4567",
        "aws_key_id": KEY_ID,
        "aws_sec_key": SECRET,
        "partition_key": "pod",
        "retry_base_delay": 0.001,
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}

fn fake() -> Arc<FakeKinesis> {
    Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET))
}

async fn instance(fake: &Arc<FakeKinesis>) -> Instance {
    Runtime::shared()
        .instantiate(&[], Upstream::Fake(fake.clone()))
        .await
        .unwrap()
}

/// Kubernetes-style records: pod names repeat, so keys repeat too.
fn records(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let rec = json!({
                "log": format!("line {i} \"quoted\" é ✓"),
                "stream": "stdout",
                "pod": format!("pod-{}", i % 7),
                "seq": i,
            });
            event(rec.to_string(), 1_700_000_000 + i as i64)
        })
        .collect()
}

/// What the component should send for a record: compact JSON plus a newline.
fn expected_data(e: &Event) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(&e.record).unwrap();
    let mut data = serde_json::to_vec(&v).unwrap();
    data.push(b'\n');
    data
}

async fn ship(fake: &Arc<FakeKinesis>, cfg: &str, events: &[Event]) -> (PutReport, Instance) {
    let mut inst = instance(fake).await;
    let sink = inst.open(cfg).await.unwrap().expect("config accepted");
    let report = inst.put(sink, events).await.unwrap();
    assert_eq!(report.outcomes.len(), events.len(), "one outcome per event");
    (report, inst)
}

/// Every event was stored, with the bytes and key the component formatted, and its outcome
/// names what the fake stored. Records are stored more than once only where the fake damaged
/// a response after storing them (the component could not know they arrived).
fn assert_exactly_delivered(fake: &FakeKinesis, events: &[Event], report: &PutReport) {
    let stored = fake.stored();
    let damaged: Vec<bool> = fake
        .seen()
        .iter()
        .map(|s| s.response_damaged_after_store)
        .collect();
    let mut by_seq = HashMap::new();
    let mut copies: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for s in &stored {
        by_seq.insert(s.sequence_number.clone(), s);
        copies.entry(s.data.clone()).or_default().push(s.request);
    }
    for (e, o) in events.iter().zip(&report.outcomes) {
        let Outcome::Delivered(d) = o else {
            panic!("expected delivered, got {o:?}");
        };
        let s = by_seq
            .get(&d.sequence_number)
            .expect("the outcome names a stored record");
        assert_eq!(s.data, expected_data(e));
        let pod = serde_json::from_slice::<serde_json::Value>(&e.record).unwrap()["pod"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(s.partition_key, pod);
        assert_eq!(s.shard_id, d.shard_id);
        let requests = &copies[&s.data];
        let extra = requests.iter().filter(|r| **r != s.request).count();
        if extra > 0 {
            assert!(
                requests.iter().filter(|r| **r != s.request).all(|r| damaged[*r]),
                "record stored again although its earlier response was intact: {requests:?}"
            );
        }
    }
}
