//! Amazon Data Firehose at every door of this crate, against moto (an independent
//! implementation: DirectPut delivery streams into an S3 bucket, read back with boto3):
//! kinesis-ship with a logging-operator `kinesisFirehose` Output, `kinesis-ship serve` (the
//! proxy world) and the wasmtime CLI's `run` (the command world), configured from the
//! environment.

use host_tests::moto::{self, MotoFirehose};

use super::*;

/// What the bucket should hold for an input line: its compact JSON, one a line.
fn expected_line(line: &str) -> String {
    let v: Value = match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "message": line }),
    };
    serde_json::to_string(&v).unwrap()
}

fn assert_once(got: Vec<String>, sent: &[String]) {
    let mut got = got;
    got.sort();
    let mut want: Vec<String> = sent.iter().map(|l| expected_line(l)).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "every line once");
    assert!(got == want, "the bucket holds the lines sent, one a line");
}

/// A logging-operator Output with `spec: kinesisFirehose`, as its reference shows it, ships
/// unchanged: every line in the bucket once, one a line; a line over Firehose's 1,000 KiB is
/// rejected with its own code and the rest ship.
#[test]
fn kinesis_ship_ships_an_operator_firehose_output_into_the_bucket() {
    let m = MotoFirehose::start("logs-to-s3");
    let dir = temp_dir("firehose-ship");
    let output = format!(
        "apiVersion: logging.banzaicloud.io/v1beta1\nkind: Output\nmetadata:\n  name: firehose\nspec:\n  kinesisFirehose:\n    delivery_stream_name: logs-to-s3\n    region: us-east-1\n    endpoint: {}\n    append_new_line: true\n    format:\n      type: json\n    buffer:\n      chunk_limit_records: 300\n      flush_interval: 5s\n",
        m.endpoint()
    );
    let config = dir.join("output.yaml");
    std::fs::write(&config, output).unwrap();
    let mut sent = lines(0, 700);
    sent.push("a plain line, not JSON".to_string());
    let mut input = ndjson(&sent);
    let big = json!({"pod": "big", "log": "z".repeat(1_100_000)}).to_string();
    input.extend_from_slice(format!("{big}\n").as_bytes());
    let report = dir.join("report.json");
    let (code, stderr) = ship_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--allow-authority",
            &format!("127.0.0.1:{}", m.port),
        ],
        Some(&input),
        &[
            ("AWS_ACCESS_KEY_ID", moto::KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", moto::SECRET),
        ],
    );
    assert_eq!(code, 1, "the oversize line is rejected: {stderr}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (r["delivered"].clone(), r["rejected"].clone()),
        (json!(701), json!(1)),
        "{r}"
    );
    assert_eq!(problems(&r), vec![(702, "TooLarge".to_string())]);
    assert_once(m.lines(), &sent);
    // Three chunks (300, 300, 102 lines): one PutRecordBatch each.
    assert_eq!(m.objects().len(), 3);
}

/// `aggregate` joins the lines into Firehose records of up to 1,000 KiB (Firehose bills each
/// record rounded up to 5 KB); in the bucket they are the same lines.
#[test]
fn joined_records_land_as_the_same_lines() {
    let m = MotoFirehose::start("joined");
    let dir = temp_dir("firehose-join");
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        json!({
            "delivery_stream_name": "joined", "region": "us-east-1", "endpoint": m.endpoint(),
            "aggregate": true, "compression": "gzip",
            "buffer": {"chunk_limit_records": 5000},
        })
        .to_string(),
    )
    .unwrap();
    let sent = lines(0, 5000);
    let report = dir.join("report.json");
    let (code, stderr) = ship_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--allow-authority",
            &format!("127.0.0.1:{}", m.port),
        ],
        Some(&ndjson(&sent)),
        &[
            ("AWS_ACCESS_KEY_ID", moto::KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", moto::SECRET),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["requests"], 1, "{r}");
    // One object, holding the joined records; each record gzip on its own.
    let objects = m.objects();
    assert_eq!(objects.len(), 1);
    let mut got = Vec::new();
    let mut rest: &[u8] = &objects[0];
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut d, &mut text).unwrap();
        got.extend(text.lines().map(str::to_string));
        rest = d.into_inner();
    }
    assert_once(got, &sent);
}

/// The proxy world under `kinesis-ship serve` and the command world under the wasmtime CLI,
/// each configured by `KINESIS_OUTPUT_DELIVERY_STREAM_NAME` and friends: every line once.
#[test]
fn the_proxy_and_command_worlds_ship_to_firehose_from_the_environment() {
    let m = MotoFirehose::start("from-env");
    let dir = temp_dir("firehose-env");
    let vars = [
        ("KINESIS_OUTPUT_DELIVERY_STREAM_NAME", "from-env".to_string()),
        ("KINESIS_OUTPUT_REGION", "us-east-1".to_string()),
        ("KINESIS_OUTPUT_ENDPOINT", m.endpoint()),
        ("AWS_ACCESS_KEY_ID", moto::KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET.to_string()),
    ];
    // serve, with no configuration file: the variables are the configuration.
    let mut child = Command::new(SHIP)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env(
            "KINESIS_OUTPUT_PROXY_WASM",
            host_tests::runtime::proxy_component_path(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let server = Server {
        child,
        addr: first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap()
            .to_string(),
        group: false,
        also_stop: None,
    };
    let by_proxy = lines(0, 250);
    let (status, body) = http(
        &server.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-ndjson")],
        &ndjson(&by_proxy),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    drop(server);

    let by_command = lines(250, 250);
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args(["run", "-S", "http"]);
    for (k, v) in &vars {
        cmd.args(["--env", &format!("{k}={v}")]);
    }
    cmd.arg(host_tests::runtime::command_component_path());
    let (code, stderr) = run_bounded(cmd, &ndjson(&by_command));
    assert_eq!(code, 0, "{stderr}");
    let mut all = by_proxy;
    all.extend(by_command);
    assert_once(m.lines(), &all);
    let _ = std::fs::remove_dir_all(&dir);
}
