//! Our hosts as services: serve's metrics, shutdown on a signal (serve and ship), the limit on
//! requests at once, HTTP proxies and private CAs, JSON logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tests::connect_proxy::ConnectProxy;
use host_tests::fake_kinesis::{FakeKinesis, Fault, RandomFaults};
use host_tests::listener::{self, TestCa};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::*;

fn fake_config(dir: &Path, stream: &str, endpoint: &str, extra: Value) -> PathBuf {
    let mut config = json!({
        "stream_name": stream, "region": "us-east-1", "endpoint": endpoint, "partition_key": "pod",
        "retries_on_batch_request": 8, "reset_backoff_if_success": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn sample(text: &str, name: &str) -> u64 {
    metric(text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

fn stored_once(fake: &FakeKinesis, want: &[String]) {
    let mut got: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
    let mut want: Vec<Vec<u8>> = want.iter().map(|l| expected(l).0).collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "every record stored once");
    assert!(got == want, "the stored records are the ones sent");
}

#[test]
fn serve_metrics_count_what_the_service_stored() {
    let fake = Arc::new(
        FakeKinesis::new("it-metrics", KEY_ID_VALUE, SECRET_VALUE).with_random_faults(
            RandomFaults {
                throttle_records: 0.2,
                ..RandomFaults::default()
            },
            7,
        ),
    );
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("metrics");
    let config = fake_config(
        &dir,
        "it-metrics",
        &format!("http://{}", upstream.addr),
        json!({"retries_on_batch_request": 20}),
    );
    let server = kinesis_ship_serve(&config);
    // Whole requests throttled too, before the random per-record throttling.
    fake.script([Fault::Throttled, Fault::Throttled]);
    let mut sent = Vec::new();
    for round in 0..4 {
        let batch = lines(round * 100, 50);
        let mut body = ndjson(&batch);
        // One record without its partition key each round: rejected, never sent.
        body.extend_from_slice(b"{\"log\":\"no key here\"}\n");
        let (status, answer) = http(&server.addr, "POST", "/", &[], &body).unwrap();
        assert_eq!(status, 202, "{answer}");
        sent.extend(batch);
    }
    let (status, text) = http(&server.addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(status, 200);
    stored_once(&fake, &sent);
    let stored = fake.stored().len() as u64;
    assert_eq!(
        sample(&text, "kinesis_output_records_total{outcome=\"delivered\"}"),
        stored
    );
    assert_eq!(
        sample(&text, "kinesis_output_records_total{outcome=\"failed\"}"),
        0
    );
    assert_eq!(
        sample(&text, "kinesis_output_records_total{outcome=\"rejected\"}"),
        4
    );
    assert_eq!(
        sample(
            &text,
            "kinesis_output_rejected_records_total{kind=\"NoPartitionKey\"}"
        ),
        4
    );
    // What the fake saw, request by request, is what serve counted.
    let seen = fake.seen();
    let by_status = |status: u16| seen.iter().filter(|s| s.status == status).count() as u64;
    assert!(by_status(400) >= 2, "the scripted throttling");
    assert_eq!(
        sample(
            &text,
            "kinesis_output_requests_total{service=\"kinesis\",status=\"200\"}"
        ),
        by_status(200)
    );
    assert_eq!(
        sample(
            &text,
            "kinesis_output_requests_total{service=\"kinesis\",status=\"400\"}"
        ),
        by_status(400)
    );
    assert_eq!(
        sample(&text, "kinesis_output_request_duration_seconds_count"),
        seen.len() as u64
    );
    // Records sent again: those of the throttled requests, and those throttled one by one.
    // (The fake counts no records in the requests it throttles whole: the first body's 50,
    // twice.)
    let sent_records: u64 = seen.iter().map(|s| s.records as u64).sum::<u64>() + 2 * 50;
    assert_eq!(
        sample(&text, "kinesis_output_retries_total"),
        sent_records - stored,
        "every record sent beyond its first time is a retry"
    );
    assert!(sample(&text, "kinesis_output_throttled_records_total") >= sent_records - stored);
    assert!(sample(&text, "kinesis_output_bytes_sent_total") > stored * 100);
    assert_eq!(
        sample(&text, "kinesis_output_serve_responses_total{status=\"202\"}"),
        4
    );
    assert_eq!(sample(&text, "kinesis_output_traps_total"), 0);
    assert_eq!(
        sample(&text, "kinesis_output_credential_refreshes_total"),
        0,
        "static keys"
    );
    assert!(text.contains("# TYPE kinesis_output_request_duration_seconds histogram"));
}

/// Send SIGTERM to `child`.
fn terminate(child: &std::process::Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
}

/// Wait (bounded) for `child` to exit; its status code.
fn exit_code(child: &mut std::process::Child, within: Duration) -> i32 {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("still running after {within:?}");
}

#[test]
fn serve_answers_what_it_accepted_then_exits_on_sigterm() {
    let fake = Arc::new(FakeKinesis::new("it-stop", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("serve-stop");
    let config = fake_config(&dir, "it-stop", &format!("http://{}", upstream.addr), json!({}));
    let mut server = kinesis_ship_serve(&config);
    // The put takes 2 s at the service; SIGTERM comes in the middle of it.
    fake.script([Fault::Slow(Duration::from_secs(2))]);
    let batch = lines(0, 40);
    let (addr, body) = (server.addr.clone(), ndjson(&batch));
    let in_flight = std::thread::spawn(move || http(&addr, "POST", "/", &[], &body));
    std::thread::sleep(Duration::from_millis(700));
    terminate(&server.child);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http(&server.addr, "POST", "/", &[], &ndjson(&lines(100, 1))).is_err(),
        "no new connection after SIGTERM"
    );
    let (status, answer) = in_flight
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(exit_code(&mut server.child, Duration::from_secs(30)), 0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SIGTERM") && stderr.contains("every request answered"),
        "{stderr}"
    );
    stored_once(&fake, &batch);
}

#[test]
fn ship_ships_what_it_read_then_reports_where_it_stopped_on_sigterm() {
    let fake = Arc::new(FakeKinesis::new("it-ship-stop", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("ship-stop");
    let config = fake_config(
        &dir,
        "it-ship-stop",
        &format!("http://{}", upstream.addr),
        json!({"buffer": {"chunk_limit_records": 100, "flush_interval": "1h"}}),
    );
    let report = dir.join("report.json");
    fake.script([Fault::Slow(Duration::from_secs(2))]);
    let mut child = Command::new(SHIP)
        .arg("--config")
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 250 lines and the input kept open: two chunks go out (the first one slow), half a chunk
    // waits for more input or a flush that is an hour away.
    let batch = lines(0, 250);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&ndjson(&batch)).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    terminate(&child);
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(30)),
        1,
        "stopped before its input ended"
    );
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 250, "{report}");
    assert_eq!(
        report["stopped"],
        json!({"signal": "SIGTERM", "unread_from_line": 251})
    );
    stored_once(&fake, &batch);
}

#[test]
fn serve_holds_at_most_max_requests_and_loses_nothing() {
    let fake = Arc::new(FakeKinesis::new("it-limit", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("limit");
    let config = fake_config(&dir, "it-limit", &format!("http://{}", upstream.addr), json!({}));
    let server = kinesis_ship_serve_with(&config, &["--max-requests", "2", "--max-memory", "64"]);
    let pid = server.child.id();
    // What serve says it is shipping, sampled while the senders run.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (addr, watching) = (server.addr.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut most = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((200, text)) = http(&addr, "GET", "/metrics", &[], b"") {
                    most = most.max(sample(&text, "kinesis_output_serve_requests_in_flight"));
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            most
        })
    };
    // Every put takes 300 ms: 8 senders at once, each with 200 records of about 1 KiB.
    fake.script((0..64).map(|_| Fault::Slow(Duration::from_millis(300))));
    let senders: Vec<_> = (0..8)
        .map(|s| {
            let addr = server.addr.clone();
            let batch: Vec<String> = (0..200)
                .map(|i| {
                    json!({"pod": format!("web-{}", i % 7), "sender": s, "i": i, "log": "x".repeat(900)})
                        .to_string()
                })
                .collect();
            std::thread::spawn(move || {
                let body = ndjson(&batch);
                let mut refused = 0;
                for _ in 0..600 {
                    // A refusal may come before the body is written, and the connection close
                    // under it: the agent sends again, as on a 503.
                    match http_with_head(&addr, "POST", "/", &[], &body) {
                        Ok((200, _, _)) => return (batch, refused),
                        Ok((503, head, answer)) => {
                            assert!(head.contains("retry-after: 1"), "{head}");
                            assert!(answer.contains("--max-requests"), "{answer}");
                            refused += 1;
                        }
                        Ok((status, _, answer)) => panic!("{status}: {answer}"),
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                panic!("never let in");
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut refused = 0;
    for s in senders {
        let (batch, r) = s.join().unwrap();
        all.extend(batch);
        refused += r;
    }
    assert!(
        refused > 0,
        "more senders than places: some were told to come back"
    );
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    assert!(
        (1..=2).contains(&most),
        "at most 2 requests shipped at once, saw {most}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    // The stated bound (README "Operating it"): the host itself, and per place the body and
    // the instance's linear memory (--max-memory).
    let bound_mib = 160 + 2 * (1 + 64);
    assert!(
        peak_kib < bound_mib * 1024,
        "serve's peak RSS {} MiB is over {bound_mib} MiB",
        peak_kib / 1024
    );
    stored_once(&fake, &all);
}

#[test]
fn requests_go_through_the_proxy_and_trust_the_private_ca() {
    let ca = TestCa::new();
    let fake = Arc::new(FakeKinesis::new("it-proxy", KEY_ID_VALUE, SECRET_VALUE));
    let tls = listener::serve_tls(fake.clone(), "127.0.0.1:0".parse().unwrap(), &ca).unwrap();
    let plain = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = ConnectProxy::start(Some(("relay", "proxy-pass-value"))).unwrap();
    host_tests::transcript::secret("proxy-pass-value");
    let dir = temp_dir("proxy");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let proxy_url = format!("http://relay:proxy-pass-value@{}", proxy.addr);
    let run = |endpoint: String, env: &[(&str, &str)], args: &[&str], from: usize| {
        let config = fake_config(
            &dir,
            "it-proxy",
            &endpoint,
            // A refused certificate or proxy fails the run at once, not after Fluentd's 72 h.
            json!({"retries_on_batch_request": 1, "buffer": {"retry_max_times": 0}}),
        );
        let mut cmd = Command::new(SHIP);
        cmd.arg("--config").arg(&config).args(args);
        for (k, _) in std::env::vars()
            .filter(|(k, _)| k.ends_with("_PROXY") || k.ends_with("_proxy") || k == "SSL_CERT_FILE")
        {
            cmd.env_remove(k);
        }
        cmd.env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let batch = lines(from, 20);
        let (code, stderr) = run_bounded(cmd, &ndjson(&batch));
        host_tests::transcript::record("kinesis-ship stderr (proxy)", &stderr);
        assert!(
            !stderr.contains("proxy-pass-value"),
            "the proxy's password in the log: {stderr}"
        );
        (code, stderr, batch)
    };
    let https = format!("https://127.0.0.1:{}", tls.addr.port());
    let ca_arg = ["--ca-file", ca_file.to_str().unwrap()];

    // https through a CONNECT tunnel, trusting the private CA by --ca-file.
    let (code, stderr, first) = run(https.clone(), &[("HTTPS_PROXY", &proxy_url)], &ca_arg, 0);
    assert_eq!(code, 0, "{stderr}");
    let tunnels: Vec<_> = proxy
        .asked()
        .into_iter()
        .filter(|a| a.method == "CONNECT")
        .collect();
    assert!(!tunnels.is_empty(), "the tunnel was used");
    assert!(
        tunnels
            .iter()
            .all(|a| a.target == format!("127.0.0.1:{}", tls.addr.port()) && a.authorized),
        "{tunnels:?}"
    );
    // The same CA from SSL_CERT_FILE.
    let ca_text = ca_file.to_str().unwrap();
    let (code, stderr, second) = run(
        https.clone(),
        &[("https_proxy", &proxy_url), ("SSL_CERT_FILE", ca_text)],
        &[],
        100,
    );
    assert_eq!(code, 0, "{stderr}");
    // Without the CA the endpoint's certificate is refused, through the proxy or not.
    let (code, stderr, _) = run(https.clone(), &[("HTTPS_PROXY", &proxy_url)], &[], 200);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("NetworkError"), "{stderr}");
    // NO_PROXY: straight to the endpoint, the proxy not asked.
    let before = proxy.asked().len();
    let (code, stderr, third) = run(
        https,
        &[("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "localhost,127.0.0.1")],
        &ca_arg,
        300,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(proxy.asked().len(), before, "NO_PROXY bypasses the proxy");
    // Plain http: the whole URL to the proxy, which forwards it.
    let (code, stderr, fourth) = run(
        format!("http://{}", plain.addr),
        &[("HTTP_PROXY", &proxy_url)],
        &[],
        400,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        proxy
            .asked()
            .iter()
            .any(|a| a.method == "POST" && a.target == format!("http://{}/", plain.addr) && a.authorized),
        "{:?}",
        proxy.asked()
    );
    // A proxy that refuses the credentials: nothing sent, the records reported failed.
    let wrong = format!("http://relay:wrong@{}", proxy.addr);
    let (code, stderr, _) = run(
        format!("http://{}", plain.addr),
        &[("HTTP_PROXY", &wrong)],
        &[],
        500,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP407") && !stderr.contains(":wrong@"),
        "{stderr}"
    );
    let mut want = first;
    want.extend(second);
    want.extend(third);
    want.extend(fourth);
    stored_once(&fake, &want);
}

/// An `https://` proxy: TLS to the proxy itself (its certificate from a private CA, trusted by
/// `--ca-file`), then the CONNECT tunnel and TLS to the endpoint inside it; the proxy's
/// password never in the log. Without the CA the proxy is refused, and the run says why.
#[test]
fn an_https_proxy_carries_records_over_tls_to_the_proxy() {
    let ca = TestCa::new();
    let fake = Arc::new(FakeKinesis::new("it-https-proxy", KEY_ID_VALUE, SECRET_VALUE));
    let tls = listener::serve_tls(fake.clone(), "127.0.0.1:0".parse().unwrap(), &ca).unwrap();
    let proxy = ConnectProxy::start_tls(Some(("relay", "tls-proxy-pass")), &ca).unwrap();
    host_tests::transcript::secret("tls-proxy-pass");
    let dir = temp_dir("https-proxy");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let config = fake_config(
        &dir,
        "it-https-proxy",
        &format!("https://127.0.0.1:{}", tls.addr.port()),
        json!({"retries_on_batch_request": 1, "buffer": {"retry_max_times": 0}}),
    );
    let run = |args: &[&str], from: usize| {
        let mut cmd = Command::new(SHIP);
        cmd.arg("--config").arg(&config).args(args);
        for (k, _) in std::env::vars()
            .filter(|(k, _)| k.ends_with("_PROXY") || k.ends_with("_proxy") || k == "SSL_CERT_FILE")
        {
            cmd.env_remove(k);
        }
        cmd.env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
            .env(
                "HTTPS_PROXY",
                format!("https://relay:tls-proxy-pass@{}", proxy.addr),
            );
        let batch = lines(from, 20);
        let (code, stderr) = run_bounded(cmd, &ndjson(&batch));
        host_tests::transcript::record("kinesis-ship stderr (https proxy)", &stderr);
        assert!(
            !stderr.contains("tls-proxy-pass"),
            "the proxy's password in the log: {stderr}"
        );
        (code, stderr, batch)
    };
    let (code, stderr, sent) = run(&["--ca-file", ca_file.to_str().unwrap()], 0);
    assert_eq!(code, 0, "{stderr}");
    let asked = proxy.asked();
    assert!(
        !asked.is_empty()
            && asked.iter().all(|a| a.method == "CONNECT"
                && a.target == format!("127.0.0.1:{}", tls.addr.port())
                && a.authorized),
        "{asked:?}"
    );
    stored_once(&fake, &sent);
    // Without the CA the proxy's own certificate is refused.
    let (code, stderr, _) = run(&[], 100);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("NetworkError") && stderr.contains("TLS to proxy https://127.0.0.1"),
        "{stderr}"
    );
    assert_eq!(fake.stored().len(), 20);
}

/// FIPS and dual-stack endpoints seen where the request goes: a proxy's `CONNECT` target (the
/// proxy refuses to reach the internet, so each run fails after its one request). The four
/// forms (FIPS, dual-stack, both with a stream ARN's account endpoint, Firehose by the shared
/// config file's profile) and the plain endpoint; the startup log and `kinesis-ship env` say
/// which endpoint and why.
#[test]
fn fips_and_dual_stack_endpoints_are_where_the_requests_go() {
    let proxy = ConnectProxy::start(None).unwrap();
    let dir = temp_dir("endpoints");
    let aws_config = dir.join("aws-config");
    std::fs::write(&aws_config, "[profile compliance]\nuse_fips_endpoint = true\n").unwrap();
    let cases = [
        (
            json!({"stream_name": "s", "region": "us-east-1", "use_fips_endpoint": true}),
            vec![],
            "kinesis-fips.us-east-1.amazonaws.com:443",
            "FIPS (use_fips_endpoint)",
        ),
        (
            json!({"stream_name": "s", "region": "eu-west-1"}),
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            "kinesis.eu-west-1.api.aws:443",
            "dual-stack (AWS_USE_DUALSTACK_ENDPOINT in the environment)",
        ),
        (
            json!({"stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
                   "use_fips_endpoint": true, "use_dualstack_endpoint": true}),
            vec![],
            "123456789012.data-kinesis-fips.us-east-2.api.aws:443",
            "stream_arn's account 123456789012, FIPS (use_fips_endpoint), dual-stack (use_dualstack_endpoint)",
        ),
        (
            json!({"delivery_stream_name": "d"}),
            vec![
                ("AWS_REGION", "us-gov-west-1"),
                ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
                ("AWS_PROFILE", "compliance"),
            ],
            "firehose-fips.us-gov-west-1.amazonaws.com:443",
            "region from AWS_REGION), FIPS (use_fips_endpoint in the shared config file's profile)",
        ),
        (
            json!({"stream_name": "s", "region": "ap-southeast-2"}),
            vec![],
            "kinesis.ap-southeast-2.amazonaws.com:443",
            "AWS's endpoint rules for kinesis in ap-southeast-2 (region from the region setting)",
        ),
    ];
    for (i, (settings, env, target, why)) in cases.into_iter().enumerate() {
        let mut config = settings;
        config["retries_on_batch_request"] = json!(0);
        config["buffer"] = json!({"retry_max_times": 0});
        let path = dir.join(format!("config-{i}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        let command = |args: &[&str]| {
            let mut cmd = Command::new(SHIP);
            cmd.args(args).arg("--config").arg(&path);
            for (k, _) in std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_") || k.ends_with("_PROXY") || k.ends_with("_proxy"))
            {
                cmd.env_remove(k);
            }
            cmd.env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
                .env("HTTPS_PROXY", format!("http://{}", proxy.addr))
                .envs(env.iter().copied());
            cmd
        };
        let before = proxy.asked().len();
        let (code, stderr) = run_bounded(command(&[]), &ndjson(&lines(0, 3)));
        assert_eq!(code, 1, "the proxy refuses the internet: {stderr}");
        let asked: Vec<_> = proxy.asked().split_off(before);
        assert!(
            !asked.is_empty() && asked.iter().all(|a| a.method == "CONNECT" && a.target == target),
            "case {i}: {asked:?}"
        );
        let url = format!("https://{}", target.trim_end_matches(":443"));
        assert!(
            stderr.contains(&format!("endpoint {url} (")) && stderr.contains(why),
            "case {i}: {stderr}"
        );
        // `kinesis-ship env`, in the same environment, says the same on stderr.
        let out = command(&["env"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let note = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{note}");
        assert!(
            note.contains(&format!("endpoint {url} (")) && note.contains(why),
            "case {i}: {note}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("endpoint https"),
            "stdout is the env file"
        );
    }
}

#[test]
fn json_logs_are_one_object_a_line_without_secrets() {
    let fake = Arc::new(FakeKinesis::new("it-logs", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("json-logs");
    // A Fluentd-only buffer key (a warning) and a record without its key (a problem line).
    let config = fake_config(
        &dir,
        "it-logs",
        &format!("http://{}", upstream.addr),
        json!({"buffer": {"timekey": "1h"}}),
    );
    let mut cmd = Command::new(SHIP);
    cmd.arg("--config")
        .arg(&config)
        .args(["--log-format", "json"])
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE);
    let mut body = ndjson(&lines(0, 5));
    body.extend_from_slice(b"{\"log\":\"no key\"}\n");
    let (code, stderr) = run_bounded(cmd, &body);
    host_tests::transcript::record("kinesis-ship stderr (json logs)", &stderr);
    assert_eq!(code, 1, "{stderr}");
    let logged: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &logged {
        assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        assert!(
            ["info", "warn", "error"].contains(&l["level"].as_str().unwrap()),
            "{l}"
        );
    }
    let has = |level: &str, text: &str| {
        logged
            .iter()
            .any(|l| l["level"] == level && l["message"].as_str().unwrap().contains(text))
    };
    assert!(has("warn", "timekey"), "{stderr}");
    assert!(has("info", "5 delivered, 0 failed, 1 rejected"), "{stderr}");
    assert!(has("info", "NoPartitionKey"), "{stderr}");
}

#[test]
fn serve_answers_a_trap_by_what_was_stored_counts_it_and_keeps_serving() {
    let fake = Arc::new(FakeKinesis::new("it-trap-metrics", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("trap-metrics");
    let config = fake_config(
        &dir,
        "it-trap-metrics",
        &format!("http://{}", upstream.addr),
        json!({}),
    );
    let server = kinesis_ship_serve_with(&config, &["--max-memory", "4"]);
    // About 3 MB of records: more than 4 MiB of linear memory once read, copied and encoded.
    let big: Vec<String> = (0..3000)
        .map(|i| json!({"pod": "web", "i": i, "log": "y".repeat(1000)}).to_string())
        .collect();
    // Nothing stored: 503, send it again.
    let (status, head, answer) = http_with_head(&server.addr, "POST", "/", &[], &ndjson(&big)).unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert!(
        answer.contains("ComponentTrap") && answer.contains("not stored yet"),
        "{answer}"
    );
    let small = lines(0, 3);
    let (status, answer) = http(&server.addr, "POST", "/", &[], &ndjson(&small)).unwrap();
    assert_eq!(status, 200, "the next request gets a fresh instance: {answer}");
    // The same body traps again with nothing stored: poison, given up (422), not re-sent forever.
    let (status, answer) = http(&server.addr, "POST", "/", &[], &ndjson(&big)).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("trapped the component 2 times"), "{answer}");
    let (_, text) = http(&server.addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(sample(&text, "kinesis_output_traps_total"), 2);
    assert_eq!(
        sample(&text, "kinesis_output_serve_responses_total{status=\"503\"}"),
        1
    );
    assert_eq!(
        sample(&text, "kinesis_output_records_total{outcome=\"delivered\"}"),
        3
    );
    assert_eq!(
        sample(
            &text,
            "kinesis_output_failed_records_total{code=\"ComponentTrap\"}"
        ),
        3000
    );
    stored_once(&fake, &small);
    drop(server);

    // A trap after the service stored part of the body (the test-only switch traps every
    // instance after its first PutRecords answer): serve tells the stored records apart, answers
    // 503, and each re-post ships only what is left, until every record is stored once.
    let fake = Arc::new(FakeKinesis::new("it-trap-metrics", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let config = fake_config(
        &dir,
        "it-trap-metrics",
        &format!("http://{}", upstream.addr),
        json!({}),
    );
    let server = kinesis_ship_serve_env(&config, &[], &[("KINESIS_FAULT_TRAP_AFTER_PUTS", "1")]);
    let batch: Vec<String> = (0..1200)
        .map(|i| json!({"pod": "web", "i": i, "time": 1_764_849_600 + i}).to_string())
        .collect();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, answer) = http(&server.addr, "POST", "/", &[], &ndjson(&batch)).unwrap();
        statuses.push(status);
        if status != 503 {
            assert_eq!(status, 200, "{answer}");
            break;
        }
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert!(
            answer["delivered"].as_u64().unwrap() > 0,
            "each attempt stores a batch: {answer}"
        );
    }
    assert!(
        statuses.len() >= 2 && statuses[0] == 503 && statuses.ends_with(&[200]),
        "{statuses:?}"
    );
    stored_once(&fake, &batch);
}

#[test]
fn ship_with_several_flush_threads_stores_every_record_once_and_reports_problems_by_line() {
    let fake = Arc::new(
        FakeKinesis::new("it-threads", KEY_ID_VALUE, SECRET_VALUE).with_random_faults(
            RandomFaults {
                throttle_records: 0.1,
                ..RandomFaults::default()
            },
            11,
        ),
    );
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("threads");
    let config = fake_config(
        &dir,
        "it-threads",
        &format!("http://{}", upstream.addr),
        json!({"retries_on_batch_request": 20,
               "buffer": {"chunk_limit_records": 250, "flush_thread_count": 3}}),
    );
    let report = dir.join("report.json");
    // 3,000 records, and every 500th line a record without its key (rejected).
    let batch = lines(0, 3000);
    let mut input = Vec::new();
    for (i, line) in batch.iter().enumerate() {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        if i % 500 == 499 {
            input.extend_from_slice(b"{\"log\":\"no key\"}\n");
        }
    }
    let mut cmd = Command::new(SHIP);
    cmd.arg("--config")
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE);
    let (code, stderr) = run_bounded(cmd, &input);
    assert_eq!(code, 1, "the rejected records: {stderr}");
    stored_once(&fake, &batch);
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 3000, "{report}");
    let problem_lines: Vec<u64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    // Line numbers count the rejected lines too: the 501st line, the 1,002nd, …
    assert_eq!(problem_lines, vec![501, 1002, 1503, 2004, 2505, 3006]);
}

/// Connections are kept between PutRecords requests, over plain HTTP and over TLS (a private
/// CA): 2,000 lines in 4 chunks of 5 requests each go over at most as many connections as are
/// open at once, not one a request; every record stored once.
#[test]
fn requests_share_kept_connections() {
    let ca = TestCa::new();
    let dir = temp_dir("keepalive");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    for tls in [false, true] {
        let fake = Arc::new(FakeKinesis::new("it-keepalive", KEY_ID_VALUE, SECRET_VALUE));
        let upstream = if tls {
            listener::serve_tls(fake.clone(), "127.0.0.1:0".parse().unwrap(), &ca).unwrap()
        } else {
            listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap()
        };
        let endpoint = if tls {
            format!("https://127.0.0.1:{}", upstream.addr.port())
        } else {
            format!("http://{}", upstream.addr)
        };
        let config = fake_config(
            &dir,
            "it-keepalive",
            &endpoint,
            json!({"batch_request_max_count": 100, "buffer": {"chunk_limit_records": 500}}),
        );
        let sent = lines(0, 2000);
        let (code, out) = ship(
            &[
                "--config",
                config.to_str().unwrap(),
                "--ca-file",
                ca_file.to_str().unwrap(),
            ],
            Some(&ndjson(&sent)),
        );
        assert_eq!(code, 0, "{out}");
        stored_once(&fake, &sent);
        let requests = fake.seen().len();
        let connections = upstream.connections.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(requests, 20, "5 requests a chunk");
        assert!(
            connections <= 5,
            "tls {tls}: {connections} connections for {requests} requests: they were not kept"
        );
    }
}
