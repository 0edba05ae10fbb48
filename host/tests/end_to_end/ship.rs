//! `kinesis-ship` against kinesalite: files and standard input, usage errors, the
//! logging-operator example, credentials, routing, aggregation read back with the official KPL
//! deaggregator.

use super::*;

#[test]
fn ships_a_file_and_every_record_reads_back_from_kinesalite() {
    let k = Kinesalite::start("it-logs");
    let dir = temp_dir("file");
    let mut lines: Vec<String> = (0..1500)
        .map(|i| {
            json!({"log": format!("GET /api/{i} 200 ✓\n"), "stream": "stdout", "pod": format!("web-{}", i % 11),
                   "kubernetes": {"namespace_name": "shop", "labels": {"app": "web"}}})
            .to_string()
        })
        .collect();
    lines.push(r#"{"pod": 7, "log": "numeric key"}"#.to_string());
    lines.push(json!({"pod": "big", "log": "z".repeat(5000)}).to_string());
    let input = dir.join("in.ndjson");
    // A blank line carries no record.
    std::fs::write(&input, lines.join("\n") + "\n\n").unwrap();
    let config = write_config(&dir, &k, json!({"max_record_size": 4096}));
    let report = dir.join("report.json");
    let (code, stderr) = ship(
        &[
            "--config",
            config.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "one record is too large: {stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 1501);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
    assert_eq!(report["problems"][0]["line"], 1502);
    assert_eq!(report["problems"][0]["outcome"], "rejected");
    assert_eq!(report["problems"][0]["code"], "TooLarge");
    assert!(report["requests"].as_u64().unwrap() >= 4, "{report}");

    let stored = k.read();
    let want = multiset(lines[..1501].iter().map(|l| expected(l)));
    assert_eq!(stored.len(), 1501);
    assert_eq!(
        multiset(stored),
        want,
        "the stream holds exactly the records sent"
    );
}

#[test]
fn ships_standard_input_and_wraps_plain_lines() {
    let k = Kinesalite::start("it-stdin");
    let dir = temp_dir("stdin");
    let config = write_config(&dir, &k, json!({"partition_key": null}));
    let input = "plain text line\n{\"log\":\"json line\",\"n\":1}\n[1,2,3]\n";
    let (code, stderr) = ship(
        &["--config", config.to_str().unwrap(), "--input", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("3 lines: 3 delivered, 0 failed, 0 rejected"),
        "{stderr}"
    );
    let mut stored = k.read();
    stored.sort();
    let mut data: Vec<String> = stored
        .iter()
        .map(|(d, _)| String::from_utf8(d.clone()).unwrap())
        .collect();
    data.sort();
    assert_eq!(
        data,
        vec![
            "{\"log\":\"json line\",\"n\":1}\n",
            "{\"message\":\"[1,2,3]\"}\n",
            "{\"message\":\"plain text line\"}\n",
        ]
    );
    // Random keys: 32 lowercase hex characters, all different.
    for (_, key) in &stored {
        assert_eq!(key.len(), 32);
        assert!(key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    assert_ne!(stored[0].1, stored[1].1);
}

#[test]
fn configuration_and_usage_errors_exit_with_2() {
    let dir = temp_dir("usage");
    let config = dir.join("bad.json");
    std::fs::write(
        &config,
        r#"{"stream_name":"s","region":"us-east-1","batch_request_max_count":900,"aws_sec_key":"integration-secret-value","aws_key_id":"AKID"}"#,
    )
    .unwrap();
    let (code, stderr) = ship(&["--config", config.to_str().unwrap()], Some(b""));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("batch_request_max_count: 900 exceeds the limit of 500"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        r#"{"stream_name":"s","region":"us-east-1","buffer":{"chunk_limit_size":"lots"}}"#,
    )
    .unwrap();
    let (code, stderr) = ship(&["--config", config.to_str().unwrap()], Some(b""));
    assert_eq!(code, 2);
    assert!(stderr.contains("buffer.chunk_limit_size"), "{stderr}");

    let (code, stderr) = ship(&["--input", "x"], None);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("the following required arguments were not provided:\n  --config <FILE>"),
        "{stderr}"
    );

    // A file that cannot be read says why, not only which.
    let (code, stderr) = ship(&["--config", "/nonexistent/kinesis.json"], None);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("reading /nonexistent/kinesis.json: No such file or directory"),
        "{stderr}"
    );

    // A misspelt setting names the one meant.
    std::fs::write(
        &config,
        r#"{"stream_name":"s","region":"us-east-1","partiton_key":"pod"}"#,
    )
    .unwrap();
    let (code, stderr) = ship(&["--config", config.to_str().unwrap()], Some(b""));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("partiton_key: unknown setting; did you mean partition_key?"),
        "{stderr}"
    );
}

#[test]
fn the_logging_operator_example_is_read_as_is() {
    // The seed's own example spec, against kinesalite: only the endpoint is added.
    let k = Kinesalite::start("example-stream-name");
    let dir = temp_dir("operator");
    let spec = std::fs::read_to_string(root().join("examples/logging-operator-output.yaml")).unwrap();
    let spec = spec.replace(
        "    region: us-east-1\n",
        &format!(
            "    region: us-east-1\n    endpoint: http://127.0.0.1:{}\n",
            k.port
        ),
    );
    let config = dir.join("output.yaml");
    std::fs::write(&config, spec).unwrap();
    let (code, stderr) = ship(
        &["--config", config.to_str().unwrap()],
        Some(b"{\"log\":\"hello\"}\n"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(k.read()[0].0, b"{\"log\":\"hello\"}\n");
}

#[test]
fn credentials_come_from_shared_files_and_file_secrets() {
    let k = Kinesalite::start("it-creds");
    let dir = temp_dir("creds");
    std::fs::write(
        dir.join("credentials"),
        "[default]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = file-secret-value\n",
    )
    .unwrap();
    let config = write_config(&dir, &k, json!({}));
    let report = dir.join("report.json");
    let credentials = dir.join("credentials");
    let (code, stderr) = ship_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        Some(b"{\"pod\":\"a\",\"log\":\"from the shared file\"}\n"),
        &[("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("credentials: shared profile \"default\""),
        "{stderr}"
    );
    assert!(!stderr.contains("file-secret-value"));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["credential_source"], "shared profile \"default\"");

    // A secret mounted as a file, as the logging-operator does; its folder is granted by itself.
    std::fs::write(dir.join("aws_sec_key"), "mounted-secret-value\n").unwrap();
    let config = write_config(
        &dir,
        &k,
        json!({"aws_key_id": "AKIDMOUNTED", "aws_sec_key": {"file": dir.join("aws_sec_key")}}),
    );
    let (code, stderr) = ship_env(
        &["--config", config.to_str().unwrap()],
        Some(b"{\"pod\":\"b\",\"log\":\"from a mounted secret\"}\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("credentials: static keys from the configuration"),
        "{stderr}"
    );
    assert!(!stderr.contains("mounted-secret-value"));
    assert_eq!(k.read().len(), 2);

    // No credentials anywhere: exit 2 naming the problem.
    let config = write_config(&dir, &k, json!({}));
    let (code, stderr) = ship_env(&["--config", config.to_str().unwrap()], Some(b""), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no credentials"), "{stderr}");
}

#[test]
fn one_run_routes_records_to_several_streams() {
    let k = Kinesalite::start("logs-web,logs-db");
    let dir = temp_dir("routing");
    let config = write_config(&dir, &k, json!({"stream_name": "logs-${$.app}"}));
    let input: String = (0..30)
        .map(|i| {
            json!({"app": if i % 3 == 0 { "db" } else { "web" }, "pod": format!("p{i}"), "n": i}).to_string()
                + "\n"
        })
        .chain(["{\"pod\":\"x\",\"no\":\"app\"}\n".to_string()])
        .collect();
    let report = dir.join("report.json");
    let (code, stderr) = ship(
        &[
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(code, 1, "the record without app is rejected: {stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 30);
    assert_eq!(report["problems"][0]["code"], "NoStreamName");
    assert_eq!(report["problems"][0]["line"], 31);
    let web = k.read_stream("logs-web");
    let db = k.read_stream("logs-db");
    assert_eq!((web.len(), db.len()), (20, 10));
    assert!(db
        .iter()
        .all(|(d, _)| String::from_utf8_lossy(d).contains("\"app\":\"db\"")));
    assert!(web
        .iter()
        .all(|(d, _)| String::from_utf8_lossy(d).contains("\"app\":\"web\"")));
}

/// Run the official KPL deaggregator (aws-kinesis-agg, PyPI) over `kinesalite.mjs read` output.
fn deaggregate(read_output: &str) -> Vec<Value> {
    assert!(
        root().join(".tools/python/aws_kinesis_agg").is_dir(),
        "aws-kinesis-agg is not installed: run `make tools`"
    );
    let mut child = Command::new("python3")
        .arg(root().join("scripts/deaggregate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(read_output.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn aggregated_records_deaggregate_with_the_official_library() {
    let k = Kinesalite::start("it-kpl");
    let dir = temp_dir("kpl");
    // Small aggregates so several are made; keyed by pod, so records group per key.
    let config = write_config(&dir, &k, json!({"aggregate": true, "max_record_size": 4096}));
    let lines: Vec<String> = (0..300)
        .map(|i| json!({"pod": format!("pod-{}", i % 3), "log": format!("line {i} ✓"), "n": i}).to_string())
        .collect();
    let (code, stderr) = ship(
        &["--config", config.to_str().unwrap()],
        Some((lines.join("\n") + "\n").as_bytes()),
    );
    assert_eq!(code, 0, "{stderr}");

    let out = Command::new("node")
        .arg(root().join("scripts/kinesalite.mjs"))
        .args(["read", "--port", &k.port.to_string(), "--stream", "it-kpl"])
        .output()
        .unwrap();
    let read = String::from_utf8(out.stdout).unwrap();
    let kinesis_records = read.lines().count();
    assert!(
        kinesis_records > 3 && kinesis_records < 300,
        "{kinesis_records} Kinesis records"
    );
    let users = deaggregate(&read);
    assert_eq!(users.len(), 300, "user records out of the deaggregator");
    assert!(
        users.iter().all(|u| u["aggregated"] == true),
        "every record was a valid aggregate"
    );
    let got = multiset(users.iter().map(|u| {
        let data = base64::engine::general_purpose::STANDARD
            .decode(u["data"].as_str().unwrap())
            .unwrap();
        (data, u["partitionKey"].as_str().unwrap().to_string())
    }));
    let want = multiset(lines.iter().map(|l| expected(l)));
    assert!(got == want, "the user records differ from the input");
}

/// A Kubernetes secret volume as the kubelet writes it: the files in a timestamped folder,
/// `..data` pointing at it, and each key a link through `..data`.
fn secret_volume(dir: &Path, name: &str, keys: &[(&str, &str)]) {
    let secret = dir.join(name);
    let stamped = secret.join("..2026_11_28_04_00_00.000000001");
    std::fs::create_dir_all(&stamped).unwrap();
    for (key, value) in keys {
        std::fs::write(stamped.join(key), value).unwrap();
        std::os::unix::fs::symlink(format!("..data/{key}"), secret.join(key)).unwrap();
    }
    std::os::unix::fs::symlink("..2026_11_28_04_00_00.000000001", secret.join("..data")).unwrap();
}

#[test]
fn a_logging_operator_spec_with_its_secrets_ships_unchanged() {
    // The keys the signature-checking fake expects exist only in the mounted secrets.
    let fake = std::sync::Arc::new(host_tests::fake_kinesis::FakeKinesis::new(
        "operator-secrets",
        "AKIDFROMSECRET",
        "volume-secret-value",
    ));
    let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("k8s-secrets");
    let secrets = dir.join("secrets");
    secret_volume(
        &secrets,
        "kinesis-keys",
        &[("id", "AKIDFROMSECRET\n"), ("secret", "volume-secret-value\n")],
    );
    host_tests::transcript::secrets_in_env(&[("secret".to_string(), "volume-secret-value".to_string())]);
    let spec = format!(
        r#"apiVersion: logging.banzaicloud.io/v1beta1
kind: Output
metadata:
  name: kinesis-output-sample
spec:
  kinesisStream:
    stream_name: operator-secrets
    region: us-east-1
    endpoint: http://{}
    aws_key_id:
      valueFrom:
        secretKeyRef:
          name: kinesis-keys
          key: id
    aws_sec_key:
      mountFrom:
        secretKeyRef:
          name: kinesis-keys
          key: secret
    aws_ses_token:
      valueFrom:
        secretKeyRef:
          name: kinesis-keys
          key: token
          optional: true
"#,
        listener.addr
    );
    let config = dir.join("output.yaml");
    std::fs::write(&config, spec).unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ];
    let (code, stderr) = ship_env(&args, Some(b"{\"log\":\"signed with mounted keys\"}\n"), &[]);
    assert_eq!(code, 0, "{stderr}");
    let stored = fake.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].data, b"{\"log\":\"signed with mounted keys\"}\n");

    // A key the secret does not have: exit 2, naming the secret and the key, never a value.
    let spec = std::fs::read_to_string(&config)
        .unwrap()
        .replace("key: secret", "key: password");
    std::fs::write(&config, spec).unwrap();
    let (code, stderr) = ship_env(&args, Some(b""), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(r#"aws_sec_key.mountFrom.secretKeyRef: secret "kinesis-keys" has no key "password""#),
        "{stderr}"
    );
    assert!(
        !stderr.contains("volume-secret-value") && !stderr.contains("AKIDFROMSECRET"),
        "{stderr}"
    );

    // Without --secrets-dir (and no secrets_dir setting) the error says what is missing.
    let (code, stderr) = ship_env(&args[..2], Some(b""), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs secrets_dir"), "{stderr}");

    // kinesis-ship serve reads the same spec with --secrets-dir.
    let spec = std::fs::read_to_string(&config)
        .unwrap()
        .replace("key: password", "key: secret");
    std::fs::write(&config, spec).unwrap();
    let server = kinesis_ship_serve_with(&config, &["--secrets-dir", secrets.to_str().unwrap()]);
    let (status, answer) = http(&server.addr, "POST", "/", &[], b"{\"log\":\"through serve\"}\n").unwrap();
    assert_eq!(status, 200, "{answer}");
    drop(server);
    assert_eq!(fake.stored().len(), 2);
    assert_eq!(fake.stored()[1].data, b"{\"log\":\"through serve\"}\n");
}

/// A partition key past Kinesis's 256 characters is cut, counted in the report, and warned of
/// once per put with the line of the first; big integers reach the stream as written.
#[test]
fn long_partition_keys_are_cut_counted_and_warned_once_a_put() {
    let k = Kinesalite::start("it-long-keys");
    let dir = temp_dir("long-keys");
    let long = |c: &str| c.repeat(300);
    let input = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"pod": "web-1", "log": "a"}),
        json!({"pod": long("p"), "log": "b"}),
        r#"{"pod":"web-2","id":123456789012345678901234567890}"#,
        json!({"pod": long("q"), "log": "d"}),
    );
    let config = write_config(&dir, &k, json!({}));
    let report = dir.join("report.json");
    let (code, stderr) = ship(
        &[
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("partition key")).collect();
    assert_eq!(warnings.len(), 1, "one warning for the put: {stderr}");
    assert!(
        warnings[0]
            .contains("2 partition keys longer than Kinesis's 256 characters cut to 256 (the first: line 2)"),
        "{stderr}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["partition_keys_truncated"], 2, "{r}");
    let mut stored = k.read();
    stored.sort_by(|a, b| a.1.cmp(&b.1));
    let keys: Vec<String> = stored.iter().map(|(_, key)| key.clone()).collect();
    assert_eq!(
        keys,
        vec!["p".repeat(256), "q".repeat(256), "web-1".into(), "web-2".into()]
    );
    assert_eq!(
        stored[3].0,
        b"{\"pod\":\"web-2\",\"id\":123456789012345678901234567890}\n".to_vec(),
        "an integer beyond 64 bits keeps its digits"
    );
}
