//! Delivery through the component: every record once, faults, retries, limits, rejections,
//! configuration errors and secrets.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn delivers_every_record_once_with_valid_signatures() {
    let fake = fake();
    let events = records(1200);
    let (report, _) = ship(&fake, &config(json!({})), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(fake.stored().len(), 1200, "nothing stored twice");
    let seen = fake.seen();
    assert_eq!(
        seen.iter().map(|s| s.records).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    assert!(seen.iter().all(|s| s.status == 200), "every signature verified");
    assert_eq!(report.counters.requests, 3);
    assert_eq!(report.counters.retries, 0);
    assert!(report.counters.bytes_sent > 1200 * 60);
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("host").as_deref(), Some("kinesis.test:4567"));
    assert_eq!(
        header("x-amz-target").as_deref(),
        Some("Kinesis_20131202.PutRecords")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_tokens_are_sent_and_signed() {
    let fake = fake();
    let events = records(3);
    let (report, _) = ship(&fake, &config(json!({"aws_ses_token": TOKEN})), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    let seen = fake.seen();
    let token = seen[0].headers.iter().find(|(k, _)| k == "x-amz-security-token");
    assert_eq!(token.map(|(_, v)| v.as_str()), Some(TOKEN));
    let auth = &seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1;
    assert!(auth.contains("x-amz-security-token"), "{auth}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_of_every_kind_lose_nothing_and_resend_only_failures() {
    let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
        RandomFaults {
            throttle_records: 0.3,
            fail_records: 0.05,
            ..RandomFaults::default()
        },
        42,
    ));
    fake.script([
        Fault::ServerError,
        Fault::DropConnection,
        Fault::TruncatedBody,
        Fault::BrokenBody,
        Fault::MalformedBody,
        Fault::Slow(Duration::from_millis(50)),
        Fault::Throttled,
    ]);
    let events = records(2000);
    let (report, _) = ship(
        &fake,
        &config(json!({"retries_on_batch_request": 30, "max_concurrent_requests": 3})),
        &events,
    )
    .await;
    assert_exactly_delivered(&fake, &events, &report);
    let seen = fake.seen();
    assert!(
        seen.iter().any(|s| s.response_damaged_after_store),
        "the damaged responses happened"
    );
    assert!(report.counters.retries > 600, "{:?}", report.counters);
    assert!(report.counters.throttled_records > 600, "{:?}", report.counters);
    assert_eq!(report.counters.requests as usize, seen.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_times_out_and_the_records_are_sent_again() {
    let fake = fake();
    fake.script([Fault::Slow(Duration::from_secs(5))]);
    let events = records(4);
    let started = std::time::Instant::now();
    let (report, _) = ship(&fake, &config(json!({"request_timeout": 0.2})), &events).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout cut the wait short"
    );
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(fake.seen().len(), 2);
    assert_eq!(report.counters.retries, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_run_out_with_the_last_code() {
    let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
        RandomFaults {
            throttle_records: 1.0,
            ..RandomFaults::default()
        },
        7,
    ));
    let events = records(5);
    let (report, _) = ship(&fake, &config(json!({"retries_on_batch_request": 2})), &events).await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else { panic!("{o:?}") };
        assert_eq!(f.code, "ProvisionedThroughputExceededException");
        assert_eq!(f.attempts, 3);
        assert!(
            f.message.contains("not stored after 2 retries in this put"),
            "{}",
            f.message
        );
    }
    assert_eq!(fake.seen().len(), 3);
    assert_eq!(report.counters.throttled_records, 15);
    assert!(fake.stored().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_fail_at_once_with_the_service_error() {
    // Access denied.
    let fake = fake();
    fake.script([Fault::AccessDenied]);
    let events = records(4);
    let (report, _) = ship(&fake, &config(json!({})), &events).await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else { panic!("{o:?}") };
        assert_eq!(f.code, "AccessDeniedException");
        assert!(f.message.contains("not authorized"));
        assert_eq!(f.attempts, 1);
    }
    assert_eq!(fake.seen().len(), 1);

    // A wrong secret: the fake's own verifier refuses the signature.
    let fake = self::fake();
    let (report, _) = ship(
        &fake,
        &config(json!({"aws_sec_key": "not-the-right-secret"})),
        &events,
    )
    .await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else { panic!("{o:?}") };
        assert_eq!(f.code, "InvalidSignatureException");
        assert_eq!(f.attempts, 1);
    }

    // An unknown stream.
    let fake = self::fake();
    let (report, _) = ship(&fake, &config(json!({"stream_name": "nope"})), &events).await;
    let Outcome::Failed(f) = &report.outcomes[0] else {
        panic!()
    };
    assert_eq!(f.code, "ResourceNotFoundException");
    assert!(fake.stored().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_records_are_rejected_while_the_rest_ship() {
    let fake = fake();
    let big = json!({"pod": "p", "log": "x".repeat(2000)}).to_string();
    let events = vec![
        event(r#"{"pod":"a","log":"ok 1"}"#, 1),
        event("this is not json", 2),
        event(r#"{"log":"no pod field"}"#, 3),
        event(big, 4),
        event(r#"["an","array"]"#, 5),
        event(r#"{"pod":null}"#, 6),
        event(r#"{"pod":"b","log":"ok 2"}"#, 7),
    ];
    let (report, _) = ship(&fake, &config(json!({"max_record_size": 1024})), &events).await;
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
        vec![
            None,
            Some(RejectionKind::NotJson),
            Some(RejectionKind::NoPartitionKey),
            Some(RejectionKind::TooLarge),
            Some(RejectionKind::NotAnObject),
            Some(RejectionKind::NoPartitionKey),
            None
        ]
    );
    let Outcome::Rejected(r) = &report.outcomes[3] else {
        panic!()
    };
    assert!(r.message.contains("limit of 1024"), "{}", r.message);
    let stored = fake.stored();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].data, b"{\"pod\":\"a\",\"log\":\"ok 1\"}\n");
    assert_eq!(stored[1].partition_key, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_stay_within_the_service_limits() {
    // Records of ~300 KiB: at most 16 fit in 5 MiB. The fake refuses any request over its limits.
    let fake = fake();
    let blob = "y".repeat(300 * 1024);
    let events: Vec<Event> = (0..40)
        .map(|i| event(json!({"pod": format!("p{i}"), "blob": blob}).to_string(), i))
        .collect();
    let (report, _) = ship(&fake, &config(json!({})), &events).await;
    assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Delivered(_))));
    assert!(fake.seen().iter().all(|s| s.status == 200 && s.records <= 17));
    assert_eq!(fake.stored().len(), 40);
    // Keys of more than 256 characters are cut to 256 characters, never bytes.
    let fake = self::fake();
    let long = "ü".repeat(300);
    let (report, _) = ship(
        &fake,
        &config(json!({})),
        &[event(json!({"pod": long}).to_string(), 1)],
    )
    .await;
    assert!(matches!(report.outcomes[0], Outcome::Delivered(_)));
    assert_eq!(fake.stored()[0].partition_key.chars().count(), 256);
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_name_the_field_and_never_a_secret() {
    let fake = fake();
    let mut inst = instance(&fake).await;
    let cases = [
        (
            json!({"batch_request_max_count": 600}),
            "batch_request_max_count",
            "600 exceeds the limit of 500",
        ),
        (
            json!({"batch_request_max_size": 11_000_000}),
            "batch_request_max_size",
            "exceeds the limit of 10485760",
        ),
        (
            json!({"max_record_size": 10_485_761}),
            "max_record_size",
            "exceeds the limit",
        ),
        (json!({"stream_name": ""}), "stream_name", "1 to 128"),
        (json!({"endpoint": "ftp://x"}), "endpoint", "http"),
        (
            json!({"format": {"type": "csv"}}),
            "format.fields",
            "is required for csv",
        ),
        (
            json!({"compression": "lz4"}),
            "compression",
            "unknown compression",
        ),
        (
            json!({"assume_role_credentials": {"role_arn": "a", "role_session_name": "s1"}}),
            "assume_role_credentials.role_arn",
            "is not a role ARN",
        ),
        (
            json!({"process_credentials": {"process": " "}}),
            "process_credentials.process",
            "is required",
        ),
        (
            json!({"aws_sec_key": {"file": "/not/granted"}}),
            "aws_sec_key.file",
            "cannot read",
        ),
        (json!({"partition_key": 5}), "partition_key", "must be a string"),
        (json!({"unknown_thing": 1}), "unknown_thing", "unknown setting"),
        (
            json!({"aws_key_id": null}),
            "aws_key_id",
            "required when aws_sec_key is set",
        ),
    ];
    for (extra, field, rule) in cases {
        let err = inst
            .open(&config(extra.clone()))
            .await
            .unwrap()
            .err()
            .unwrap_or_else(|| panic!("{extra} accepted"));
        assert_eq!(err.field, field, "{extra}");
        assert!(err.message.contains(rule), "{extra}: {}", err.message);
        assert!(!err.message.contains(SECRET));
    }
    let err = inst.open("{not json").await.unwrap().err().unwrap();
    assert!(err.message.contains("not valid JSON"));
}

#[tokio::test(flavor = "multi_thread")]
async fn region_and_credentials_come_from_the_wasi_environment() {
    let fake = fake();
    let mut inst = Runtime::shared()
        .instantiate(
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
            ],
            Upstream::Fake(fake.clone()),
        )
        .await
        .unwrap();
    let cfg =
        json!({"stream_name": STREAM, "endpoint": "http://kinesis.test", "partition_key": "pod"}).to_string();
    let sink = inst.open(&cfg).await.unwrap().unwrap();
    let events = records(10);
    let report = inst.put(sink, &events).await.unwrap();
    assert_exactly_delivered(&fake, &events, &report);
    // A second put on the same sink works too.
    let report = inst.put(sink, &events[..2]).await.unwrap();
    assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Delivered(_))));
    inst.close(sink).await.unwrap();

    // Without any credentials (and the instance profile turned off): a clear error.
    let mut inst = Runtime::shared()
        .instantiate(
            &[("AWS_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")],
            Upstream::Fake(fake.clone()),
        )
        .await
        .unwrap();
    let err = inst.open(&cfg).await.unwrap().err().unwrap();
    assert_eq!(err.field, "aws_key_id");
    assert!(err.message.contains("no credentials"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_fails_records_with_a_network_error() {
    // A port nothing listens on, through the real network path.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut inst = Runtime::shared()
        .instantiate(&[], Upstream::Network)
        .await
        .unwrap();
    let cfg = config(json!({"endpoint": format!("http://127.0.0.1:{port}"), "retries_on_batch_request": 2}));
    let sink = inst.open(&cfg).await.unwrap().unwrap();
    let report = inst.put(sink, &records(3)).await.unwrap();
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else { panic!("{o:?}") };
        assert_eq!(f.code, "NetworkError");
        assert!(f.message.contains("ConnectionRefused"), "{}", f.message);
        assert_eq!(f.attempts, 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_report_error_or_log() {
    let mut texts = Vec::new();
    let fake = fake();
    fake.script([Fault::AccessDenied, Fault::ServerError]);
    for extra in [
        json!({"aws_ses_token": TOKEN}),
        json!({"aws_ses_token": TOKEN, "aws_sec_key": "wrong-secret-value-xyz"}),
        json!({"aws_ses_token": TOKEN, "retries_on_batch_request": 1}),
        json!({"aws_ses_token": TOKEN, "batch_request_max_count": 9999}),
        json!({"aws_ses_token": TOKEN, "endpoint": "http://127.0.0.1:1"}),
        json!({"aws_ses_token": TOKEN, "aws_key_id": null}),
        json!({"aws_ses_token": 12}),
    ] {
        let mut inst = instance(&fake).await;
        match inst.open(&config(extra)).await.unwrap() {
            Ok(sink) => {
                let mut events = records(3);
                events.push(event("not json", 0));
                let report = inst.put(sink, &events).await.unwrap();
                texts.push(format!("{report:?}"));
            }
            Err(e) => texts.push(format!("{e:?} {}", e.message)),
        }
        texts.push(inst.stderr());
    }
    for t in &texts {
        for secret in [SECRET, TOKEN, "wrong-secret-value-xyz"] {
            assert!(!t.contains(secret), "a secret leaked into: {t}");
        }
    }
}

/// `stream_arn`: PutRecords names the stream by ARN, at the account endpoint AWS's endpoint
/// rules give it; a region that contradicts the ARN is a configuration error.
#[tokio::test(flavor = "multi_thread")]
async fn puts_by_stream_arn_at_the_account_endpoint() {
    let fake = fake();
    let events = records(30);
    let arn = format!(
        "arn:aws:kinesis:us-east-1:{}:stream/{STREAM}",
        host_tests::fake_kinesis::ACCOUNT
    );
    let mut cfg: serde_json::Value = serde_json::from_str(&config(json!({"stream_arn": arn}))).unwrap();
    let map = cfg.as_object_mut().unwrap();
    map.remove("stream_name");
    map.remove("endpoint");
    let (report, _) = ship(&fake, &cfg.to_string(), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    let seen = fake.seen();
    let host = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.as_str());
    assert_eq!(host, Some("111111111111.data-kinesis.us-east-1.amazonaws.com"));

    // Another account's ARN reaches the service and is refused there, per record, not lost.
    let other = json!({"stream_arn": "arn:aws:kinesis:us-east-1:222222222222:stream/logs"});
    let mut inst = instance(&fake).await;
    let sink = inst.open(&config(other)).await.unwrap().expect("config accepted");
    let report = inst.put(sink, &events[..2]).await.unwrap();
    assert!(
        report.outcomes.iter().all(|o| matches!(o, Outcome::Failed(_))),
        "{report:?}"
    );

    let mut inst = instance(&fake).await;
    let e = inst
        .open(&config(json!({"stream_arn": arn, "region": "eu-west-1"})))
        .await
        .unwrap()
        .err()
        .unwrap();
    assert_eq!(e.field, "region");
    assert!(e.message.contains("not the region of stream_arn"), "{e:?}");
    let e = inst
        .open(&config(json!({"stream_arn": arn, "stream_name": "other"})))
        .await
        .unwrap()
        .err()
        .unwrap();
    assert_eq!(e.field, "stream_name");
}

/// `preserve_order`: under the fake's random throttling and failures, each key's records are
/// stored in input order (the fake's sequence numbers rise in storage order); without it, the
/// same faults store some key's records out of order.
#[tokio::test(flavor = "multi_thread")]
async fn preserve_order_keeps_each_keys_records_in_order_under_throttling() {
    for preserve in [true, false] {
        let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
            RandomFaults {
                throttle_records: 0.3,
                fail_records: 0.05,
                ..RandomFaults::default()
            },
            7,
        ));
        let events = records(700);
        let cfg = config(
            json!({"preserve_order": preserve, "retries_on_batch_request": 100,
            "max_concurrent_requests": 4}),
        );
        let (report, _) = ship(&fake, &cfg, &events).await;
        assert_exactly_delivered(&fake, &events, &report);
        let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
        let mut stored = fake.stored();
        // Sequence numbers are decimal strings that rise as records are stored.
        stored.sort_by(|a, b| {
            (a.sequence_number.len(), &a.sequence_number).cmp(&(b.sequence_number.len(), &b.sequence_number))
        });
        for s in &stored {
            let v: serde_json::Value = serde_json::from_slice(&s.data).unwrap();
            by_key
                .entry(s.partition_key.clone())
                .or_default()
                .push(v["seq"].as_u64().unwrap());
        }
        let in_order = by_key.values().all(|seqs| seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(in_order, preserve, "preserve_order {preserve}: {by_key:?}");
    }
}

/// `put-packed` is `put` with the chunk in one buffer: for the same events and the same faults,
/// the same verdict for every event (only the delivered ones' shard and sequence number are
/// left out), the same records stored, the same `stored` calls; an event whose bounds fall
/// outside the buffer is rejected alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_packed_put_delivers_and_reports_as_a_put_does() {
    let mut events = records(600);
    events[3].record = b"not json".to_vec();
    events[7].record = b"[1]".to_vec();
    events[11].record = json!({"log": "no pod"}).to_string().into_bytes();
    let cfg = config(json!({"retries_on_batch_request": 2}));
    let faults = || RandomFaults {
        throttle_records: 0.3,
        fail_records: 0.05,
        ..RandomFaults::default()
    };
    let run = |packed: bool| {
        let (events, cfg) = (events.clone(), cfg.clone());
        async move {
            let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(faults(), 42));
            let mut inst = instance(&fake).await;
            let sink = inst.open(&cfg).await.unwrap().unwrap();
            let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
            let hook_calls = calls.clone();
            inst.on_stored(Some(Box::new(move |stored: &[u32]| {
                hook_calls.lock().unwrap().push(stored.to_vec())
            })));
            let report = if packed {
                let mut p = host_tests::runtime::PackedEvents::new(&events[0].tag);
                for e in &events {
                    p.push(e.time.seconds, e.time.nanoseconds, &e.record);
                }
                inst.put_packed(sink, &p).await.unwrap()
            } else {
                kinesis_ship::sink::core_report(inst.put(sink, &events).await.unwrap())
            };
            let calls = calls.lock().unwrap().clone();
            let stored: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
            (report, calls, stored)
        }
    };
    let (typed, typed_calls, typed_stored) = run(false).await;
    let (packed, packed_calls, packed_stored) = run(true).await;
    let verdict = |o: &kinesis_output::Outcome| match o {
        kinesis_output::Outcome::Delivered { .. } => "delivered".to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(typed.outcomes.len(), 600);
    let typed_verdicts: Vec<String> = typed.outcomes.iter().map(verdict).collect();
    let packed_verdicts: Vec<String> = packed.outcomes.iter().map(verdict).collect();
    assert_eq!(typed_verdicts, packed_verdicts);
    // The faults made every kind of outcome.
    for kind in ["delivered", "Failed", "Rejected"] {
        assert!(
            typed_verdicts.iter().any(|v| v.starts_with(kind)),
            "no {kind} outcome"
        );
    }
    assert_eq!(typed.counters, packed.counters);
    assert_eq!(typed_calls, packed_calls);
    assert!(typed_calls.len() >= 2, "stored told per answer: {typed_calls:?}");
    assert_eq!(typed_stored, packed_stored);

    // Bounds outside the buffer, and a time missing: those events alone are rejected.
    let fake = fake();
    let mut inst = instance(&fake).await;
    let sink = inst.open(&config(json!({}))).await.unwrap().unwrap();
    let mut p = host_tests::runtime::PackedEvents::new("t");
    for e in &events[..4] {
        p.push(e.time.seconds, e.time.nanoseconds, &e.record);
    }
    p.ends[1] = u32::MAX;
    p.times.pop();
    let report = inst.put_packed(sink, &p).await.unwrap();
    let verdicts: Vec<String> = report.outcomes.iter().map(verdict).collect();
    // Record 1 ends, and so record 2 starts, past the buffer.
    assert_eq!(verdicts[0], "delivered");
    for v in &verdicts[1..3] {
        assert!(
            v.contains("outside the records given") && v.contains("NotJson"),
            "{v}"
        );
    }
    assert!(verdicts[3].contains("no time"), "{}", verdicts[3]);
    assert_eq!(fake.stored().len(), 1);
}
