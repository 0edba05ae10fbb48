//! The built component in wasmtime, against the in-process fake Kinesis.

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
        assert!(f.message.contains("gave up after 2 retries"), "{}", f.message);
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
            json!({"process_credentials": {"process": "x"}}),
            "process_credentials",
            "cannot be combined with aws_key_id",
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

// ---- Credentials through the component, against fake STS, IMDS and container endpoints ----

const STS: &str = "sts.us-east-1.amazonaws.com";
const ISSUED_KEY: &str = "ASIAISSUEDBYFAKE";
const ISSUED_SECRET: &str = "issued-secret-value";

fn count(calls: &AtomicUsize) -> usize {
    calls.load(Ordering::SeqCst)
}

/// A fake STS that checks the action and issues ISSUED_KEY, valid for an hour; counts its calls.
fn fake_sts(calls: Arc<AtomicUsize>, expect_action: &'static str) -> Endpoint {
    Arc::new(move |method, path, _headers, body| {
        calls.fetch_add(1, Ordering::SeqCst);
        let form = String::from_utf8_lossy(body).to_string();
        if method != "POST" || path != "/" || !form.contains(&format!("Action={expect_action}")) {
            let err = "<ErrorResponse><Error><Code>InvalidAction</Code><Message>bad request</Message></Error></ErrorResponse>";
            return (400, err.as_bytes().to_vec());
        }
        let expiration = rfc3339_in_an_hour();
        let xml = format!(
            "<{expect_action}Response><{expect_action}Result><Credentials><AccessKeyId>{ISSUED_KEY}</AccessKeyId><SecretAccessKey>{ISSUED_SECRET}</SecretAccessKey><SessionToken>issued-token</SessionToken><Expiration>{expiration}</Expiration></Credentials></{expect_action}Result></{expect_action}Response>"
        );
        (200, xml.into_bytes())
    })
}

fn rfc3339_in_an_hour() -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(3600);
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    kinesis_output::timefmt::iso8601(secs, kinesis_output::timefmt::Zone::UTC)
}

fn chain_config() -> String {
    json!({"stream_name": STREAM, "region": "us-east-1", "endpoint": "http://kinesis.test:4567",
           "partition_key": "pod", "retry_base_delay": 0.001})
    .to_string()
}

/// Every secret value the credential tests use: none may appear in a report or a log.
const CREDENTIAL_SECRETS: &[&str] = &[
    SECRET,
    ISSUED_SECRET,
    "issued-token",
    "imds-session",
    "imds-token",
    "pod-session",
    "pod-identity-token",
    "eyJ.fake.jwt",
];

async fn ship_with(options: InstanceOptions, cfg: &str, events: &[Event]) -> PutReport {
    for s in CREDENTIAL_SECRETS {
        host_tests::transcript::secret(s);
    }
    let mut inst = Runtime::shared().instantiate_with(options).await.unwrap();
    let sink = inst.open(cfg).await.unwrap().expect("config accepted");
    let report = inst.put(sink, events).await.unwrap();
    assert_eq!(report.outcomes.len(), events.len());
    for text in [format!("{report:?}"), inst.stderr()] {
        for secret in CREDENTIAL_SECRETS {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
        }
    }
    report
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kinesis-creds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn web_identity_reads_the_granted_token_file_and_survives_an_expired_token() {
    let dir = tempdir("irsa");
    std::fs::write(dir.join("token"), "eyJ.fake.jwt\n").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Arc::new(FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET));
    // The first PutRecords says the token expired: one forced refresh, then delivery.
    fake.script([Fault::ExpiredToken]);
    let irsa = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks/token"),
        ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/logs"),
    ];
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&irsa)
        .dir(&dir, "/var/run/secrets/eks")
        .endpoint(STS, fake_sts(calls.clone(), "AssumeRoleWithWebIdentity"));
    let events = records(5);
    let report = ship_with(options, &chain_config(), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(
        report.credential_source,
        "web identity (arn:aws:iam::111122223333:role/logs)"
    );
    assert_eq!(count(&calls), 2, "one fetch, one forced refresh");
    let seen = fake.seen();
    let token = seen[1].headers.iter().find(|(k, _)| k == "x-amz-security-token");
    assert_eq!(token.map(|(_, v)| v.as_str()), Some("issued-token"));

    // Without the folder granted, the token cannot be read: records fail saying why.
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&irsa)
        .endpoint(STS, fake_sts(calls.clone(), "AssumeRoleWithWebIdentity"));
    let cfg = json!({"stream_name": STREAM, "region": "us-east-1", "endpoint": "http://kinesis.test:4567",
                     "retry_base_delay": 0.001, "retries_on_batch_request": 1})
    .to_string();
    let report = ship_with(options, &cfg, &records(2)).await;
    let Outcome::Failed(f) = &report.outcomes[0] else {
        panic!("{report:?}")
    };
    assert_eq!(f.code, "CredentialsUnavailable");
    assert!(f.message.contains("web identity token file"), "{}", f.message);
    assert_eq!(f.attempts, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instance_profile_comes_from_imdsv2_with_retries() {
    let fake = Arc::new(FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET));
    let token_requests = Arc::new(AtomicUsize::new(0));
    let t = token_requests.clone();
    let imds: Endpoint = Arc::new(move |method, path, headers, _| {
        let token = headers
            .iter()
            .find(|(k, _)| k == "x-aws-ec2-metadata-token")
            .map(|(_, v)| v.as_str());
        match (method, path) {
            ("PUT", "/latest/api/token") => {
                // The first attempt finds IMDS busy: aws_iam_retries lets the second succeed.
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (503, Vec::new());
                }
                (200, b"imds-token".to_vec())
            }
            _ if token != Some("imds-token") => (401, Vec::new()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => (200, b"node-role".to_vec()),
            ("GET", "/latest/meta-data/iam/security-credentials/node-role") => {
                let body = json!({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ISSUED_KEY,
                    "SecretAccessKey": ISSUED_SECRET, "Token": "imds-session", "Expiration": rfc3339_in_an_hour()});
                (200, body.to_string().into_bytes())
            }
            _ => (404, Vec::new()),
        }
    });
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).endpoint("169.254.169.254", imds);
    let events = records(3);
    let report = ship_with(options, &chain_config(), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(report.credential_source, "EC2 instance profile (IMDSv2)");
    assert_eq!(count(&token_requests), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn container_credentials_send_the_granted_authorization_token() {
    let dir = tempdir("pod-identity");
    std::fs::write(dir.join("eks-pod-identity-token"), "pod-identity-token").unwrap();
    let fake = Arc::new(FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET));
    let agent: Endpoint = Arc::new(|method, path, headers, _| {
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        if method != "GET" || path != "/v1/credentials" || auth != Some("pod-identity-token") {
            return (401, br#"{"message":"unauthorized"}"#.to_vec());
        }
        let body = json!({"AccessKeyId": ISSUED_KEY, "SecretAccessKey": ISSUED_SECRET,
            "Token": "pod-session", "AccountId": "111122223333", "Expiration": rfc3339_in_an_hour()});
        (200, body.to_string().into_bytes())
    });
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
        ])
        .dir(&dir, "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount")
        .endpoint("169.254.170.23", agent);
    let events = records(3);
    let report = ship_with(options, &chain_config(), &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(
        report.credential_source,
        "container credentials (http://169.254.170.23/v1/credentials)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_credentials_run_through_the_host_interface() {
    let fake = Arc::new(FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET));
    let output =
        json!({"Version": 1, "AccessKeyId": ISSUED_KEY, "SecretAccessKey": ISSUED_SECRET}).to_string();
    let cfg = json!({"stream_name": STREAM, "region": "us-east-1", "endpoint": "http://kinesis.test:4567",
        "partition_key": "pod", "process_credentials": {"process": format!("printf '%s' '{output}'")}})
    .to_string();
    let events = records(2);
    let report = ship_with(InstanceOptions::new(Upstream::Fake(fake.clone())), &cfg, &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(report.credential_source, "credential process");

    // A failing process: records fail with the process's own words.
    let cfg = json!({"stream_name": STREAM, "region": "us-east-1", "endpoint": "http://kinesis.test:4567",
        "retries_on_batch_request": 0, "process_credentials": {"process": "sh -c 'echo no profile >&2; exit 2'"}})
    .to_string();
    let report = ship_with(
        InstanceOptions::new(Upstream::Fake(fake.clone())),
        &cfg,
        &records(1),
    )
    .await;
    let Outcome::Failed(f) = &report.outcomes[0] else {
        panic!("{report:?}")
    };
    assert_eq!(f.code, "CredentialsUnavailable");
    assert!(f.message.contains("no profile"), "{}", f.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_and_file_secrets_work_inside_the_component() {
    let dir = tempdir("secrets");
    std::fs::write(dir.join("aws_sec_key"), format!("{SECRET}\n")).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Arc::new(FakeKinesis::new(STREAM, ISSUED_KEY, ISSUED_SECRET));
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .dir(&dir, "/etc/kinesis-secrets")
        .endpoint(STS, fake_sts(calls.clone(), "AssumeRole"));
    let cfg = json!({"stream_name": STREAM, "region": "us-east-1", "endpoint": "http://kinesis.test:4567",
        "partition_key": "pod", "aws_key_id": KEY_ID, "aws_sec_key": {"file": "/etc/kinesis-secrets/aws_sec_key"},
        "assume_role_credentials": {"role_arn": "arn:aws:iam::111122223333:role/writer", "role_session_name": "fluentd"}})
    .to_string();
    let events = records(4);
    let report = ship_with(options, &cfg, &events).await;
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(count(&calls), 1);
    assert!(report
        .credential_source
        .starts_with("assume role arn:aws:iam::111122223333:role/writer"));
    assert!(!format!("{report:?}").contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn record_shaping_runs_inside_the_component() {
    use std::io::Read as _;
    // ltsv with inject, gzip-compressed, keyed by a nested path.
    let fake = fake();
    let cfg = config(json!({
        "partition_key": "$.kubernetes.pod_name",
        "format": {"type": "ltsv"},
        "inject": {"tag_key": "tag", "time_key": "time", "time_type": "unixtime"},
        "compression": "gzip",
    }));
    let events = vec![event(
        r#"{"log":"hello","kubernetes":{"pod_name":"web-1"}}"#,
        1_700_000_000,
    )];
    let (report, _) = ship(&fake, &cfg, &events).await;
    assert!(matches!(report.outcomes[0], Outcome::Delivered(_)), "{report:?}");
    let stored = &fake.stored()[0];
    assert_eq!(stored.partition_key, "web-1");
    let mut text = String::new();
    flate2_gunzip(&stored.data).read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "log:hello\tkubernetes:{\"pod_name\"=>\"web-1\"}\ttag:kube.var.log.containers\ttime:1700000000\n"
    );

    // data_key: the field's text as it is; a record without it is rejected, the rest ship.
    let fake = self::fake();
    let cfg = config(json!({"data_key": "log", "partition_key": null}));
    let events = vec![event(r#"{"log":"raw line"}"#, 1), event(r#"{"other":1}"#, 2)];
    let (report, _) = ship(&fake, &cfg, &events).await;
    assert!(matches!(report.outcomes[0], Outcome::Delivered(_)));
    let Outcome::Rejected(r) = &report.outcomes[1] else {
        panic!("{report:?}")
    };
    assert_eq!(r.kind, RejectionKind::NoDataKey);
    assert_eq!(fake.stored()[0].data, b"raw line");
}

/// A gzip reader (the fake stores what the component sent).
fn flate2_gunzip(data: &[u8]) -> impl std::io::Read + '_ {
    flate2::read::GzDecoder::new(data)
}

// ---- The proxy world, in-process: the request formats log agents send, and the answers ----

mod proxy {
    use super::*;
    use host_tests::runtime::{full_body, ProxyRuntime};
    use http_body_util::BodyExt;
    use std::io::Write;

    /// One request to a fresh proxy instance configured by `config` (as `KINESIS_OUTPUT_CONFIG`).
    async fn request(
        fake: &Arc<FakeKinesis>,
        env: &[(&str, &str)],
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, HashMap<String, String>, serde_json::Value) {
        let options = InstanceOptions::new(Upstream::Fake(fake.clone())).env(env);
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://proxy.test{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = ProxyRuntime::shared()
            .handle(&options, builder.body(full_body(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        host_tests::transcript::record("proxy answer", &String::from_utf8_lossy(&bytes));
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, body)
    }

    async fn post(
        fake: &Arc<FakeKinesis>,
        cfg: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, HashMap<String, String>, serde_json::Value) {
        request(
            fake,
            &[("KINESIS_OUTPUT_CONFIG", cfg)],
            "POST",
            "/",
            headers,
            body,
        )
        .await
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn stored_json(fake: &FakeKinesis) -> Vec<serde_json::Value> {
        fake.stored()
            .iter()
            .map(|s| serde_json::from_slice(&s.data).unwrap())
            .collect()
    }

    /// Fluent Bit's `http` output with `Format json_lines`, `json_date_key date`, `compress gzip`
    /// and `header_tag X-Tag`: Content-Type application/json (not x-ndjson), one record a line
    /// with the date first, gzip, User-Agent Fluent-Bit. Each json_date_format reads right.
    #[tokio::test(flavor = "multi_thread")]
    async fn fluent_bit_json_lines_requests_ship_with_their_dates_and_tag() {
        let cfg = config(json!({
            "inject": {"tag_key": "tag", "time_key": "event_time"},
        }));
        for (format, date, expected_time) in [
            (
                "double",
                json!(1700000000.123456),
                "2023-11-14T22:13:20.123456000+0000",
            ),
            ("epoch", json!(1700000000), "2023-11-14T22:13:20.000000000+0000"),
            (
                "epoch_ms",
                json!(1700000000123u64),
                "2023-11-14T22:13:20.123000000+0000",
            ),
            (
                "iso8601",
                json!("2023-11-14T22:13:20.123456Z"),
                "2023-11-14T22:13:20.123456000+0000",
            ),
            (
                "java_sql_timestamp",
                json!("2023-11-14 22:13:20.123456"),
                "2023-11-14T22:13:20.123456000+0000",
            ),
        ] {
            let fake = fake();
            let lines: Vec<String> = (0..3)
                .map(|i| {
                    json!({"date": date, "log": format!("line {i}"), "stream": "stdout", "pod": format!("web-{i}")})
                        .to_string()
                })
                .collect();
            let body = gzip((lines.join("\n") + "\n").as_bytes());
            let (status, _, answer) = post(
                &fake,
                &cfg,
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                    ("user-agent", "Fluent-Bit"),
                    ("x-tag", "kube.var.log.containers.web"),
                ],
                body,
            )
            .await;
            assert_eq!(status, 200, "{format}: {answer}");
            assert_eq!(answer, json!({"delivered": 3, "failed": 0, "rejected": 0}));
            let stored = stored_json(&fake);
            assert_eq!(stored.len(), 3, "{format}");
            for record in &stored {
                assert_eq!(record["event_time"], expected_time, "{format}");
                assert_eq!(record["tag"], "kube.var.log.containers.web");
                assert_eq!(record["date"], date, "{format}: the record itself is unchanged");
            }
            let keys: Vec<_> = fake.stored().iter().map(|s| s.partition_key.clone()).collect();
            assert_eq!(keys, vec!["web-0", "web-1", "web-2"]);
        }
    }

    /// Vector's `http` sink with `encoding.codec = "json"`, `framing.method =
    /// "newline_delimited"` and `compression = "zstd"` (or gzip): application/x-ndjson, RFC 3339
    /// timestamps with nanoseconds; and its default JSON-array framing.
    #[tokio::test(flavor = "multi_thread")]
    async fn vector_ndjson_and_array_requests_ship() {
        let cfg = config(json!({"inject": {"time_key": "event_time"}}));
        let records: Vec<serde_json::Value> = (0..4)
            .map(|i| {
                json!({"message": format!("m{i}"), "timestamp": "2023-11-14T22:13:20.123456789Z",
                       "pod": format!("api-{i}"), "source_type": "kubernetes_logs"})
            })
            .collect();
        let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();

        let fake = fake();
        let zstd =
            ruzstd::encoding::compress_to_vec(ndjson.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
        let (status, _, answer) = post(
            &fake,
            &cfg,
            &[
                ("content-type", "application/x-ndjson"),
                ("content-encoding", "zstd"),
            ],
            zstd,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let stored = stored_json(&fake);
        assert_eq!(stored.len(), 4);
        assert!(stored
            .iter()
            .all(|r| r["event_time"] == "2023-11-14T22:13:20.123456789+0000"));

        let fake = self::fake();
        let array = serde_json::to_vec(&records).unwrap();
        let (status, _, _) = post(
            &fake,
            &cfg,
            &[("content-type", "application/json"), ("content-encoding", "gzip")],
            gzip(&array),
        )
        .await;
        assert_eq!(status, 200);
        let messages: Vec<_> = stored_json(&fake).iter().map(|r| r["message"].clone()).collect();
        assert_eq!(messages, vec!["m0", "m1", "m2", "m3"]);
    }

    /// An agent that re-sends a body whenever the status is outside 200-205 (Fluent Bit's rule;
    /// Vector re-sends on 5xx and 429, a subset) never stores a record twice: a body with stored
    /// records is answered 202 with the lines that were not stored, and only a body with no
    /// stored record is answered 503.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_resending_agent_never_duplicates_stored_records() {
        let mut every_status = Vec::new();
        for seed in 1..=8u64 {
            // Small bodies (one request) meet 503s, large ones (8 requests) partial deliveries.
            let count = if seed % 2 == 0 { 3 } else { 40 };
            let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
                RandomFaults {
                    throttle_records: 0.3,
                    request_fault_rate: 0.3,
                    request_faults: vec![Fault::ServerError, Fault::DropConnection, Fault::Throttled],
                    ..RandomFaults::default()
                },
                seed,
            ));
            // No retries inside the proxy: every fault reaches the agent.
            let cfg = config(json!({"retries_on_batch_request": 0, "batch_request_max_count": 5}));
            let lines: Vec<String> = (0..count)
                .map(|i| json!({"pod": format!("p{}", i % 9), "seq": i}).to_string())
                .collect();
            let body = (lines.join("\n") + "\n").into_bytes();
            let mut answers = Vec::new();
            let (mut status, mut answer);
            loop {
                (status, _, answer) = post(
                    &fake,
                    &cfg,
                    &[("content-type", "application/x-ndjson")],
                    body.clone(),
                )
                .await;
                answers.push(status);
                if (200..=205).contains(&status) || answers.len() > 50 {
                    break;
                }
                assert_eq!(status, 503, "{answer}");
                assert_eq!(answer["delivered"], 0);
            }
            let stored = stored_json(&fake);
            let mut seqs: Vec<u64> = stored.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
            seqs.sort();
            let before = seqs.len();
            seqs.dedup();
            assert_eq!(
                before,
                seqs.len(),
                "seed {seed}: a record was stored twice ({answers:?})"
            );
            // Every line is either stored or listed as not stored, never both.
            let listed: Vec<u64> = answer["lines"]
                .as_array()
                .map(|a| a.iter().map(|l| l["line"].as_u64().unwrap() - 1).collect())
                .unwrap_or_default();
            for line in &listed {
                assert!(
                    !seqs.contains(line),
                    "seed {seed}: line {} both stored and listed",
                    line + 1
                );
            }
            assert_eq!(seqs.len() + listed.len(), count as usize, "seed {seed}: {answer}");
            assert_eq!(answer["delivered"].as_u64().unwrap() as usize, seqs.len());
            if status == 202 {
                assert!(answer["failed"].as_u64().unwrap() > 0);
            }
            every_status.extend(answers);
        }
        // The faults reached both answers that matter here.
        assert!(every_status.contains(&503), "{every_status:?}");
        assert!(every_status.contains(&202), "{every_status:?}");
    }

    fn example(path: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(path),
        )
        .unwrap()
    }

    /// An example's proxy settings, pointed at the fake.
    fn example_config(path: &str) -> String {
        let mut cfg: serde_json::Value = serde_json::from_str(&example(path)).unwrap();
        cfg["stream_name"] = json!(STREAM);
        cfg["endpoint"] = json!("http://kinesis.test:4567");
        cfg["aws_key_id"] = json!(KEY_ID);
        cfg["aws_sec_key"] = json!(SECRET);
        cfg.to_string()
    }

    /// A Kubernetes record as the agents' kubernetes enrichment shapes it.
    fn k8s_record(i: usize) -> serde_json::Value {
        json!({"log": format!("GET /api/{i} 200"), "stream": "stdout",
               "kubernetes": {"pod_name": format!("web-{}", i % 3), "namespace_name": "shop"}})
    }

    /// The requests Fluent Bit makes with `examples/fluent-bit/fluent-bit.yaml`, built from that
    /// file's `http` output settings, are taken by the proxy with `kinesis.json` beside it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_fluent_bit_example_sends_what_the_proxy_takes() {
        let doc: serde_yaml::Value = serde_yaml::from_str(&example("fluent-bit/fluent-bit.yaml")).unwrap();
        let output = &doc["pipeline"]["outputs"][0];
        let get = |k: &str| output[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
        assert_eq!(get("name"), "http");
        assert_eq!(get("format"), "json_lines");
        // Fluent Bit's date formats, as it writes them for 2023-11-14T22:13:20.123456Z.
        let date = match get("json_date_format").as_str() {
            "double" => json!(1700000000.123456),
            "epoch" => json!(1700000000),
            "epoch_ms" => json!(1700000000123u64),
            "iso8601" => json!("2023-11-14T22:13:20.123456Z"),
            "java_sql_timestamp" => json!("2023-11-14 22:13:20.123456"),
            other => panic!("unknown json_date_format {other}"),
        };
        let mut body = String::new();
        for i in 0..6 {
            // The date key comes first, then the record.
            let mut record = serde_json::Map::new();
            record.insert(get("json_date_key"), date.clone());
            record.extend(k8s_record(i).as_object().unwrap().clone());
            body.push_str(&serde_json::Value::Object(record).to_string());
            body.push('\n');
        }
        assert_eq!(get("compress"), "gzip");
        let tag_header = get("header_tag");
        let headers = [
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("user-agent", "Fluent-Bit"),
            (
                tag_header.as_str(),
                "kube.var.log.containers.web-0_shop_app-1.log",
            ),
        ];
        let mut cfg: serde_json::Value =
            serde_json::from_str(&example_config("fluent-bit/kinesis.json")).unwrap();
        cfg["inject"] = json!({"tag_key": "tag", "time_key": "event_time"});
        let fake = fake();
        let (status, _, answer) = post(&fake, &cfg.to_string(), &headers, gzip(body.as_bytes())).await;
        assert_eq!(status, 200, "{answer}");
        let stored = stored_json(&fake);
        assert_eq!(stored.len(), 6);
        assert_eq!(stored[0]["tag"], "kube.var.log.containers.web-0_shop_app-1.log");
        assert_eq!(stored[0]["event_time"], "2023-11-14T22:13:20.123456000+0000");
        let keys: Vec<_> = fake.stored().iter().map(|s| s.partition_key.clone()).collect();
        assert_eq!(keys, vec!["web-0", "web-1", "web-2", "web-0", "web-1", "web-2"]);
    }

    /// Likewise for Vector's `http` sink with `examples/vector/vector.yaml`.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_vector_example_sends_what_the_proxy_takes() {
        let doc: serde_yaml::Value = serde_yaml::from_str(&example("vector/vector.yaml")).unwrap();
        let sink = &doc["sinks"]["kinesis"];
        assert_eq!(sink["type"].as_str(), Some("http"));
        assert_eq!(sink["encoding"]["codec"].as_str(), Some("json"));
        let content_type = match sink["framing"]["method"].as_str() {
            Some("newline_delimited") => "application/x-ndjson",
            other => panic!("framing {other:?}"),
        };
        let records: Vec<serde_json::Value> = (0..6)
            .map(|i| {
                let mut r = k8s_record(i);
                r["message"] = r["log"].take();
                r["timestamp"] = json!("2023-11-14T22:13:20.123456789Z");
                r["source_type"] = json!("kubernetes_logs");
                r
            })
            .collect();
        let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
        let encoding = sink["compression"].as_str().unwrap();
        let body = match encoding {
            "zstd" => ruzstd::encoding::compress_to_vec(
                ndjson.as_bytes(),
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
            "gzip" => gzip(ndjson.as_bytes()),
            other => panic!("compression {other}"),
        };
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), content_type.into()),
            ("content-encoding".into(), encoding.into()),
        ];
        for (k, v) in sink["request"]["headers"].as_mapping().unwrap() {
            headers.push((k.as_str().unwrap().into(), v.as_str().unwrap().into()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut cfg: serde_json::Value =
            serde_json::from_str(&example_config("vector/kinesis.json")).unwrap();
        cfg["inject"] = json!({"tag_key": "tag", "time_key": "event_time"});
        let fake = fake();
        let (status, _, answer) = post(&fake, &cfg.to_string(), &headers, body).await;
        assert_eq!(status, 200, "{answer}");
        let stored = stored_json(&fake);
        assert_eq!(stored.len(), 6);
        assert_eq!(stored[0]["tag"], "vector.kubernetes");
        assert_eq!(stored[0]["event_time"], "2023-11-14T22:13:20.123456789+0000");
        assert_eq!(fake.stored()[1].partition_key, "web-1");

        // Its health check.
        let health = sink["healthcheck"]["uri"].as_str().unwrap();
        let path = &health[health.find("/health").unwrap()..];
        let env = [("KINESIS_OUTPUT_CONFIG", example_config("vector/kinesis.json"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, _) = request(&fake, &env, "GET", path, &[], vec![]).await;
        assert_eq!(status, 200);
    }

    /// `examples/logging-operator-proxy.env` is what `kinesis-ship env` makes of the
    /// logging-operator example, and the proxy takes it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_logging_operator_example_converts_to_proxy_variables() {
        let spec = host_tests::ship::read_config(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/logging-operator-output.yaml"),
        )
        .unwrap();
        let text = host_tests::ship::env_lines(&spec, false, false).unwrap();
        assert_eq!(
            text,
            example("logging-operator-proxy.env"),
            "regenerate the example"
        );
        let mut env: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let fake = Arc::new(FakeKinesis::new("example-stream-name", KEY_ID, SECRET));
        env.extend([
            (
                "KINESIS_OUTPUT_ENDPOINT".to_string(),
                "http://kinesis.test:4567".to_string(),
            ),
            ("AWS_ACCESS_KEY_ID".to_string(), KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
        ]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, answer) =
            request(&fake, &env, "POST", "/", &[], b"{\"log\":\"hello\"}".to_vec()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(fake.stored()[0].data, b"{\"log\":\"hello\"}\n");
        // --single and --shell forms.
        let single = host_tests::ship::env_lines(&spec, true, true).unwrap();
        assert!(single.starts_with("export KINESIS_OUTPUT_CONFIG='{"), "{single}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn statuses_for_rejections_bad_bodies_and_other_requests() {
        let fake = fake();
        let cfg = config(json!({}));
        let ndjson = [("content-type", "application/x-ndjson")];

        // Every record rejected (no partition key): 422, with each line.
        let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"a\":1}\n{\"b\":2}\n".to_vec()).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["lines"][1]["code"], "NoPartitionKey");

        // Some stored, one rejected: 202 naming line 2.
        let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"pod\":\"a\"}\n{\"b\":2}\n".to_vec()).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["lines"],
            json!([{"line": 2, "outcome": "rejected", "code": "NoPartitionKey",
            "message": answer["lines"][0]["message"]}])
        );

        // Not what it claims: 400 with the line, and nothing sent.
        let sent = fake.seen().len();
        let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"pod\":\"a\"}\nnot json\n".to_vec()).await;
        assert_eq!((status, answer["line"].clone()), (400, json!(2)), "{answer}");
        let (status, _, _) = post(&fake, &cfg, &[("content-encoding", "gzip")], b"plain".to_vec()).await;
        assert_eq!(status, 400);
        assert_eq!(fake.seen().len(), sent, "a refused body sends nothing");

        // Too large, before and after decompression; too many records.
        let small = config(json!({"proxy": {"max_body_size": 1000, "max_records": 3}}));
        let (status, _, _) = post(&fake, &small, &ndjson, vec![b' '; 1001]).await;
        assert_eq!(status, 413);
        let (status, _, _) = post(
            &fake,
            &small,
            &[("content-encoding", "gzip")],
            gzip(&[b' '; 5000]),
        )
        .await;
        assert_eq!(status, 413);
        let (status, _, answer) = post(&fake, &small, &ndjson, b"{}\n{}\n{}\n{}\n".to_vec()).await;
        assert_eq!(status, 413, "{answer}");

        // Unsupported media, other methods and paths, health.
        let (status, _, _) = post(
            &fake,
            &cfg,
            &[("content-type", "application/msgpack")],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(status, 415);
        let env = [("KINESIS_OUTPUT_CONFIG", cfg.as_str())];
        let (status, headers, _) = request(&fake, &env, "GET", "/", &[], vec![]).await;
        assert_eq!((status, headers["allow"].as_str()), (405, "POST"));
        let (status, _, _) = request(&fake, &env, "POST", "/elsewhere", &[], vec![]).await;
        assert_eq!(status, 404);
        let (status, _, answer) = request(&fake, &env, "GET", "/health", &[], vec![]).await;
        assert_eq!((status, answer["status"].clone()), (200, json!("ok")));
        let (status, _, _) = request(&fake, &env, "HEAD", "/health", &[], vec![]).await;
        assert_eq!(status, 200);
    }

    /// One variable per setting, secrets in their own variables; a bad or missing configuration
    /// is a 500 (agents keep the records) and a failing health check, never a secret in the text.
    #[tokio::test(flavor = "multi_thread")]
    async fn configuration_from_one_variable_per_setting() {
        let fake = fake();
        let env = [
            ("KINESIS_OUTPUT_STREAM_NAME", STREAM),
            ("KINESIS_OUTPUT_REGION", "us-east-1"),
            ("KINESIS_OUTPUT_ENDPOINT", "http://kinesis.test:4567"),
            ("KINESIS_OUTPUT_PARTITION_KEY", "pod"),
            ("KINESIS_OUTPUT_AWS_KEY_ID", KEY_ID),
            ("KINESIS_OUTPUT_AWS_SEC_KEY", r#"{"env":"MY_SECRET"}"#),
            ("MY_SECRET", SECRET),
            (
                "KINESIS_OUTPUT_FORMAT",
                r#"{"type":"single_value","message_key":"log"}"#,
            ),
        ];
        let (status, _, answer) = request(
            &fake,
            &env,
            "POST",
            "/",
            &[("content-type", "application/x-ndjson")],
            b"{\"pod\":\"a\",\"log\":\"hello\"}\n".to_vec(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(fake.stored()[0].data, b"hello\n");

        let bad = [
            ("KINESIS_OUTPUT_STREAM_NAME", STREAM),
            ("KINESIS_OUTPUT_AWS_KEY_ID", KEY_ID),
            ("KINESIS_OUTPUT_AWS_SEC_KEY", SECRET),
            ("KINESIS_OUTPUT_BATCH_REQUEST_MAX_COUNT", "600"),
            ("AWS_REGION", "us-east-1"),
        ];
        let (status, headers, answer) = request(&fake, &bad, "POST", "/", &[], b"{}".to_vec()).await;
        assert_eq!(status, 500, "{answer}");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(answer["field"], "batch_request_max_count");
        assert!(!answer.to_string().contains(SECRET));
        let (status, _, answer) = request(&fake, &bad, "GET", "/health", &[], vec![]).await;
        assert_eq!(status, 503, "{answer}");
        let (status, _, answer) = request(&fake, &[], "GET", "/health", &[], vec![]).await;
        assert_eq!(status, 503);
        assert!(answer["message"]
            .as_str()
            .unwrap()
            .contains("KINESIS_OUTPUT_CONFIG"));
    }
}

// ---- Egress policy: the host refuses every authority it was not told about ----

#[tokio::test(flavor = "multi_thread")]
async fn the_egress_policy_refuses_other_authorities_with_a_clear_failure() {
    let fake = fake();
    let allowed = vec!["kinesis.test:4567".to_string()];
    let events = records(5);

    // The configured endpoint is allowed: everything ships.
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).egress(allowed.clone());
    let report = ship_with(options, &config(json!({})), &events).await;
    assert_exactly_delivered(&fake, &events, &report);

    // An endpoint the policy does not name: refused by the host, never reached.
    let requests_before = fake.seen().len();
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).egress(allowed.clone());
    let mut inst = Runtime::shared().instantiate_with(options).await.unwrap();
    let sink = inst
        .open(&config(
            json!({"endpoint": "http://elsewhere.test:4567", "retries_on_batch_request": 1}),
        ))
        .await
        .unwrap()
        .unwrap();
    let report = inst.put(sink, &events).await.unwrap();
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a refusal, got {o:?}")
        };
        assert_eq!(f.code, "HttpRequestDenied", "{}", f.message);
        assert!(
            f.message.contains("http://elsewhere.test:4567") && f.message.contains("egress policy"),
            "{}",
            f.message
        );
    }
    assert_eq!(fake.seen().len(), requests_before, "nothing reached Kinesis");
    assert!(inst.refused().iter().all(|r| r == "http://elsewhere.test:4567"));
    assert!(!inst.refused().is_empty());

    // A credential endpoint outside the policy: the credential error says so.
    let agent_calls = Arc::new(AtomicUsize::new(0));
    let calls = agent_calls.clone();
    let agent: Endpoint = Arc::new(move |_, _, _, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        (200, b"{}".to_vec())
    });
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        )])
        .endpoint("169.254.170.23", agent)
        .egress(allowed);
    let report = ship_with(options, &chain_config(), &records(2)).await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a credential failure, got {o:?}")
        };
        assert!(
            f.message.contains("http://169.254.170.23") && f.message.contains("egress policy"),
            "{}",
            f.message
        );
    }
    assert_eq!(
        count(&agent_calls),
        0,
        "the credential endpoint was never reached"
    );
}

#[test]
fn kinesis_ship_allows_what_its_configuration_needs_and_nothing_else() {
    let cfg = json!({"stream_name": "logs", "region": "eu-west-1", "endpoint": "http://127.0.0.1:4567"})
        .to_string();
    let env = vec![(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
        "http://169.254.170.23/v1/credentials".to_string(),
    )];
    assert_eq!(
        host_tests::ship::egress_policy(&cfg, &env, &[]),
        ["127.0.0.1:4567", "169.254.170.23:80"]
    );
    let with_keys =
        json!({"stream_name": "logs", "region": "eu-west-1", "aws_key_id": "AKID", "aws_sec_key": "x"})
            .to_string();
    assert_eq!(
        host_tests::ship::egress_policy(&with_keys, &env, &["proxy.internal:3128".to_string()]),
        ["kinesis.eu-west-1.amazonaws.com:443", "proxy.internal:3128"]
    );
    assert_eq!(
        host_tests::ship::egress_policy("{not json", &env, &[]),
        Vec::<String>::new(),
        "a broken configuration reaches nothing"
    );
}

// ---- Deadlines the component keeps itself ----

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_endpoint_or_a_stalled_body_never_hangs_the_put() {
    // The fake ignores every timeout the component asks of the host: only the component's own
    // deadline (request_timeout from the start of each request) ends the wait.
    let fake = fake();
    fake.script([Fault::Hang, Fault::StallBody]);
    let events = records(6);
    let started = std::time::Instant::now();
    let (report, _) = ship(&fake, &config(json!({"request_timeout": 0.3})), &events).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(fake.seen().len(), 3, "hang, stall, then a normal answer");
    assert_eq!(report.counters.retries, 12);

    // Without retries the records fail, saying why.
    let fake = self::fake();
    fake.script([Fault::Hang]);
    let (report, _) = ship(
        &fake,
        &config(json!({"request_timeout": 0.2, "retries_on_batch_request": 0})),
        &records(2),
    )
    .await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a timeout, got {o:?}")
        };
        assert!(
            f.message.contains("RequestTimeout")
                && f.message.contains("http://kinesis.test:4567")
                && f.message.contains("request_timeout of 200ms"),
            "{}",
            f.message
        );
    }
}
