//! One kit for every door: the same codes and the same event times whichever way records come.

use super::*;

/// The same bad records through `kinesis-ship`, `kinesis-ship serve`, the proxy world in
/// `wasmtime serve` and the command world in `wasmtime run`: every door names the same line
/// with the same code, and ships the good records.
#[test]
fn every_door_gives_a_bad_record_the_same_code() {
    let k = Kinesalite::start("it-doors");
    let dir = temp_dir("doors");
    // Credentials from the environment, which every door hands to the component.
    let config = json!({
        "stream_name": "${$.target}",
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", k.port),
        "partition_key": "pod",
    });
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];
    let records = [
        json!({"pod": "a", "target": "it-doors", "log": "ok"}),
        json!({"target": "it-doors", "log": "no partition key"}),
        json!({"pod": "b", "log": "no target stream"}),
        json!({"pod": "c", "target": "it-doors", "log": "x".repeat(1_100_000)}),
        json!({"pod": "d", "target": "it-doors", "log": "ok too"}),
    ];
    let body: Vec<u8> = records
        .iter()
        .flat_map(|r| format!("{r}\n").into_bytes())
        .collect();
    let expected: Vec<(u64, String)> = [(2, "NoPartitionKey"), (3, "NoStreamName"), (4, "TooLarge")]
        .into_iter()
        .map(|(l, c)| (l, c.to_string()))
        .collect();
    let ndjson_type = [("Content-Type", "application/x-ndjson")];

    // kinesis-ship, its report.
    std::fs::write(dir.join("ship.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("input.ndjson"), &body).unwrap();
    let report = dir.join("report.json");
    let (code, stderr) = ship_env(
        &[
            "--config",
            dir.join("ship.json").to_str().unwrap(),
            "--input",
            dir.join("input.ndjson").to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
        &keys,
    );
    assert_eq!(code, 1, "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(problems(&report), expected, "kinesis-ship: {report}");
    assert!(stderr.contains("line 4: rejected TooLarge: "), "{stderr}");

    // kinesis-ship serve, its answer.
    std::fs::write(dir.join("serve.json"), config.to_string()).unwrap();
    let server = kinesis_ship_serve(&dir.join("serve.json"));
    let (status, answer) = http(&server.addr, "POST", "/", &ndjson_type, &body).unwrap();
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(problems(&answer), expected, "kinesis-ship serve: {answer}");
    drop(server);

    // The proxy world in the official wasmtime CLI.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args(["serve", "-S", "cli", "-S", "http", "--addr", &addr])
        .args(["--env", &format!("KINESIS_OUTPUT_CONFIG={config}")]);
    for (name, value) in keys {
        cmd.args(["--env", &format!("{name}={value}")]);
    }
    cmd.arg(host_tests::runtime::proxy_component_path());
    let server = Server::start(cmd, addr);
    let (status, answer) = http(&server.addr, "POST", "/", &ndjson_type, &body).unwrap();
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(problems(&answer), expected, "wasmtime serve: {answer}");
    drop(server);

    // The command world in the official wasmtime CLI: its summary on stderr.
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args(["run", "-S", "http"])
        .args(["--env", &format!("KINESIS_OUTPUT_CONFIG={config}")]);
    for (name, value) in keys {
        cmd.args(["--env", &format!("{name}={value}")]);
    }
    cmd.arg(host_tests::runtime::command_component_path());
    let (code, stderr) = run_bounded(cmd, &body);
    assert_eq!(code, 1, "{stderr}");
    let listed: Vec<(u64, String)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("kinesis-output: line "))
        .map(|l| {
            let (line, rest) = l.split_once(": rejected ").expect("a rejection");
            let code = rest.split(':').next().unwrap();
            (line.parse().unwrap(), code.to_string())
        })
        .collect();
    assert_eq!(listed, expected, "wasmtime run: {stderr}");
    assert!(
        stderr.contains("5 lines: 2 delivered, 0 failed, 3 rejected"),
        "{stderr}"
    );

    // Each door shipped the two good records.
    let good: Vec<(Vec<u8>, String)> = [&records[0], &records[4]]
        .iter()
        .map(|r| expected_record(r))
        .collect();
    let stored = multiset(k.read());
    assert_eq!(stored.len(), 2, "{stored:?}");
    for g in good {
        assert_eq!(stored.get(&g), Some(&4), "four doors, four copies of {g:?}");
    }
}

fn expected_record(v: &Value) -> (Vec<u8>, String) {
    expected(&v.to_string())
}

/// `kinesis-ship` gives each event its own time (from `time`, `@timestamp`, … or the
/// `time_keys` it is told), so `inject` writes the time of the event, not of the flush.
#[test]
fn kinesis_ship_injects_each_records_own_time() {
    let k = Kinesalite::start("it-event-time");
    let dir = temp_dir("event-time");
    let run = |extra: Value, lines: &[Value]| -> Vec<Value> {
        let before = k.read().len();
        let mut cfg = json!({"inject": {"time_key": "injected", "time_type": "unixtime"},
                             "buffer": {"flush_interval": "60s"}});
        for (key, v) in extra.as_object().unwrap() {
            cfg[key] = v.clone();
        }
        let config = write_config(&dir, &k, cfg);
        let input: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let (code, stderr) = ship(&["--config", config.to_str().unwrap()], Some(&input));
        assert_eq!(code, 0, "{stderr}");
        k.read()[before..]
            .iter()
            .map(|(data, _)| serde_json::from_slice(data).unwrap())
            .collect()
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stored = run(
        json!({}),
        &[
            json!({"pod": "a", "time": "2023-11-14T22:13:20Z"}),
            json!({"pod": "b", "@timestamp": "2021-06-01T00:00:00.250Z"}),
            json!({"pod": "c", "date": 1_600_000_000.5}),
            json!({"pod": "d", "log": "no time of its own"}),
        ],
    );
    let injected = |pod: &str| -> i64 {
        stored
            .iter()
            .find(|r| r["pod"] == pod)
            .unwrap_or_else(|| panic!("{pod} stored: {stored:?}"))["injected"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(injected("a"), 1_700_000_000);
    assert_eq!(injected("b"), 1_622_505_600);
    assert_eq!(injected("c"), 1_600_000_000);
    assert!((started..started + 120).contains(&injected("d")), "arrival time");

    // `time_keys` names other fields.
    let stored = run(
        json!({"time_keys": ["when"]}),
        &[json!({"pod": "e", "when": 1_500_000_000, "time": "2023-11-14T22:13:20Z"})],
    );
    assert_eq!(stored[0]["injected"], 1_500_000_000);
}
