//! The logging-operator's Outputs unchanged: an Output with every field of the operator's
//! current `KinesisStream` and `KinesisFirehose` types set (with their `Buffer`, `Format` and
//! credential sections; the json tags are kept in `tests/fixtures/logging-operator-types.json`)
//! ships into kinesalite and into moto's Firehose, with credentials from moto's STS by
//! `assume_role_credentials`. What we apply takes effect; the rest is named in one warning each.

use host_tests::moto::MotoFirehose;

use super::*;

/// The operator's field names, by type.
fn operator_types() -> Value {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/logging-operator-types.json"
    ))
    .unwrap()
}

/// The names of `section` in the fixture.
fn names(types: &Value, section: &str) -> Vec<String> {
    types[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} in the fixture"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The buffer settings our hosts apply; every other key of the operator's `Buffer` is accepted
/// with a warning.
const APPLIED_BUFFER: &[&str] = &[
    "chunk_limit_records",
    "chunk_limit_size",
    "total_limit_size",
    "flush_interval",
    "overflow_action",
    "flush_thread_count",
    "retry_forever",
    "retry_max_times",
    "retry_timeout",
];

/// A value a user could give each field (every one of the fixture's names must have one).
fn value(section: &str, name: &str, target: &str) -> Value {
    let v = match (section, name) {
        (_, "stream_name" | "delivery_stream_name") => json!(target),
        (_, "partition_key") => json!("pod"),
        (_, "append_new_line") => json!(true),
        // The keys sign the call to STS; the role's keys sign the records.
        (_, "aws_key_id") => json!("AKIDBASEKEYS"),
        (_, "aws_sec_key") => json!("base-secret-value"),
        (_, "aws_ses_token") => json!("base-session-token"),
        (_, "aws_iam_retries") => json!(2),
        (_, "region") => json!("us-east-1"),
        (_, "retries_on_batch_request") => json!(3),
        (_, "reset_backoff_if_success") => json!(true),
        (_, "batch_request_max_count") => json!(100),
        (_, "batch_request_max_size") => json!(1_048_576),
        (_, "slow_flush_log_threshold") => json!("20.0"),
        ("assume_role_credentials", "role_arn") => json!("arn:aws:iam::123456789012:role/log-writer"),
        ("assume_role_credentials", "role_session_name") => json!("fluentd"),
        ("assume_role_credentials", "policy") => json!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:PutRecords","firehose:PutRecordBatch"],"Resource":"*"}]}"#
        ),
        ("assume_role_credentials", "duration_seconds") => json!("900"),
        ("assume_role_credentials", "external_id") => json!("tenant-7"),
        ("process_credentials", "process") => json!("/bin/false"),
        ("format", "type") => json!("json"),
        ("format", "add_newline") => json!(true),
        ("format", "message_key") => json!("message"),
        ("buffer", key) => match key {
            "disabled" | "retry_forever" | "disable_chunk_backup" => json!(false),
            "flush_at_shutdown" | "retry_randomize" | "timekey_use_utc" => json!(true),
            "type" => json!("file"),
            "tags" => json!("tag,time"),
            "path" => json!("/buffers/kinesis.*.buffer"),
            "chunk_limit_size" => json!("1m"),
            "chunk_limit_records" => json!(40),
            "total_limit_size" => json!("64m"),
            "queue_limit_length" => json!(64),
            "chunk_full_threshold" => json!("0.9"),
            "queued_chunks_limit_size" => json!(10),
            "compress" => json!("text"),
            "flush_mode" => json!("interval"),
            "flush_interval" => json!("1s"),
            "flush_thread_count" => json!(1),
            "flush_thread_interval" | "flush_thread_burst_interval" => json!("1.0"),
            "delayed_commit_timeout" => json!(60),
            "overflow_action" => json!("block"),
            "retry_timeout" => json!("1h"),
            "retry_max_times" => json!(5),
            "retry_secondary_threshold" => json!("0.8"),
            "retry_type" => json!("exponential_backoff"),
            "retry_wait" => json!("1s"),
            "retry_exponential_backoff_base" => json!("2"),
            "retry_max_interval" => json!("30s"),
            "timekey" => json!("1h"),
            "timekey_wait" => json!("10m"),
            "timekey_zone" => json!("+0000"),
            other => panic!("no value for buffer.{other}: the fixture grew; give it one"),
        },
        (section, other) => panic!("no value for {section}.{other}: the fixture grew; give it one"),
    };
    v
}

/// The Output's spec section (`kinesisStream` or `kinesisFirehose`) with every field set.
fn every_field(types: &Value, kind: &str, target: &str) -> Value {
    let mut spec = serde_json::Map::new();
    for name in names(types, kind) {
        let v = match name.as_str() {
            section @ ("assume_role_credentials" | "process_credentials" | "buffer" | "format") => {
                let mut m = serde_json::Map::new();
                for key in names(types, section) {
                    m.insert(key.clone(), value(section, &key, target));
                }
                Value::Object(m)
            }
            field => value(kind, field, target),
        };
        spec.insert(name, v);
    }
    Value::Object(spec)
}

/// The warnings the report lists for `names` (each should be named by exactly one).
fn warned_once(report: &Value, names: &[String]) {
    let warnings: Vec<String> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        // The local emulators' plain-http endpoints are warned about too.
        .filter(|w| !w.contains("http://"))
        .collect();
    for name in names {
        let naming = warnings
            .iter()
            .filter(|w| w.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(naming, 1, "{name}: {warnings:#?}");
    }
    assert_eq!(
        warnings.len(),
        names.len(),
        "nothing applied is warned about: {warnings:#?}"
    );
}

fn ship_output(
    output: &Value,
    dir: &Path,
    input: &[u8],
    authorities: &[u16],
    sts: &str,
) -> (i32, String, Value) {
    let path = dir.join("output.yaml");
    std::fs::write(&path, serde_yaml::to_string(output).unwrap()).unwrap();
    let report = dir.join("report.json");
    let mut args = vec![
        "--config".to_string(),
        path.to_str().unwrap().to_string(),
        "--report".to_string(),
        report.to_str().unwrap().to_string(),
    ];
    for port in authorities {
        args.push("--allow-authority".into());
        args.push(format!("127.0.0.1:{port}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host_tests::transcript::secret("base-secret-value");
    let (code, stderr) = ship_env(&args, Some(input), &[("AWS_ENDPOINT_URL_STS", sts)]);
    let report = std::fs::read(&report)
        .map(|r| serde_json::from_slice(&r).unwrap())
        .unwrap_or(Value::Null);
    (code, stderr, report)
}

/// Every field of `kinesisStream` and of `kinesisFirehose`, as the operator's types name them:
/// both Outputs ship every line once, with the role's credentials from moto's STS; the fields
/// we do not apply are each named in one warning; an unknown name is still refused.
#[test]
fn an_output_with_every_operator_field_ships_unchanged() {
    let types = operator_types();
    let k = Kinesalite::start("it-every-field");
    let m = MotoFirehose::start("every-field");
    let sts = m.endpoint();
    let not_applied = |kind: &str| -> Vec<String> {
        let mut list: Vec<String> = names(&types, "buffer")
            .into_iter()
            .filter(|b| !APPLIED_BUFFER.contains(&b.as_str()))
            .map(|b| format!("buffer.{b}"))
            .collect();
        // json has no message key; the keys come before process_credentials (as in the
        // Fluentd plugin); Fluentd's own slow-flush log has no counterpart.
        list.extend(
            [
                "format.message_key",
                "process_credentials",
                "slow_flush_log_threshold",
            ]
            .map(String::from),
        );
        let fields = names(&types, kind);
        assert!(list
            .iter()
            .all(|n| fields.iter().any(|f| n.split('.').next() == Some(f.as_str()))));
        list
    };

    // kinesisStream into kinesalite.
    let dir = temp_dir("every-field-stream");
    let mut spec = every_field(&types, "kinesisStream", &k.stream);
    // The one field beyond the operator's: where the local emulator listens.
    spec["endpoint"] = json!(format!("http://127.0.0.1:{}", k.port));
    let output = json!({"apiVersion": "logging.banzaicloud.io/v1beta1", "kind": "Output",
                        "metadata": {"name": "kinesis"}, "spec": {"kinesisStream": spec}});
    let sent = lines(0, 130);
    let (code, stderr, report) = ship_output(&output, &dir, &ndjson(&sent), &[k.port, m.port], &sts);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["delivered"], 130, "{report}");
    assert!(
        report["credential_source"]
            .as_str()
            .unwrap()
            .starts_with("assume role arn:aws:iam::123456789012:role/log-writer from"),
        "{report}"
    );
    // chunk_limit_records 40: four chunks.
    assert!(report["requests"].as_u64().unwrap() >= 4, "{report}");
    warned_once(&report, &not_applied("kinesisStream"));
    assert_eq!(
        multiset(k.read()),
        multiset(sent.iter().map(|l| expected(l))),
        "every line once"
    );

    // kinesisFirehose into moto's delivery stream.
    let dir = temp_dir("every-field-firehose");
    let mut spec = every_field(&types, "kinesisFirehose", &m.stream);
    spec["endpoint"] = json!(m.endpoint());
    let output = json!({"apiVersion": "logging.banzaicloud.io/v1beta1", "kind": "Output",
                        "metadata": {"name": "firehose"}, "spec": {"kinesisFirehose": spec}});
    let sent = lines(1000, 90);
    let (code, stderr, report) = ship_output(&output, &dir, &ndjson(&sent), &[m.port], &sts);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["delivered"], 90, "{report}");
    warned_once(&report, &not_applied("kinesisFirehose"));
    let mut got = m.lines();
    got.sort();
    let mut want: Vec<String> = sent
        .iter()
        .map(|l| String::from_utf8(expected(l).0).unwrap().trim_end().to_string())
        .collect();
    want.sort();
    assert_eq!(got, want, "every line once, one a line");

    // A misspelt name is still refused, with the nearest name.
    let mut spec = every_field(&types, "kinesisFirehose", &m.stream);
    spec["append_newline"] = json!(true);
    let output = json!({"spec": {"kinesisFirehose": spec}});
    let (code, stderr, _) = ship_output(&output, &dir, b"", &[m.port], &sts);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("append_newline: unknown setting; did you mean append_new_line?"),
        "{stderr}"
    );
}
