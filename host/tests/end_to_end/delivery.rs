//! The delivery rule over HTTP, and serve's doors under hostile senders: the real Fluent Bit's
//! `http` output through a throttling storm, answers that fit what agents read, a trap-free JSON
//! log, slow heads, a connection cap, and a chunked body past the limit.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tests::fake_kinesis::{FakeKinesis, RandomFaults};
use host_tests::listener;

use super::*;

/// A fake on a real port and a configuration file for it; serve's stderr goes to a file.
fn fake_serve(
    name: &str,
    extra: Value,
    args: &[&str],
) -> (Arc<FakeKinesis>, listener::Listener, PathBuf, Server) {
    let (fake, upstream, config) = fake_on_a_port(name, extra);
    let dir = temp_dir(name);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let server = kinesis_ship_serve_to(&dir.join("config.json"), args, &[], Stdio::from(log));
    (fake, upstream, dir, server)
}

fn serve_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    host_tests::transcript::record("kinesis-ship serve stderr", &text);
    text
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The storm through the HTTP door: the real Fluent Bit tails 20,000 lines and posts them with
/// its `http` output (json_lines, `Retry_Limit no_limits`) to serve while 97% of records are
/// throttled for 45 seconds. Serve answers 503 while records of a body are not stored, small
/// enough for Fluent Bit's 4 KB answer buffer, and each re-post ships only what is left: every
/// line stored exactly once (the landed build stored 35,337 second copies).
#[test]
fn fluent_bit_http_output_through_serve_in_a_storm_stores_every_line_once() {
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        println!("{}", host_tests::fluent_bit::NOT_FOUND);
        return;
    };
    // A body's put ends at 15 s, well inside the storm: however Fluent Bit cuts the file into
    // bodies (one body of all 20,000 lines, too), the storm reaches it as 503s.
    let (fake, _upstream, dir, server) = fake_serve(
        "it-serve-storm",
        json!({"put_deadline": 15}),
        &[
            "--state-dir",
            &temp_dir("it-serve-storm-state").display().to_string(),
        ],
    );
    fake.set_random_faults(RandomFaults {
        throttle_records: 0.97,
        ..RandomFaults::default()
    });
    const LINES: usize = 20_000;
    let input = dir.join("app.log");
    let mut file = std::fs::File::create(&input).unwrap();
    for i in 0..LINES {
        writeln!(file, "{}", json!({"pod": format!("web-{}", i % 7), "seq": i})).unwrap();
    }
    drop(file);
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let conf = format!(
        "[SERVICE]\n    flush 1\n    log_level info\n    scheduler.base 2\n    scheduler.cap 8\n[INPUT]\n    name tail\n    path {}\n    read_from_head true\n    parser json\n[OUTPUT]\n    name http\n    match *\n    host {host}\n    port {port}\n    uri /\n    format json_lines\n    json_date_key false\n    retry_limit no_limits\n",
        input.display()
    );
    let conf_path = dir.join("fluent-bit.conf");
    std::fs::write(&conf_path, conf).unwrap();
    std::fs::write(
        dir.join("parsers.conf"),
        "[PARSER]\n    name json\n    format json\n",
    )
    .unwrap();
    let log = dir.join("fluent-bit.log");
    let mut agent = host_tests::fluent_bit::command(&fluent_bit, &conf_path, &log)
        .unwrap()
        .arg("-R")
        .arg(dir.join("parsers.conf"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(45));
    let during = fake.seen().len();
    fake.set_random_faults(RandomFaults::default());
    let distinct = || {
        let mut seqs: Vec<u64> = fake
            .stored()
            .iter()
            .filter_map(|s| serde_json::from_slice::<Value>(&s.data).ok()?["seq"].as_u64())
            .collect();
        seqs.sort();
        seqs.dedup();
        seqs.len()
    };
    let until = Instant::now() + Duration::from_secs(240);
    while Instant::now() < until && distinct() < LINES {
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = agent.wait();
    let agent_log = std::fs::read_to_string(&log).unwrap();
    host_tests::transcript::record("fluent-bit log", &agent_log);
    let metrics = http(&server.addr, "GET", "/metrics", &[], b"")
        .map(|(_, m)| m)
        .unwrap_or_default();
    drop(server);
    let serve = serve_log(&dir);
    let stored = fake.stored().len();
    println!(
        "serve storm: {during} PutRecords requests during the storm, {} in all for {LINES} lines ({:.4} a line); {} answers 503; {stored} records stored",
        fake.seen().len(),
        fake.seen().len() as f64 / LINES as f64,
        metric(&metrics, "kinesis_output_serve_responses_total{status=\"503\"}").unwrap_or(0)
    );
    assert_eq!(
        distinct(),
        LINES,
        "every line stored\nFluent Bit:\n{}\nserve:\n{}",
        last_lines(&agent_log, 30),
        last_lines(&serve, 30)
    );
    assert_eq!(stored, LINES, "no line twice");
    assert!(
        !agent_log.contains("cannot increase buffer"),
        "an answer larger than Fluent Bit reads:\n{}",
        last_lines(&agent_log, 30)
    );
    assert!(
        metric(&metrics, "kinesis_output_serve_responses_total{status=\"503\"}").unwrap_or(0) > 0,
        "the storm reached the agent as 503s:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, "kinesis_output_records_total{outcome=\"delivered\"}"),
        Some(LINES as u64),
        "each record counted once:\n{metrics}"
    );
}

/// 1,600 records no retry can help, answered with `--log-format json`: the answer is a small
/// 422 (the landed build's component trapped writing it to a full stderr pipe, and answered 503
/// "re-send", forever); serve's log lists the problems, bounded.
#[test]
fn a_large_refusal_is_a_small_422_and_never_a_trap() {
    let (fake, _upstream, dir, server) = fake_serve("it-serve-422", json!({}), &["--log-format", "json"]);
    let body: String = (0..1600)
        .map(|i| format!("{}\n", json!({"no_pod": i, "filler": "x".repeat(700)})))
        .collect();
    let (status, answer) = http(
        &server.addr,
        "POST",
        "/",
        &[("content-type", "application/x-ndjson")],
        body.as_bytes(),
    )
    .unwrap();
    drop(server);
    let log = serve_log(&dir);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.len() < 4096, "{} bytes", answer.len());
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["rejected"], 1600);
    assert_eq!(answer["problems_total"], 1600);
    assert!(fake.stored().is_empty());
    assert!(!log.contains("trapped"), "{}", last_lines(&log, 10));
    assert!(
        log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "JSON lines"
    );
    assert!(
        log.contains("more problems in that answer"),
        "{}",
        last_lines(&log, 10)
    );
}

/// A client that sends half a request head is cut off after `--header-timeout`, and so is a
/// keep-alive connection left idle; past `--max-connections` a connection waits until one
/// closes; a chunked body is refused (413) as soon as it passes `proxy.max_body_size`, not read
/// on to `buffer.total_limit_size`.
#[test]
fn slow_heads_idle_connections_the_connection_cap_and_endless_bodies_are_bounded() {
    let (fake, _upstream, _dir, server) = fake_serve(
        "it-serve-slow",
        json!({"proxy": {"max_body_size": 65536}}),
        &["--header-timeout", "2", "--max-connections", "2"],
    );
    let addr = server.addr.clone();
    // Half a head, then nothing: closed within the timeout (plus a margin).
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = half.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "held for {:?}",
        started.elapsed()
    );

    // Two idle connections fill the cap; a third is answered only once they are closed.
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = http(&addr, "GET", "/health", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "answered beside two open connections after {:?}",
        started.elapsed()
    );
    drop(idle);

    // A chunked body that never ends: 413 once 64 KiB have passed.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let line = format!("{}\n", json!({"pod": "p", "filler": "y".repeat(1000)}));
    let chunk = format!("{:x}\r\n{line}\r\n", line.len());
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            // Up to 64 MiB; stops when serve closes.
            for _ in 0..64 * 1024 {
                if s.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
            }
        })
    };
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_body_size"), "{answer}");
    drop(s);
    let _ = writer.join();
    assert!(fake.stored().is_empty());
}

/// `kinesis-ship` keeps the records it read: records the service throttles are put again, only
/// they, after a wait that doubles from 1 s, until they are stored (exit 0, every record once);
/// past `buffer.retry_max_times` what is left is reported failed, saying why.
#[test]
fn ship_retries_what_was_not_stored_until_the_retry_bound() {
    let fake = Arc::new(
        FakeKinesis::new("it-ship-retry", KEY_ID_VALUE, SECRET_VALUE).with_random_faults(
            RandomFaults {
                throttle_records: 1.0,
                ..RandomFaults::default()
            },
            3,
        ),
    );
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("it-ship-retry");
    let config = dir.join("config.json");
    let write = |extra: Value| {
        let mut c = json!({
            "stream_name": "it-ship-retry", "region": "us-east-1",
            "endpoint": format!("http://{}", upstream.addr), "partition_key": "pod",
            "retries_on_batch_request": 0,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        std::fs::write(&config, c.to_string()).unwrap();
    };
    let batch = lines(0, 50);
    let input = dir.join("in.ndjson");
    std::fs::write(&input, ndjson(&batch)).unwrap();
    let report = dir.join("report.json");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    // Past the bound: one retry, then failed with the reason.
    write(json!({"buffer": {"retry_max_times": 1}}));
    let (code, stderr) = ship(&args, None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("50 records not stored yet"), "{stderr}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["failed"], 50, "{r}");
    assert!(
        r["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("retry_max_times"),
        "{r}"
    );
    assert!(fake.stored().is_empty());

    // A storm that ends: every record stored, once.
    write(json!({}));
    let healer = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(4));
            fake.set_random_faults(RandomFaults::default());
        })
    };
    let (code, stderr) = ship(&args, None);
    healer.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("sending them again in"), "{stderr}");
    let mut got: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = batch.iter().map(|l| expected(l).0).collect();
    want.sort();
    assert!(got == want, "every record once");
}

/// An agent that times out and posts the same body again while serve is still shipping it: the
/// re-post waits for the first and gets its answer; every record is stored once.
#[test]
fn a_repost_while_the_body_is_being_shipped_waits_for_it() {
    use host_tests::fake_kinesis::Fault;
    let (fake, _upstream, _dir, server) = fake_serve("it-serve-join", json!({}), &[]);
    fake.script([Fault::Slow(Duration::from_millis(1500))]);
    let batch = lines(0, 50);
    let body = ndjson(&batch);
    let posts: Vec<_> = (0..2)
        .map(|i| {
            let (addr, body) = (server.addr.clone(), body.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300 * i));
                http(
                    &addr,
                    "POST",
                    "/",
                    &[("content-type", "application/x-ndjson")],
                    &body,
                )
                .unwrap()
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = posts.into_iter().map(|p| p.join().unwrap()).collect();
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(answers[0], answers[1], "the same answer");
    assert_eq!(fake.stored().len(), 50, "each record once");
    assert_eq!(fake.seen().len(), 1, "one request: the re-post shipped nothing");
}

/// An agent that gives up on a request (its timeout) and closes the connection: serve ships the
/// body to its end all the same, remembering what was stored, so the agent's re-post ships only
/// the rest (the landed build dropped its bookkeeping with the connection, while the instance
/// went on: 57 of 200 records stored twice).
#[test]
fn a_client_that_goes_away_does_not_make_serve_ship_twice() {
    use host_tests::fake_kinesis::Fault;
    let (fake, _upstream, _dir, server) = fake_serve("it-serve-gone", json!({"retry_base_delay": 0.2}), &[]);
    fake.set_random_faults(RandomFaults {
        throttle_records: 0.9,
        ..RandomFaults::default()
    });
    // The first answer takes a while: the client is gone before it comes.
    fake.script([Fault::Slow(Duration::from_millis(1500))]);
    let batch = lines(0, 200);
    let body = ndjson(&batch);
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(s);
    std::thread::sleep(Duration::from_secs(1));
    fake.set_random_faults(RandomFaults::default());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, _) = http(
            &server.addr,
            "POST",
            "/",
            &[("content-type", "application/x-ndjson")],
            &body,
        )
        .unwrap();
        statuses.push(status);
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    let mut got: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = batch.iter().map(|l| expected(l).0).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "each record once ({statuses:?})");
    assert!(got == want);
}

/// A trap with aggregation, where the stored records cannot be told apart: serve answers 503
/// (small, the trap named by its first line) and the re-posts store every record: at worst a
/// second copy, never a loss (the landed build answered 202 "do not re-send" with 4 of 7
/// aggregates lost, in an answer of 31 KB).
#[test]
fn a_trap_with_aggregation_loses_nothing() {
    let fake = Arc::new(FakeKinesis::new("it-serve-agg", KEY_ID_VALUE, SECRET_VALUE));
    let upstream = listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("it-serve-agg");
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        json!({
            "stream_name": "it-serve-agg", "region": "us-east-1",
            "endpoint": format!("http://{}", upstream.addr),
            "partition_key": "pod", "aggregate": true, "max_record_size": 4096,
            "batch_request_max_count": 1,
        })
        .to_string(),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let server = kinesis_ship_serve_to(
        &config,
        &[],
        &[("KINESIS_FAULT_TRAP_AFTER_PUTS", "1")],
        Stdio::from(log),
    );
    let batch: Vec<String> = (0..60)
        .map(|i| json!({"pod": format!("p{}", i % 3), "n": i, "pad": "z".repeat(200)}).to_string())
        .collect();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (status, answer) = http(&server.addr, "POST", "/", &[], &ndjson(&batch)).unwrap();
        assert!(answer.len() < 4096, "{} bytes: {answer}", answer.len());
        statuses.push(status);
        if status != 503 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    // Every record stored: its bytes stand in some aggregate (KPL keeps them as they are).
    let stored: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
    let seen: Vec<&String> = batch
        .iter()
        .filter(|line| {
            let data = expected(line).0;
            stored
                .iter()
                .any(|blob| blob.windows(data.len()).any(|w| w == data.as_slice()))
        })
        .collect();
    assert_eq!(
        seen.len(),
        batch.len(),
        "every record at least once ({statuses:?})"
    );
}
