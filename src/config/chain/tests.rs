//! Credential sources against scripted endpoints, files and processes, with a clock the tests
//! move.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::auth::credentials::parse_sts_response;
use crate::kinesis::Code;
use crate::platform::{HttpRequest, HttpResponse, Platform, TransportError};
use crate::shaping::timefmt::parse_timestamp;

type Route = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, TransportError>>;

struct Host {
    now: SystemTime,
    env: HashMap<String, String>,
    files: HashMap<String, String>,
    route: Route,
    requests: Vec<HttpRequest>,
    sleeps: Vec<Duration>,
    process_output: Vec<Result<String, String>>,
    processes: Vec<String>,
}

const T0: u64 = 1_764_100_000; // 2025-11-25T19:46:40Z

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Host {
    fn new(route: impl FnMut(&HttpRequest) -> Result<HttpResponse, TransportError> + 'static) -> Host {
        Host {
            now: at(T0),
            env: HashMap::new(),
            files: HashMap::new(),
            route: Box::new(route),
            requests: Vec::new(),
            sleeps: Vec::new(),
            process_output: Vec::new(),
            processes: Vec::new(),
        }
    }
    fn env(mut self, pairs: &[(&str, &str)]) -> Host {
        for (k, v) in pairs {
            self.env.insert(k.to_string(), v.to_string());
        }
        self
    }
    fn file(mut self, path: &str, text: &str) -> Host {
        self.files.insert(path.to_string(), text.to_string());
        self
    }
}

impl Environment for Host {
    fn var(&mut self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .map(|t| t.as_bytes().to_vec())
            .ok_or_else(|| "No such file or directory".to_string())
    }
}

impl Platform for Host {
    fn wall_clock(&mut self) -> SystemTime {
        self.now
    }
    fn monotonic(&mut self) -> Duration {
        self.now.duration_since(UNIX_EPOCH).unwrap()
    }
    fn sleep(&mut self, d: Duration) {
        self.sleeps.push(d);
        self.now += d;
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        buf.fill(7);
    }
    fn send_all(&mut self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        requests
            .into_iter()
            .map(|r| {
                let out = (self.route)(&r);
                self.requests.push(r);
                out
            })
            .collect()
    }
    fn run_process(&mut self, command: &str) -> Result<String, String> {
        self.processes.push(command.to_string());
        if self.process_output.is_empty() {
            return Err("no output scripted".to_string());
        }
        self.process_output.remove(0)
    }
}

fn ok(body: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: 200,
        body: body.as_bytes().to_vec(),
    })
}

fn status(code: u16, body: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: code,
        body: body.as_bytes().to_vec(),
    })
}

fn sts_xml(action: &str, key: &str, expiration: &str) -> String {
    format!(
        r#"<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>secret-of-{key}</SecretAccessKey>
      <SessionToken>token&amp;of-{key}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
  </{action}Result>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</{action}Response>"#
    )
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(body).split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            let mut out = Vec::new();
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap(),
                    );
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
    })
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn config(json: &str) -> Config {
    Config::from_json(json, &mut |_: &str| None).unwrap()
}

const CHAIN: &str = r#"{"stream_name":"s","region":"eu-west-1","retry_base_delay":0.01}"#;

#[test]
fn timestamps_parse_as_rfc3339() {
    assert_eq!(parse_timestamp("2025-11-25T19:46:40Z"), Some(at(T0)));
    assert_eq!(
        parse_timestamp("2025-11-25T19:46:40.5Z"),
        Some(at(T0) + Duration::from_millis(500))
    );
    assert_eq!(parse_timestamp("2025-11-25T20:46:40+01:00"), Some(at(T0)));
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
    assert_eq!(parse_timestamp("2024-02-29T00:00:00Z"), Some(at(1_709_164_800)));
    for bad in [
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-11-25",
        "2025-11-25T25:00:00Z",
        // Found by the `credentials` fuzz target: these overflowed the arithmetic.
        "2026-+1-26T04:066-9999999999999990:00.5",
        "2026-11-26T04:00:00+99999999999999:00",
        "9223372036854775807-01-01T00:00:00Z",
        "2025-11-25T20:46:40+01:75",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn sts_answers_and_errors_are_read() {
    let c = parse_sts_response(&HttpResponse {
        status: 200,
        body: sts_xml("AssumeRole", "ASIAONE", "2025-11-25T20:46:40Z").into_bytes(),
    })
    .unwrap();
    assert_eq!(c.access_key_id, "ASIAONE");
    assert_eq!(c.session_token.unwrap().expose(), "token&of-ASIAONE");
    assert_eq!(c.expiration, Some(at(T0 + 3600)));
    let e = parse_sts_response(&HttpResponse {
        status: 403,
        body: br#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed to assume</Message></Error></ErrorResponse>"#.to_vec(),
    })
    .unwrap_err();
    assert!(
        e.message
            .contains("AccessDenied: not allowed to assume (HTTP 403)"),
        "{}",
        e.message
    );
    let e = parse_sts_response(&HttpResponse {
        status: 200,
        body: b"<AssumeRoleResponse><Credentials><AccessKeyId>x</AccessKeyId></Credentials></AssumeRoleResponse>".to_vec(),
    })
    .unwrap_err();
    assert!(e.message.contains("lacks"), "{}", e.message);
    let e = parse_sts_response(&HttpResponse {
        status: 503,
        body: b"upstream gone".to_vec(),
    })
    .unwrap_err();
    assert!(e.message.contains("HTTP 503: upstream gone"), "{}", e.message);
}

#[test]
fn web_identity_exchanges_the_token_file_with_sts_unsigned() {
    let mut host = Host::new(|r| {
        assert_eq!(r.url, "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(
            form_value(&r.body, "Action").as_deref(),
            Some("AssumeRoleWithWebIdentity")
        );
        ok(&sts_xml(
            "AssumeRoleWithWebIdentity",
            "ASIAWEB",
            "2025-11-25T20:46:40Z",
        ))
    })
    .env(&[
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ),
        ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/logs"),
        ("AWS_ROLE_SESSION_NAME", "pod-a"),
    ])
    .file(
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        "eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
    );
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(
        p.source.describe(),
        "web identity (arn:aws:iam::111122223333:role/logs)"
    );
    let c = p.get(&mut host, false).unwrap();
    assert_eq!(c.access_key_id, "ASIAWEB");
    let r = &host.requests[0];
    assert_eq!(
        form_value(&r.body, "WebIdentityToken").as_deref(),
        Some("eyJhbGciOiJSUzI1NiJ9.payload.sig")
    );
    assert_eq!(
        form_value(&r.body, "RoleArn").as_deref(),
        Some("arn:aws:iam::111122223333:role/logs")
    );
    assert_eq!(form_value(&r.body, "RoleSessionName").as_deref(), Some("pod-a"));
    assert_eq!(
        header(r, "authorization"),
        None,
        "AssumeRoleWithWebIdentity is unsigned"
    );

    // A missing token file, or no role, are clear errors.
    host.files.clear();
    let e = p.get(&mut host, true).unwrap_err();
    assert!(
        e.message.contains("reading the web identity token file"),
        "{}",
        e.message
    );
    let mut bad = Host::new(|_| ok("")).env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]);
    assert_eq!(
        resolve(&config(CHAIN), &mut bad).unwrap_err().field,
        "AWS_ROLE_ARN"
    );
}

#[test]
fn container_credentials_use_the_ecs_host_and_the_token_file() {
    let body = r#"{"AccessKeyId":"ASIAECS","SecretAccessKey":"s","Token":"t","Expiration":"2025-11-25T20:46:40Z","RoleArn":"arn:aws:iam::1:role/task"}"#;
    let mut host = Host::new(move |_| ok(body))
        .env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")]);
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIAECS");
    assert_eq!(host.requests[0].url, "http://169.254.170.2/v2/credentials/abc");
    assert_eq!(header(&host.requests[0], "authorization"), None);

    // EKS Pod Identity: full URI, token file read at every fetch.
    let mut host = Host::new(move |_| ok(body))
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
        .file(
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            "first-token",
        );
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    p.get(&mut host, false).unwrap();
    host.files.insert(
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token".into(),
        "rotated-token".into(),
    );
    p.get(&mut host, true).unwrap();
    assert_eq!(header(&host.requests[0], "authorization"), Some("first-token"));
    assert_eq!(header(&host.requests[1], "authorization"), Some("rotated-token"));

    // Only https, loopback and the ECS/EKS hosts are allowed over http.
    let mut bad =
        Host::new(|_| ok("")).env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds")]);
    assert_eq!(
        resolve(&config(CHAIN), &mut bad).unwrap_err().field,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    );

    // Errors: endpoint status, malformed body, endpoint down.
    for (answer, expect) in [
        (status(500, "boom"), "HTTP 500: boom"),
        (ok("{not json"), "not credentials JSON"),
        (
            ok(r#"{"AccessKeyId":"x"}"#),
            "lacks AccessKeyId or SecretAccessKey",
        ),
        (
            Err(TransportError::new("ConnectionRefused", "refused")),
            "ConnectionRefused",
        ),
    ] {
        let mut answers = Some(answer);
        let mut host = Host::new(move |_| answers.take().unwrap())
            .env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds")]);
        let e = resolve(&config(CHAIN), &mut host)
            .unwrap()
            .get(&mut host, false)
            .unwrap_err();
        assert!(e.message.contains(expect), "{expect}: {}", e.message);
    }
}

fn imds_route(
    mut token_status: Vec<u16>,
) -> impl FnMut(&HttpRequest) -> Result<HttpResponse, TransportError> {
    move |r: &HttpRequest| match (r.method, r.url.as_str()) {
        ("PUT", "http://169.254.169.254/latest/api/token") => {
            assert_eq!(header(r, "x-aws-ec2-metadata-token-ttl-seconds"), Some("21600"));
            match token_status.remove(0) {
                200 => ok("imds-session-token"),
                s => status(s, ""),
            }
        }
        ("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/") => ok("node-role\n"),
        ("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/node-role") => ok(
            r#"{"Code":"Success","LastUpdated":"2025-11-25T19:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"s","Token":"t","Expiration":"2025-11-26T01:46:40Z"}"#,
        ),
        other => panic!("unexpected IMDS request {other:?}"),
    }
}

#[test]
fn the_instance_profile_uses_imdsv2_and_honours_aws_iam_retries() {
    let mut host = Host::new(imds_route(vec![200]));
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.source.describe(), "EC2 instance profile (IMDSv2)");
    let c = p.get(&mut host, false).unwrap();
    assert_eq!(c.access_key_id, "ASIAIMDS");
    assert_eq!(c.expiration, Some(at(T0 + 6 * 3600)));
    assert!(host.requests[1..]
        .iter()
        .all(|r| header(r, "x-aws-ec2-metadata-token") == Some("imds-session-token")));

    // Two failures, then success: retried with doubling waits.
    let mut host = Host::new(imds_route(vec![500, 503, 200]));
    let json = r#"{"stream_name":"s","region":"eu-west-1","retry_base_delay":0.01,"aws_iam_retries":2}"#;
    let mut p = resolve(&config(json), &mut host).unwrap();
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIAIMDS");
    assert_eq!(
        host.sleeps,
        vec![Duration::from_millis(10), Duration::from_millis(20)]
    );

    // Retries run out: aws_iam_retries + 1 attempts.
    let mut host = Host::new(imds_route(vec![500, 500, 500, 500]));
    let json = r#"{"stream_name":"s","region":"eu-west-1","retry_base_delay":0.01,"aws_iam_retries":3}"#;
    let e = resolve(&config(json), &mut host)
        .unwrap()
        .get(&mut host, false)
        .unwrap_err();
    assert!(e.message.contains("after 4 attempts"), "{}", e.message);
    assert_eq!(host.requests.len(), 4);

    // No IMDSv1 unless asked for.
    let mut host = Host::new(imds_route(vec![403]));
    let e = resolve(&config(CHAIN), &mut host)
        .unwrap()
        .get(&mut host, false)
        .unwrap_err();
    assert!(e.message.contains("IMDSv1 fallback is off"), "{}", e.message);
    assert_eq!(host.requests.len(), 1, "a refusal is not retried");
    let mut host = Host::new(imds_route(vec![403]));
    let json = r#"{"stream_name":"s","region":"eu-west-1","imds_v1_fallback":true}"#;
    resolve(&config(json), &mut host)
        .unwrap()
        .get(&mut host, false)
        .unwrap();
    assert_eq!(header(&host.requests[1], "x-aws-ec2-metadata-token"), None);

    // Turned off entirely: no source at all is a configuration error.
    let mut host = Host::new(|_| ok("")).env(&[("AWS_EC2_METADATA_DISABLED", "true")]);
    let e = resolve(&config(CHAIN), &mut host).unwrap_err();
    assert_eq!(e.field, "aws_key_id");
    assert!(e.message.contains("no credentials"), "{e}");
}

#[test]
fn credential_processes_print_version_1_json() {
    let json = r#"{"stream_name":"s","region":"eu-west-1","process_credentials":{"process":"aws-vault exec logs --json"}}"#;
    let mut host = Host::new(|_| ok(""));
    host.process_output = vec![
        Ok(r#"{"Version":1,"AccessKeyId":"ASIAPROC","SecretAccessKey":"s","SessionToken":"t","Expiration":"2025-11-25T20:46:40Z"}"#.into()),
        Ok(r#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"s"}"#.into()),
        Err("exit status 1: profile not found".into()),
    ];
    let mut p = resolve(&config(json), &mut host).unwrap();
    let c = p.get(&mut host, false).unwrap();
    assert_eq!(c.access_key_id, "ASIAPROC");
    assert_eq!(c.session_token.unwrap().expose(), "t");
    assert_eq!(host.processes, vec!["aws-vault exec logs --json"]);
    assert!(p
        .get(&mut host, true)
        .unwrap_err()
        .message
        .contains("\"Version\": 1"));
    assert!(p
        .get(&mut host, true)
        .unwrap_err()
        .message
        .contains("profile not found"));
}

#[test]
fn assume_role_is_signed_with_the_base_credentials() {
    let json = r#"{"stream_name":"s","region":"eu-west-1","aws_key_id":"AKIDBASE","aws_sec_key":"base-secret",
        "assume_role_credentials":{"role_arn":"arn:aws:iam::444455556666:role/writer","role_session_name":"fluentd",
        "duration_seconds":"1800","external_id":"ext-1","policy":"{\"Version\":\"2012-10-17\"}"}}"#;
    let mut host = Host::new(|_| ok(&sts_xml("AssumeRole", "ASIAROLE", "2025-11-25T20:16:40Z")));
    let mut p = resolve(&config(json), &mut host).unwrap();
    assert_eq!(
        p.source.describe(),
        "assume role arn:aws:iam::444455556666:role/writer from static keys from the configuration"
    );
    let c = p.get(&mut host, false).unwrap();
    assert_eq!(c.access_key_id, "ASIAROLE");
    let r = &host.requests[0];
    assert_eq!(r.url, "https://sts.eu-west-1.amazonaws.com/");
    let auth = header(r, "authorization").unwrap();
    assert!(
        auth.contains("Credential=AKIDBASE/20251125/eu-west-1/sts/aws4_request"),
        "{auth}"
    );
    assert_eq!(form_value(&r.body, "DurationSeconds").as_deref(), Some("1800"));
    assert_eq!(form_value(&r.body, "ExternalId").as_deref(), Some("ext-1"));
    assert_eq!(
        form_value(&r.body, "Policy").as_deref(),
        Some("{\"Version\":\"2012-10-17\"}")
    );
    assert_eq!(form_value(&r.body, "RoleSessionName").as_deref(), Some("fluentd"));
}

#[test]
fn credentials_are_cached_and_refreshed_before_they_expire() {
    let mut n = 0;
    let mut host = Host::new(move |_| {
        n += 1;
        match n {
            // Valid for one hour each.
            1 => ok(&sts_xml(
                "AssumeRoleWithWebIdentity",
                "ASIA1",
                "2025-11-25T20:46:40Z",
            )),
            2 => status(500, "sts down"),
            3 => ok(&sts_xml(
                "AssumeRoleWithWebIdentity",
                "ASIA3",
                "2025-11-25T21:46:40Z",
            )),
            _ => status(500, "sts down"),
        }
    })
    .env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
    ])
    .file("/t", "tok");
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIA1");
    host.now = at(T0 + 3000);
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIA1", "cached");
    assert_eq!(host.requests.len(), 1);
    // Within five minutes of expiry: refresh; the refresh fails but the old ones still work.
    host.now = at(T0 + 3400);
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIA1");
    assert_eq!(host.requests.len(), 2);
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIA3");
    // Forced (after ExpiredToken): fetch anew, and a failure is an error.
    let e = p.get(&mut host, true).unwrap_err();
    assert!(
        e.message
            .starts_with("web identity (arn:aws:iam::1:role/r): STS answered HTTP 500"),
        "{}",
        e.message
    );
    // Expired and no refresh: an error, never stale credentials.
    host.now = at(T0 + 7300);
    assert!(p.get(&mut host, false).is_err());
}

#[test]
fn shared_files_give_keys_roles_and_processes() {
    let credentials = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n\n[base]\naws_access_key_id=AKIDBASE\naws_secret_access_key=base-secret\n";
    let config_file = "[default]\nregion = eu-west-1\n\n[profile writer]\nrole_arn = arn:aws:iam::1:role/writer\nsource_profile = base\nexternal_id = x1\n\n[profile tool]\ncredential_process = /usr/bin/creds tool\n\n[sso-session s]\nsso_region = eu-west-1\n";
    let files = |profile: Option<&str>| {
        let mut h = Host::new(|_| ok(&sts_xml("AssumeRole", "ASIAW", "2025-11-25T20:46:40Z")))
            .env(&[("HOME", "/home/app")])
            .file("/home/app/.aws/credentials", credentials)
            .file("/home/app/.aws/config", config_file);
        if let Some(p) = profile {
            h.env.insert("AWS_PROFILE".into(), p.into());
        }
        h
    };
    let mut host = files(None);
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.source.describe(), "shared profile \"default\"");
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "AKIDDEFAULT");

    let mut host = files(Some("writer"));
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "ASIAW");
    assert!(header(&host.requests[0], "authorization")
        .unwrap()
        .contains("AKIDBASE/"));
    assert_eq!(
        form_value(&host.requests[0].body, "ExternalId").as_deref(),
        Some("x1")
    );

    let mut host = files(Some("tool"));
    let p = resolve(&config(CHAIN), &mut host).unwrap();
    assert!(matches!(&p.source, Source::Process { command } if command == "/usr/bin/creds tool"));

    let mut host = files(Some("missing"));
    let e = resolve(&config(CHAIN), &mut host).unwrap_err();
    assert_eq!(e.field, "AWS_PROFILE");
    assert!(e.message.contains("\"missing\""), "{e}");

    // Explicit file locations.
    let mut host = Host::new(|_| ok(""))
        .env(&[("AWS_SHARED_CREDENTIALS_FILE", "/etc/aws/creds")])
        .file("/etc/aws/creds", credentials);
    let mut p = resolve(&config(CHAIN), &mut host).unwrap();
    assert_eq!(p.get(&mut host, false).unwrap().access_key_id, "AKIDDEFAULT");
}

#[test]
fn the_chain_tries_sources_in_order() {
    let all = [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/c"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"),
    ];
    let expected = [
        "environment (AWS_ACCESS_KEY_ID)",
        "web identity (arn:aws:iam::1:role/r)",
        "shared profile \"default\"",
        "container credentials (http://169.254.170.2/v2/x)",
        "EC2 instance profile (IMDSv2)",
    ];
    for (skip, want) in expected.iter().enumerate() {
        let start = match skip {
            0 => 0,
            1 => 2,
            2 => 4,
            3 => 5,
            _ => 6,
        };
        let mut host = Host::new(|_| ok(""))
            .env(&all[start..])
            .file("/c", "[default]\naws_access_key_id=A\naws_secret_access_key=B\n");
        assert_eq!(
            resolve(&config(CHAIN), &mut host).unwrap().source.describe(),
            *want
        );
    }
    // Static keys in the configuration come first of all.
    let json = r#"{"stream_name":"s","region":"eu-west-1","aws_key_id":"AKIDCONF","aws_sec_key":"x"}"#;
    let mut host = Host::new(|_| ok("")).env(&all);
    assert_eq!(
        resolve(&config(json), &mut host).unwrap().source.describe(),
        "static keys from the configuration"
    );
}

#[test]
fn an_expired_token_forces_a_refresh_and_a_retry() {
    use crate::delivery::Sink;
    use crate::kinesis::{Event, Outcome};
    let mut kinesis_calls = 0;
    let mut host = Host::new(move |r| {
        if r.url.starts_with("https://sts.") {
            return ok(&sts_xml("AssumeRoleWithWebIdentity", "ASIAFRESH", "2025-11-26T19:46:40Z"));
        }
        kinesis_calls += 1;
        if kinesis_calls == 1 {
            status(400, r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#)
        } else {
            ok(r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}"#)
        }
    })
    .env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")])
    .file("/t", "tok");
    let mut sink = Sink::open(CHAIN, &mut host).unwrap();
    let report = sink.put(
        &[Event {
            tag: "t",
            seconds: 0,
            nanoseconds: 0,
            record: br#"{"a":1}"#,
        }],
        &mut host,
    );
    assert!(
        matches!(report.outcomes[0], Outcome::Delivered { .. }),
        "{report:?}"
    );
    assert_eq!(report.credential_source, "web identity (arn:aws:iam::1:role/r)");
    let sts_calls = host
        .requests
        .iter()
        .filter(|r| r.url.starts_with("https://sts."))
        .count();
    assert_eq!(sts_calls, 2, "the expired token forced one refresh");

    // No credentials at all: the records fail with a code that says so.
    let mut host = Host::new(|_| status(500, "sts down"))
        .env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .file("/t", "tok");
    let mut sink = Sink::open(
        r#"{"stream_name":"s","region":"eu-west-1","retry_base_delay":0.01,"retries_on_batch_request":2}"#,
        &mut host,
    )
    .unwrap();
    let report = sink.put(
        &[Event {
            tag: "t",
            seconds: 0,
            nanoseconds: 0,
            record: br#"{"a":1}"#,
        }],
        &mut host,
    );
    match &report.outcomes[0] {
        Outcome::Failed { code, attempts, .. } => {
            assert_eq!(*code, Code::CredentialsUnavailable);
            assert_eq!(*attempts, 0, "never sent");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.requests.len(), 3, "one credential attempt per round");
}
