//! `kinesis-ship serve` is not an open relay: bearer tokens and basic credentials, TLS (and
//! mutual TLS), the refusal to listen beyond loopback without authentication, and the streams a
//! placeholder may route to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tests::fake_kinesis::FakeKinesis;
use host_tests::listener::{self, https_request, TestCa};

use super::*;

const TOKEN: &str = "fluent-bit-bearer-token-4f9a2c71";
const PASSWORD: &str = "basic-auth-password-77d1";

fn fake_and_config(name: &str, stream_name: &str) -> (Arc<FakeKinesis>, listener::Listener, PathBuf) {
    let fake = Arc::new(FakeKinesis::new(name, KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir(name);
    let config = json!({
        "stream_name": stream_name, "region": "us-east-1",
        "endpoint": format!("http://{}", upstream.addr),
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    (fake, upstream, dir)
}

/// A sample of `text` (Prometheus), 0 when absent.
fn sample(text: &str, name: &str) -> u64 {
    metric(text, name).unwrap_or(0)
}

/// Run the real Fluent Bit tailing `lines` into serve over TLS with `header` (if any) until
/// `done` says so (bounded); its log.
fn fluent_bit_posts(
    fluent_bit: &Path,
    dir: &Path,
    addr: &str,
    ca: &Path,
    header: Option<&str>,
    lines: &[String],
    done: impl Fn() -> bool,
) -> String {
    let input = dir.join(format!("in-{}.log", lines.len()));
    std::fs::write(&input, ndjson(lines)).unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let header = header.map_or(String::new(), |h| format!("    header {h}\n"));
    let conf = format!(
        "[SERVICE]\n    flush 1\n    log_level info\n[INPUT]\n    name tail\n    path {}\n    read_from_head true\n[OUTPUT]\n    name http\n    match *\n    host {host}\n    port {port}\n    uri /\n    format json_lines\n    tls on\n    tls.verify on\n    tls.ca_file {}\n    retry_limit 1\n{header}",
        input.display(),
        ca.display()
    );
    let conf_path = dir.join("fluent-bit.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let log = dir.join("fluent-bit.log");
    let mut agent = host_tests::fluent_bit::command(fluent_bit, &conf_path, &log)
        .unwrap()
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until && !done() {
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = agent.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    host_tests::transcript::record("fluent-bit log", &text);
    text
}

#[test]
fn fluent_bit_posts_with_a_bearer_token_over_tls_and_nothing_passes_without_it() {
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        println!("{}", host_tests::fluent_bit::NOT_FOUND);
        return;
    };
    host_tests::transcript::secret(TOKEN);
    let (fake, _upstream, dir) = fake_and_config("it-guard-tls", "it-guard-tls");
    let ca = TestCa::new();
    for (name, text) in [
        ("ca.pem", &ca.ca_pem),
        ("cert.pem", &ca.server_cert_pem),
        ("key.pem", &ca.server_key_pem),
        ("token", &format!("{TOKEN}\n")),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let mut server = kinesis_ship_serve_with(
        &dir.join("config.json"),
        &[
            "--tls-cert",
            &path("cert.pem"),
            "--tls-key",
            &path("key.pem"),
            "--auth-token-file",
            &path("token"),
        ],
    );
    let metrics = |addr: &str| {
        https_request(addr, "GET", "/metrics", &[], b"", &ca.ca_pem, None)
            .map(|(_, _, body)| body)
            .unwrap_or_default()
    };
    // The right token: every record arrives.
    let good = lines(0, 300);
    let log = fluent_bit_posts(
        &fluent_bit,
        &dir,
        &server.addr,
        &dir.join("ca.pem"),
        Some(&format!("Authorization Bearer {TOKEN}")),
        &good,
        || fake.stored().len() >= good.len(),
    );
    assert_eq!(fake.stored().len(), good.len(), "every record once\n{log}");
    // A wrong token and none: 401, nothing stored.
    for (i, header) in [Some("Authorization Bearer not-the-token-at-all-0000"), None]
        .into_iter()
        .enumerate()
    {
        let refused_before = sample(
            &metrics(&server.addr),
            "kinesis_output_serve_responses_total{status=\"401\"}",
        );
        let log = fluent_bit_posts(
            &fluent_bit,
            &dir,
            &server.addr,
            &dir.join("ca.pem"),
            header,
            &lines(1000 * (i + 1), 10),
            || {
                sample(
                    &metrics(&server.addr),
                    "kinesis_output_serve_responses_total{status=\"401\"}",
                ) > refused_before
            },
        );
        assert!(log.contains("401"), "Fluent Bit was told 401\n{log}");
        assert_eq!(fake.stored().len(), good.len(), "nothing more stored");
    }
    // Our own client: the challenge names the scheme; plain http is not spoken.
    let (status, head, _) = https_request(&server.addr, "POST", "/", &[], b"{}\n", &ca.ca_pem, None).unwrap();
    assert_eq!(status, 401);
    assert!(
        head.contains("www-authenticate: bearer realm=\"kinesis-ship\""),
        "{head}"
    );
    let (status, _) = http(&server.addr, "GET", "/health", &[], b"").unwrap_or((0, String::new()));
    assert_ne!(status, 200, "no plain http on a TLS listener");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let mut stderr = String::new();
    let _ = server.child.wait();
    std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    host_tests::transcript::record("kinesis-ship serve stderr", &stderr);
    assert!(
        !stderr.contains(TOKEN) && !stderr.contains("not-the-token"),
        "{stderr}"
    );
}

#[test]
fn basic_credentials_and_mutual_tls_and_the_open_routes() {
    host_tests::transcript::secret(PASSWORD);
    let (fake, _upstream, dir) = fake_and_config("it-guard-basic", "it-guard-basic");
    std::fs::write(dir.join("users"), format!("# senders\nvector:{PASSWORD}\n")).unwrap();
    let server = kinesis_ship_serve_with(
        &dir.join("config.json"),
        &["--basic-auth-file", dir.join("users").to_str().unwrap()],
    );
    let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
    let body = ndjson(&lines(0, 5));
    let (status, head, answer) = http_with_head(
        &server.addr,
        "POST",
        "/",
        &[("authorization", &basic(&format!("vector:{PASSWORD}")))],
        &body,
    )
    .unwrap();
    assert_eq!(status, 200, "{head}{answer}");
    for wrong in [
        Some(basic("vector:nope")),
        Some(basic(&format!("fluent:{PASSWORD}"))),
        None,
    ] {
        let headers: Vec<(&str, &str)> = wrong.iter().map(|w| ("authorization", w.as_str())).collect();
        let (status, head, answer) = http_with_head(&server.addr, "POST", "/", &headers, &body).unwrap();
        assert_eq!(status, 401, "{answer}");
        assert!(
            head.contains("www-authenticate: basic realm=\"kinesis-ship\""),
            "{head}"
        );
        assert!(!answer.contains(PASSWORD));
    }
    assert_eq!(fake.stored().len(), 5, "only the authenticated body");
    // From loopback, health and metrics need no credentials.
    assert_eq!(http(&server.addr, "GET", "/health", &[], b"").unwrap().0, 200);
    let (status, text) = http(&server.addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        sample(&text, "kinesis_output_serve_responses_total{status=\"401\"}"),
        3
    );
    drop(server);

    // Mutual TLS: a client certificate the CA signed is the credential.
    let ca = TestCa::new();
    let (client_cert, client_key) = ca.client("fluent-bit");
    let stranger = TestCa::new().client("stranger");
    for (name, text) in [
        ("ca.pem", &ca.ca_pem),
        ("cert.pem", &ca.server_cert_pem),
        ("key.pem", &ca.server_key_pem),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let server = kinesis_ship_serve_with(
        &dir.join("config.json"),
        &[
            "--tls-cert",
            &path("cert.pem"),
            "--tls-key",
            &path("key.pem"),
            "--tls-client-ca",
            &path("ca.pem"),
        ],
    );
    let body = ndjson(&lines(100, 3));
    let (status, _, answer) = https_request(
        &server.addr,
        "POST",
        "/",
        &[],
        &body,
        &ca.ca_pem,
        Some((&client_cert, &client_key)),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    // No client certificate, or one another CA signed: no conversation.
    for client in [None, Some((stranger.0.as_str(), stranger.1.as_str()))] {
        assert!(
            https_request(&server.addr, "POST", "/", &[], &body, &ca.ca_pem, client).is_err(),
            "client certificate {:?}",
            client.map(|_| "from another CA")
        );
    }
    assert_eq!(fake.stored().len(), 8);
}

#[test]
fn listening_beyond_loopback_without_authentication_is_refused() {
    let (_fake, _upstream, dir) = fake_and_config("it-guard-open", "it-guard-open");
    let config = dir.join("config.json");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(SHIP);
        cmd.args(["serve", "--config"]).arg(&config).args(args);
        run_bounded(cmd, b"")
    };
    // Refused before anything binds.
    let (code, stderr) = run(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{stderr}");
    for flag in ["--auth-token-file", "--basic-auth-file", "--insecure-no-auth"] {
        assert!(stderr.contains(flag), "{stderr}");
    }
    // A token too short to be one: refused, and not shown.
    std::fs::write(dir.join("token"), "hunter2hunter").unwrap();
    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--auth-token-file",
        dir.join("token").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("at least 16 characters") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    // TLS needs both halves.
    let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--tls-cert", "x.pem"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[test]
fn records_routed_outside_the_allowed_streams_are_rejected() {
    let (fake, _upstream, dir) = fake_and_config("it-guard-route", "${$.stream}");
    let server = kinesis_ship_serve_with(&dir.join("config.json"), &["--allow-stream", "it-guard-route"]);
    let record = |stream: &str, i: usize| json!({"stream": stream, "pod": "web", "i": i}).to_string();
    let body = ndjson(&[
        record("it-guard-route", 0),
        record("payments", 1),
        record("it-guard-route", 2),
    ]);
    let (status, answer) = http(&server.addr, "POST", "/", &[], &body).unwrap();
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        problems(&answer),
        vec![(2, "NoStreamName".to_string())],
        "{answer}"
    );
    assert!(
        answer["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"payments\" (from \"${$.stream}\") is not among allowed_streams"),
        "{answer}"
    );
    assert_eq!(fake.stored().len(), 2);
}
