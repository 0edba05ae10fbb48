//! The proxy and command worlds in hosts nobody here wrote (the wasmtime CLI and jco), and in
//! `kinesis-ship serve`.

use super::*;

/// `wasmtime serve` hosts the proxy world and `wasmtime run` the command world, both the
/// official prebuilt CLI; the proxy's configuration is the logging-operator example converted
/// by `kinesis-ship env`.
#[test]
fn the_wasmtime_cli_serves_the_proxy_world_and_runs_the_command_world() {
    let k = Kinesalite::start("example-stream-name");
    let dir = temp_dir("wasmtime-cli");

    // The seed's example, with the emulator's endpoint, as environment variables.
    let spec = std::fs::read_to_string(root().join("examples/logging-operator-output.yaml"))
        .unwrap()
        .replace(
            "    region: us-east-1\n",
            &format!(
                "    region: us-east-1\n    endpoint: http://127.0.0.1:{}\n    partition_key: pod\n",
                k.port
            ),
        );
    std::fs::write(dir.join("output.yaml"), spec).unwrap();
    let out = Command::new(SHIP)
        .args(["env", "--config", dir.join("output.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vars = String::from_utf8(out.stdout).unwrap();
    assert!(
        vars.contains("KINESIS_OUTPUT_STREAM_NAME=example-stream-name\n"),
        "{vars}"
    );
    assert!(
        vars.contains("KINESIS_OUTPUT_FORMAT={\"type\":\"json\"}\n"),
        "{vars}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args(["serve", "-S", "cli", "-S", "http", "--addr", &addr]);
    for line in vars.lines() {
        cmd.args(["--env", line]);
    }
    cmd.args(["--env", &format!("AWS_ACCESS_KEY_ID={KEY_ID_VALUE}")])
        .args(["--env", &format!("AWS_SECRET_ACCESS_KEY={SECRET_VALUE}")])
        .arg(host_tests::runtime::proxy_component_path());
    let server = Server::start(cmd, addr);
    let sent = lines(0, 300);
    let (status, body) = http(
        &server.addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&ndjson(&sent)),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"delivered\":300"), "{body}");
    let (status, body) = http(
        &server.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-ndjson")],
        b"{\"pod\":\n",
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    drop(server);

    // The command world: a configuration file in a granted folder, stdin, and one line too
    // large (exit status 1, the line named).
    let mut config = site_config(&k);
    config["stream_name"] = json!("example-stream-name");
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut more = lines(300, 100);
    more.push(json!({"pod": "big", "log": "x".repeat(1_100_000)}).to_string());
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args([
        "run",
        "-S",
        "http",
        "--dir",
        &format!("{}::/config", dir.display()),
    ])
    .args(["--env", &format!("KINESIS_SECRET={SECRET_VALUE}")])
    .arg(host_tests::runtime::command_component_path())
    .arg("/config/config.json");
    let (code, stderr) = run_bounded(cmd, &ndjson(&more));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("line 101: rejected TooLarge"), "{stderr}");
    assert!(
        stderr.contains("101 lines: 100 delivered, 0 failed, 1 rejected"),
        "{stderr}"
    );

    let expected = multiset(sent.iter().chain(&more[..100]).map(|l| expected(l)));
    assert_eq!(multiset(k.read()), expected);
}

/// jco transpiles both worlds to JavaScript and runs them on Node: `jco serve` for the proxy,
/// `jco run` for the command; configuration through the process environment.
#[test]
fn jco_serves_the_proxy_world_and_runs_the_command_world() {
    let k = Kinesalite::start("it-jco");
    let dir = temp_dir("jco");
    let config = site_config(&k).to_string();
    let addr_port = free_port();
    let mut cmd = Command::new(jco());
    cmd.args(["serve", "--host", "127.0.0.1", "--port", &addr_port.to_string()])
        .args(["--jco-dir", dir.join("serve").to_str().unwrap()])
        .arg(host_tests::runtime::proxy_component_path())
        .env("KINESIS_OUTPUT_CONFIG", &config)
        .env("KINESIS_SECRET", SECRET_VALUE);
    let mut server = Server::start(cmd, format!("127.0.0.1:{addr_port}"));
    let jco_dir = dir.join("serve").to_string_lossy().into_owned();
    server.also_stop = Some(jco_dir.clone());
    let sent = lines(0, 200);
    // Fluent Bit's framing: json_lines under application/json.
    let (status, body) = post_as_fluent_bit(&server.addr, &sent);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"delivered\":200"), "{body}");
    drop(server);
    assert_eq!(
        processes_matching(&jco_dir),
        Vec::<u32>::new(),
        "jco's worker still runs"
    );

    let more = lines(200, 50);
    let mut cmd = Command::new(jco());
    cmd.arg("run")
        .arg(host_tests::runtime::command_component_path())
        .env("KINESIS_OUTPUT_CONFIG", &config)
        .env("KINESIS_SECRET", SECRET_VALUE);
    let (code, stderr) = run_bounded(cmd, &ndjson(&more));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("50 lines: 50 delivered"), "{stderr}");

    let expected = multiset(sent.iter().chain(&more).map(|l| expected(l)));
    assert_eq!(multiset(k.read()), expected);
}

/// `kinesis-ship serve` hosts the proxy world with this repository's harness, configured by a
/// logging-operator YAML file as it is.
#[test]
fn kinesis_ship_serves_the_proxy_world() {
    let k = Kinesalite::start("it-serve");
    let dir = temp_dir("serve");
    let yaml = format!(
        "spec:\n  kinesisStream:\n    stream_name: it-serve\n    region: us-east-1\n    endpoint: http://127.0.0.1:{}\n    partition_key: pod\n    format:\n      type: json\n",
        k.port
    );
    std::fs::write(dir.join("output.yaml"), yaml).unwrap();
    let server = kinesis_ship_serve(&dir.join("output.yaml"));
    let sent = lines(0, 120);
    let array = serde_json::to_vec(
        &sent
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (status, body) = http(
        &server.addr,
        "POST",
        "/",
        &[("Content-Type", "application/json")],
        &array,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&server.addr, "DELETE", "/", &[], b"").unwrap();
    assert_eq!(status, 405);
    drop(server);
    assert_eq!(multiset(k.read()), multiset(sent.iter().map(|l| expected(l))));
}

/// A real Fluent Bit tailing short lines into `kinesis-ship serve` with its `http` output's
/// defaults: its chunks hold far more than 10,000 records, and the proxy's defaults take them
/// (a 413 would make Fluent Bit drop the chunk for good).
#[test]
fn fluent_bit_over_http_with_default_chunks_loses_nothing() {
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        println!("{}", host_tests::fluent_bit::NOT_FOUND);
        return;
    };
    let k = Kinesalite::start("it-fluent-bit-http");
    let dir = temp_dir("fluent-bit-http");
    const LINES: usize = 40_000;
    let mut input = String::new();
    for i in 0..LINES {
        input.push_str(&format!("GET /i/{i} 200\n"));
    }
    std::fs::write(dir.join("short.log"), &input).unwrap();
    std::fs::write(
        dir.join("serve.json"),
        json!({"stream_name": k.stream, "region": "us-east-1",
               "endpoint": format!("http://127.0.0.1:{}", k.port)})
        .to_string(),
    )
    .unwrap();
    let server = kinesis_ship_serve(&dir.join("serve.json"));
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let conf = format!(
        "[SERVICE]\n    flush 1\n    log_level info\n[INPUT]\n    name tail\n    path {}\n    read_from_head true\n[OUTPUT]\n    name http\n    match *\n    host {host}\n    port {port}\n    uri /\n    format json_lines\n",
        dir.join("short.log").display()
    );
    std::fs::write(dir.join("fluent-bit.conf"), conf).unwrap();
    let log = dir.join("fluent-bit.log");
    let mut agent = host_tests::fluent_bit::command(&fluent_bit, &dir.join("fluent-bit.conf"), &log)
        .unwrap()
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < until && k.read().len() < LINES {
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(agent.id().to_string())
        .status();
    let _ = agent.wait();
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    host_tests::transcript::record("fluent-bit log", &text);
    assert!(!text.contains("HTTP status=413"), "Fluent Bit got a 413");
    assert_eq!(k.read().len(), LINES, "every line once");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `buffer.total_limit_size` bounds what `kinesis-ship serve` holds at once: past it a request
/// gets 503 with `Retry-After` (`throw_exception`) or waits for room (`block`); a body larger
/// than the whole limit gets 413. Nothing is lost: a refused body was not shipped, and sent again
/// it is.
#[test]
fn serve_holds_at_most_the_buffers_total_limit() {
    use host_tests::fake_kinesis::{FakeKinesis, Fault};
    let body = |from: usize| ndjson(&lines(from, 60));
    let (first, second) = (body(0), body(100));
    assert!(first.len() > 4096 && first.len() < 6144, "{}", first.len());
    for overflow in ["throw_exception", "block"] {
        let fake = std::sync::Arc::new(FakeKinesis::new("it-room", KEY_ID_VALUE, SECRET_VALUE));
        let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let dir = temp_dir(&format!("room-{overflow}"));
        let config = json!({
            "stream_name": "it-room", "region": "us-east-1",
            "endpoint": format!("http://{}", listener.addr), "partition_key": "pod",
            "buffer": {"chunk_limit_size": "1k", "total_limit_size": "8k", "overflow_action": overflow},
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let server = kinesis_ship_serve(&dir.join("config.json"));
        // The first request's put takes 3 s at the service: its body holds the room meanwhile.
        fake.script([Fault::Slow(Duration::from_secs(3))]);
        let addr = server.addr.clone();
        let first_body = first.clone();
        let held = std::thread::spawn(move || http(&addr, "POST", "/", &[], &first_body).unwrap());
        std::thread::sleep(Duration::from_millis(800));
        let started = std::time::Instant::now();
        let (status, head, answer) = http_with_head(&server.addr, "POST", "/", &[], &second).unwrap();
        let (first_status, first_answer) = held.join().unwrap();
        assert_eq!(first_status, 200, "{first_answer}");
        if overflow == "block" {
            assert_eq!(status, 200, "{answer}");
            assert!(started.elapsed() > Duration::from_secs(1), "it waited for room");
        } else {
            assert_eq!(status, 503, "{answer}");
            assert!(head.contains("\r\nretry-after: 1"), "{head}");
            assert!(answer.contains("total_limit_size"), "{answer}");
            // Sent again once there is room, it ships.
            let (status, answer) = http(&server.addr, "POST", "/", &[], &second).unwrap();
            assert_eq!(status, 200, "{answer}");
        }
        // More than the whole limit can never fit, with a length or chunked without one.
        let (status, answer) = http(&server.addr, "POST", "/", &[], &ndjson(&lines(200, 120))).unwrap();
        assert_eq!(status, 413, "{answer}");
        let (status, answer) = chunked_post(&server.addr, &ndjson(&lines(200, 120)));
        assert_eq!(status, 413, "{answer}");
        assert!(answer.contains("total_limit_size"), "{answer}");
        // A chunked body that fits is read, counted and shipped.
        let (status, answer) = chunked_post(&server.addr, &ndjson(&lines(300, 5)));
        assert_eq!(status, 200, "{answer}");
        drop(server);
        let stored: Vec<Vec<u8>> = fake.stored().into_iter().map(|s| s.data).collect();
        let mut want: Vec<Vec<u8>> = lines(0, 60)
            .iter()
            .chain(&lines(100, 60))
            .chain(&lines(300, 5))
            .map(|l| expected(l).0)
            .collect();
        let mut got = stored.clone();
        want.sort();
        got.sort();
        let missing: Vec<String> = want
            .iter()
            .filter(|w| !got.contains(w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let extra = got.len() as isize - want.len() as isize;
        assert!(
            missing.is_empty() && extra == 0,
            "{overflow}: every record of the shipped bodies once, none of the refused ones; missing {missing:?}, {extra} extra"
        );
    }
}

/// A POST whose body is sent chunked, without a `Content-Length`: the status and the body.
fn chunked_post(addr: &str, body: &[u8]) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request =
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .into_bytes();
    for chunk in body.chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before reading everything; a reset after the answer is fine.
    let _ = s.write_all(&request);
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
