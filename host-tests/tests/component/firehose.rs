//! Firehose through the component: PutRecordBatch against the fake, with its own SigV4 check
//! (service `firehose`) and faults.

use super::*;

fn firehose_config(extra: serde_json::Value) -> String {
    let mut base = json!({
        "delivery_stream_name": STREAM,
        "region": "us-east-1",
        "endpoint": "http://firehose.test:4567",
        "aws_key_id": KEY_ID,
        "aws_sec_key": SECRET,
        "retry_base_delay": 0.001,
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}

/// Through record failures (ServiceUnavailableException, InternalFailure), whole calls
/// throttled, failed or dropped, and answers broken after storing: every record delivered, its
/// outcome naming the RecordId the fake gave it, stored twice only behind an answer the fake
/// broke after storing.
#[tokio::test(flavor = "multi_thread")]
async fn firehose_delivers_every_record_once_under_faults() {
    let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
        RandomFaults {
            throttle_records: 0.3,
            fail_records: 0.05,
            ..RandomFaults::default()
        },
        9,
    ));
    fake.script([
        Fault::Throttled,
        Fault::ServerError,
        Fault::DropConnection,
        Fault::BrokenBody,
        Fault::MalformedBody,
    ]);
    let events = records(1500);
    let (report, _) = ship(
        &fake,
        &firehose_config(json!({"retries_on_batch_request": 30, "max_concurrent_requests": 2})),
        &events,
    )
    .await;
    let stored = fake.stored();
    let by_id: HashMap<&str, &host_tests::fake_kinesis::Stored> =
        stored.iter().map(|s| (s.sequence_number.as_str(), s)).collect();
    for (e, o) in events.iter().zip(&report.outcomes) {
        let Outcome::Delivered(d) = o else {
            panic!("expected delivered, got {o:?}");
        };
        assert!(d.shard_id.is_empty(), "no shards in Firehose");
        let s = by_id
            .get(d.sequence_number.as_str())
            .expect("the RecordId of a stored record");
        assert_eq!(s.data, expected_data(e), "one record a line");
        assert!(s.partition_key.is_empty());
    }
    let damaged: usize = fake
        .seen()
        .iter()
        .filter(|s| s.response_damaged_after_store)
        .map(|s| s.records)
        .sum();
    assert!(damaged > 0, "the broken answer happened");
    assert!(stored.len() <= events.len() + damaged, "{} stored", stored.len());
    let seen = fake.seen();
    assert!(
        seen.iter().any(|s| s.status == 200),
        "signatures for firehose verified"
    );
    assert!(report.counters.throttled_records > 300, "{:?}", report.counters);
    let target = seen[0].headers.iter().find(|(k, _)| k == "x-amz-target");
    assert_eq!(
        target.map(|(_, v)| v.as_str()),
        Some("Firehose_20150804.PutRecordBatch")
    );
}

/// A record over Firehose's 1,000 KiB is rejected with its own code and the rest ship; joined
/// records (`aggregate`) keep an outcome each.
#[tokio::test(flavor = "multi_thread")]
async fn firehose_rejects_an_oversize_record_and_joins_the_rest() {
    let fake = fake();
    let mut events = records(50);
    events.insert(
        10,
        event(
            json!({"pod": "x", "log": "z".repeat(1_100_000)}).to_string(),
            1_700_000_000,
        ),
    );
    for aggregate in [false, true] {
        let before = fake.stored().len();
        let (report, _) = ship(&fake, &firehose_config(json!({"aggregate": aggregate})), &events).await;
        match &report.outcomes[10] {
            Outcome::Rejected(r) => assert_eq!(r.kind, RejectionKind::TooLarge),
            other => panic!("{other:?}"),
        }
        let delivered = report
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Delivered(_)))
            .count();
        assert_eq!(delivered, 50);
        let new = &fake.stored()[before..];
        let lines: usize = new
            .iter()
            .map(|s| s.data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())
            .sum();
        assert_eq!(lines, 50, "every line once (aggregate {aggregate})");
        assert_eq!(new.len(), if aggregate { 1 } else { 50 });
    }
}
