//! Credentials through the component, against fake STS, IMDS and container endpoints.

use super::*;

const STS: &str = "sts.us-east-1.amazonaws.com";
const ISSUED_KEY: &str = "ASIAISSUEDBYFAKE";
const ISSUED_SECRET: &str = "issued-secret-value";

pub(super) fn count(calls: &AtomicUsize) -> usize {
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
    kinesis_output::shaping::timefmt::iso8601(secs, kinesis_output::shaping::timefmt::Zone::UTC)
}

pub(super) fn chain_config() -> String {
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

pub(super) async fn ship_with(options: InstanceOptions, cfg: &str, events: &[Event]) -> PutReport {
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
