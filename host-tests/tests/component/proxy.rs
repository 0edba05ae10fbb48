//! The proxy world, in-process: the request formats log agents send, and the answers.

use super::*;

use host_tests::runtime::{full_body, proxy_runtime};
use http_body_util::BodyExt;
use std::io::Write;

/// One request to a fresh proxy instance configured by `config` (as `KINESIS_OUTPUT_CONFIG`).
async fn request(
    fake: &Arc<FakeKinesis>,
    env: &[(&str, &str)],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, HashMap<String, String>, serde_json::Value) {
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).env(env);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://proxy.test{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = proxy_runtime()
        .handle(&options.build(), builder.body(full_body(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    host_tests::transcript::record("proxy answer", &String::from_utf8_lossy(&bytes));
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, headers, body)
}

async fn post(
    fake: &Arc<FakeKinesis>,
    cfg: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, HashMap<String, String>, serde_json::Value) {
    request(
        fake,
        &[("KINESIS_OUTPUT_CONFIG", cfg)],
        "POST",
        "/",
        headers,
        body,
    )
    .await
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn stored_json(fake: &FakeKinesis) -> Vec<serde_json::Value> {
    fake.stored()
        .iter()
        .map(|s| serde_json::from_slice(&s.data).unwrap())
        .collect()
}

/// Fluent Bit's `http` output with `Format json_lines`, `json_date_key date`, `compress gzip`
/// and `header_tag X-Tag`: Content-Type application/json (not x-ndjson), one record a line
/// with the date first, gzip, User-Agent Fluent-Bit. Each json_date_format reads right.
#[tokio::test(flavor = "multi_thread")]
async fn fluent_bit_json_lines_requests_ship_with_their_dates_and_tag() {
    let cfg = config(json!({
        "inject": {"tag_key": "tag", "time_key": "event_time"},
    }));
    for (format, date, expected_time) in [
        (
            "double",
            json!(1700000000.123456),
            "2023-11-14T22:13:20.123456000+0000",
        ),
        ("epoch", json!(1700000000), "2023-11-14T22:13:20.000000000+0000"),
        (
            "epoch_ms",
            json!(1700000000123u64),
            "2023-11-14T22:13:20.123000000+0000",
        ),
        (
            "iso8601",
            json!("2023-11-14T22:13:20.123456Z"),
            "2023-11-14T22:13:20.123456000+0000",
        ),
        (
            "java_sql_timestamp",
            json!("2023-11-14 22:13:20.123456"),
            "2023-11-14T22:13:20.123456000+0000",
        ),
    ] {
        let fake = fake();
        let lines: Vec<String> = (0..3)
            .map(|i| {
                json!({"date": date, "log": format!("line {i}"), "stream": "stdout", "pod": format!("web-{i}")})
                    .to_string()
            })
            .collect();
        let body = gzip((lines.join("\n") + "\n").as_bytes());
        let (status, _, answer) = post(
            &fake,
            &cfg,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("user-agent", "Fluent-Bit"),
                ("x-tag", "kube.var.log.containers.web"),
            ],
            body,
        )
        .await;
        assert_eq!(status, 200, "{format}: {answer}");
        assert_eq!(
            (&answer["delivered"], &answer["failed"], &answer["rejected"]),
            (&json!(3), &json!(0), &json!(0)),
            "{answer}"
        );
        assert_eq!(answer["counters"]["requests"], 1, "{answer}");
        assert_eq!(answer["counters"]["retries"], 0, "{answer}");
        let stored = stored_json(&fake);
        assert_eq!(stored.len(), 3, "{format}");
        for record in &stored {
            assert_eq!(record["event_time"], expected_time, "{format}");
            assert_eq!(record["tag"], "kube.var.log.containers.web");
            assert_eq!(record["date"], date, "{format}: the record itself is unchanged");
        }
        let keys: Vec<_> = fake.stored().iter().map(|s| s.partition_key.clone()).collect();
        assert_eq!(keys, vec!["web-0", "web-1", "web-2"]);
    }
}

/// Vector's `http` sink with `encoding.codec = "json"`, `framing.method =
/// "newline_delimited"` and `compression = "zstd"` (or gzip): application/x-ndjson, RFC 3339
/// timestamps with nanoseconds; and its default JSON-array framing.
#[tokio::test(flavor = "multi_thread")]
async fn vector_ndjson_and_array_requests_ship() {
    let cfg = config(json!({"inject": {"time_key": "event_time"}}));
    let records: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            json!({"message": format!("m{i}"), "timestamp": "2023-11-14T22:13:20.123456789Z",
                   "pod": format!("api-{i}"), "source_type": "kubernetes_logs"})
        })
        .collect();
    let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();

    let fake = fake();
    let zstd =
        ruzstd::encoding::compress_to_vec(ndjson.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
    let (status, _, answer) = post(
        &fake,
        &cfg,
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "zstd"),
        ],
        zstd,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let stored = stored_json(&fake);
    assert_eq!(stored.len(), 4);
    assert!(stored
        .iter()
        .all(|r| r["event_time"] == "2023-11-14T22:13:20.123456789+0000"));

    let fake = self::fake();
    let array = serde_json::to_vec(&records).unwrap();
    let (status, _, _) = post(
        &fake,
        &cfg,
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        gzip(&array),
    )
    .await;
    assert_eq!(status, 200);
    let messages: Vec<_> = stored_json(&fake).iter().map(|r| r["message"].clone()).collect();
    assert_eq!(messages, vec!["m0", "m1", "m2", "m3"]);
}

/// The delivery rule through the proxy world, with a host that remembers bodies (as
/// `kinesis-ship serve` does, through the ledger header): an agent that re-sends on 503 gets
/// every record stored exactly once, through throttled records and failed requests; each
/// re-post ships only the records not stored yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_resending_agent_gets_every_record_stored_once() {
    use kinesis_output::front::ledger::LEDGER_HEADER;
    let mut every_status = Vec::new();
    for seed in 1..=8u64 {
        // Small bodies (one request) and large ones (8 requests).
        let count = if seed % 2 == 0 { 3 } else { 40 };
        let fake = Arc::new(FakeKinesis::new(STREAM, KEY_ID, SECRET).with_random_faults(
            RandomFaults {
                throttle_records: 0.3,
                request_fault_rate: 0.3,
                request_faults: vec![Fault::ServerError, Fault::DropConnection, Fault::Throttled],
                ..RandomFaults::default()
            },
            seed,
        ));
        // No retries inside the proxy: every fault reaches the agent.
        let cfg = config(json!({"retries_on_batch_request": 0, "batch_request_max_count": 5}));
        let lines: Vec<String> = (0..count)
            .map(|i| json!({"pod": format!("p{}", i % 9), "seq": i}).to_string())
            .collect();
        let body = (lines.join("\n") + "\n").into_bytes();
        let mut answers = Vec::new();
        let mut ledger = String::new();
        let mut delivered = 0;
        let (mut status, mut answer);
        loop {
            let sent_before: usize = fake.seen().iter().map(|s| s.records).sum();
            (status, _, answer) = post(
                &fake,
                &cfg,
                &[("content-type", "application/x-ndjson"), (LEDGER_HEADER, &ledger)],
                body.clone(),
            )
            .await;
            answers.push(status);
            delivered += answer["delivered"].as_u64().unwrap();
            let pending_before = count as u64 - delivered + answer["delivered"].as_u64().unwrap();
            let sent: usize = fake.seen().iter().map(|s| s.records).sum::<usize>() - sent_before;
            assert!(
                sent as u64 <= pending_before,
                "seed {seed}: only records not stored go again"
            );
            ledger = answer["ledger"]
                .as_str()
                .expect("the entry for the host")
                .to_string();
            if status != 503 || answers.len() > 50 {
                break;
            }
            assert!(answer["pending"].as_u64().unwrap() > 0, "{answer}");
        }
        assert_eq!(status, 200, "seed {seed}: {answers:?} {answer}");
        assert_eq!(delivered, count as u64);
        let stored = stored_json(&fake);
        let mut seqs: Vec<u64> = stored.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        seqs.sort();
        assert_eq!(
            seqs,
            (0..count as u64).collect::<Vec<_>>(),
            "seed {seed}: each once ({answers:?})"
        );
        every_status.extend(answers);
    }
    // The faults reached the agent.
    assert!(every_status.contains(&503), "{every_status:?}");
}

fn example(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(path),
    )
    .unwrap()
}

/// An example's proxy settings, pointed at the fake.
fn example_config(path: &str) -> String {
    let mut cfg: serde_json::Value = serde_json::from_str(&example(path)).unwrap();
    cfg["stream_name"] = json!(STREAM);
    cfg["endpoint"] = json!("http://kinesis.test:4567");
    cfg["aws_key_id"] = json!(KEY_ID);
    cfg["aws_sec_key"] = json!(SECRET);
    cfg.to_string()
}

/// A Kubernetes record as the agents' kubernetes enrichment shapes it.
fn k8s_record(i: usize) -> serde_json::Value {
    json!({"log": format!("GET /api/{i} 200"), "stream": "stdout",
           "kubernetes": {"pod_name": format!("web-{}", i % 3), "namespace_name": "shop"}})
}

/// The requests Fluent Bit makes with `examples/fluent-bit/fluent-bit.yaml`, built from that
/// file's `http` output settings, are taken by the proxy with `kinesis.json` beside it.
#[tokio::test(flavor = "multi_thread")]
async fn the_fluent_bit_example_sends_what_the_proxy_takes() {
    let doc: serde_yaml::Value = serde_yaml::from_str(&example("fluent-bit/fluent-bit.yaml")).unwrap();
    let output = &doc["pipeline"]["outputs"][0];
    let get = |k: &str| output[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
    assert_eq!(get("name"), "http");
    assert_eq!(get("format"), "json_lines");
    // Fluent Bit's date formats, as it writes them for 2023-11-14T22:13:20.123456Z.
    let date = match get("json_date_format").as_str() {
        "double" => json!(1700000000.123456),
        "epoch" => json!(1700000000),
        "epoch_ms" => json!(1700000000123u64),
        "iso8601" => json!("2023-11-14T22:13:20.123456Z"),
        "java_sql_timestamp" => json!("2023-11-14 22:13:20.123456"),
        other => panic!("unknown json_date_format {other}"),
    };
    let mut body = String::new();
    for i in 0..6 {
        // The date key comes first, then the record.
        let mut record = serde_json::Map::new();
        record.insert(get("json_date_key"), date.clone());
        record.extend(k8s_record(i).as_object().unwrap().clone());
        body.push_str(&serde_json::Value::Object(record).to_string());
        body.push('\n');
    }
    assert_eq!(get("compress"), "gzip");
    let tag_header = get("header_tag");
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
        ("user-agent", "Fluent-Bit"),
        (
            tag_header.as_str(),
            "kube.var.log.containers.web-0_shop_app-1.log",
        ),
    ];
    let mut cfg: serde_json::Value =
        serde_json::from_str(&example_config("fluent-bit/kinesis.json")).unwrap();
    cfg["inject"] = json!({"tag_key": "tag", "time_key": "event_time"});
    let fake = fake();
    let (status, _, answer) = post(&fake, &cfg.to_string(), &headers, gzip(body.as_bytes())).await;
    assert_eq!(status, 200, "{answer}");
    let stored = stored_json(&fake);
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0]["tag"], "kube.var.log.containers.web-0_shop_app-1.log");
    assert_eq!(stored[0]["event_time"], "2023-11-14T22:13:20.123456000+0000");
    let keys: Vec<_> = fake.stored().iter().map(|s| s.partition_key.clone()).collect();
    assert_eq!(keys, vec!["web-0", "web-1", "web-2", "web-0", "web-1", "web-2"]);
}

/// Likewise for Vector's `http` sink with `examples/vector/vector.yaml`.
#[tokio::test(flavor = "multi_thread")]
async fn the_vector_example_sends_what_the_proxy_takes() {
    let doc: serde_yaml::Value = serde_yaml::from_str(&example("vector/vector.yaml")).unwrap();
    let sink = &doc["sinks"]["kinesis"];
    assert_eq!(sink["type"].as_str(), Some("http"));
    assert_eq!(sink["encoding"]["codec"].as_str(), Some("json"));
    let content_type = match sink["framing"]["method"].as_str() {
        Some("newline_delimited") => "application/x-ndjson",
        other => panic!("framing {other:?}"),
    };
    let records: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            let mut r = k8s_record(i);
            r["message"] = r["log"].take();
            r["timestamp"] = json!("2023-11-14T22:13:20.123456789Z");
            r["source_type"] = json!("kubernetes_logs");
            r
        })
        .collect();
    let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
    let encoding = sink["compression"].as_str().unwrap();
    let body = match encoding {
        "zstd" => {
            ruzstd::encoding::compress_to_vec(ndjson.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest)
        }
        "gzip" => gzip(ndjson.as_bytes()),
        other => panic!("compression {other}"),
    };
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), content_type.into()),
        ("content-encoding".into(), encoding.into()),
    ];
    for (k, v) in sink["request"]["headers"].as_mapping().unwrap() {
        headers.push((k.as_str().unwrap().into(), v.as_str().unwrap().into()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut cfg: serde_json::Value = serde_json::from_str(&example_config("vector/kinesis.json")).unwrap();
    cfg["inject"] = json!({"tag_key": "tag", "time_key": "event_time"});
    let fake = fake();
    let (status, _, answer) = post(&fake, &cfg.to_string(), &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    let stored = stored_json(&fake);
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0]["tag"], "vector.kubernetes");
    assert_eq!(stored[0]["event_time"], "2023-11-14T22:13:20.123456789+0000");
    assert_eq!(fake.stored()[1].partition_key, "web-1");

    // Its health check.
    let health = sink["healthcheck"]["uri"].as_str().unwrap();
    let path = &health[health.find("/health").unwrap()..];
    let env = [("KINESIS_OUTPUT_CONFIG", example_config("vector/kinesis.json"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = request(&fake, &env, "GET", path, &[], vec![]).await;
    assert_eq!(status, 200);
}

/// `examples/logging-operator-proxy.env` is what `kinesis-ship env` makes of the
/// logging-operator example, and the proxy takes it.
#[tokio::test(flavor = "multi_thread")]
async fn the_logging_operator_example_converts_to_proxy_variables() {
    let spec = kinesis_ship::setup::read_config(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/logging-operator-output.yaml"),
    )
    .unwrap();
    let text = kinesis_ship::envfile::env_lines(&spec, false, false).unwrap();
    assert_eq!(
        text,
        example("logging-operator-proxy.env"),
        "regenerate the example"
    );
    let mut env: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let fake = Arc::new(FakeKinesis::new("example-stream-name", KEY_ID, SECRET));
    env.extend([
        (
            "KINESIS_OUTPUT_ENDPOINT".to_string(),
            "http://kinesis.test:4567".to_string(),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, answer) = request(&fake, &env, "POST", "/", &[], b"{\"log\":\"hello\"}".to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fake.stored()[0].data, b"{\"log\":\"hello\"}\n");
    // --single and --shell forms.
    let single = kinesis_ship::envfile::env_lines(&spec, true, true).unwrap();
    assert!(single.starts_with("export KINESIS_OUTPUT_CONFIG='{"), "{single}");
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_for_rejections_bad_bodies_and_other_requests() {
    let fake = fake();
    let cfg = config(json!({}));
    let ndjson = [("content-type", "application/x-ndjson")];

    // Every record rejected (no partition key): 422, with each line.
    let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"a\":1}\n{\"b\":2}\n".to_vec()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][1]["code"], "NoPartitionKey");

    // Some stored, one rejected: 202 naming line 2.
    let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"pod\":\"a\"}\n{\"b\":2}\n".to_vec()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["problems"],
        json!([{"line": 2, "outcome": "rejected", "code": "NoPartitionKey",
        "message": answer["problems"][0]["message"]}])
    );

    // Not what it claims: 400 with the line, and nothing sent.
    let sent = fake.seen().len();
    let (status, _, answer) = post(&fake, &cfg, &ndjson, b"{\"pod\":\"a\"}\nnot json\n".to_vec()).await;
    assert_eq!((status, answer["line"].clone()), (400, json!(2)), "{answer}");
    let (status, _, _) = post(&fake, &cfg, &[("content-encoding", "gzip")], b"plain".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(fake.seen().len(), sent, "a refused body sends nothing");

    // Too large, before and after decompression; too many records.
    let small = config(json!({"proxy": {"max_body_size": 1000, "max_records": 3}}));
    let (status, _, _) = post(&fake, &small, &ndjson, vec![b' '; 1001]).await;
    assert_eq!(status, 413);
    let (status, _, _) = post(
        &fake,
        &small,
        &[("content-encoding", "gzip")],
        gzip(&[b' '; 5000]),
    )
    .await;
    assert_eq!(status, 413);
    let (status, _, answer) = post(&fake, &small, &ndjson, b"{}\n{}\n{}\n{}\n".to_vec()).await;
    assert_eq!(status, 413, "{answer}");

    // Unsupported media, other methods and paths, health.
    let (status, _, _) = post(
        &fake,
        &cfg,
        &[("content-type", "application/msgpack")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    let env = [("KINESIS_OUTPUT_CONFIG", cfg.as_str())];
    let (status, headers, _) = request(&fake, &env, "GET", "/", &[], vec![]).await;
    assert_eq!((status, headers["allow"].as_str()), (405, "POST"));
    let (status, _, _) = request(&fake, &env, "POST", "/elsewhere", &[], vec![]).await;
    assert_eq!(status, 404);
    let (status, _, answer) = request(&fake, &env, "GET", "/health", &[], vec![]).await;
    assert_eq!((status, answer["status"].clone()), (200, json!("ok")));
    let (status, _, _) = request(&fake, &env, "HEAD", "/health", &[], vec![]).await;
    assert_eq!(status, 200);
}

/// One variable per setting, secrets in their own variables; a bad or missing configuration
/// is a 500 (agents keep the records) and a failing health check, never a secret in the text.
#[tokio::test(flavor = "multi_thread")]
async fn configuration_from_one_variable_per_setting() {
    let fake = fake();
    let env = [
        ("KINESIS_OUTPUT_STREAM_NAME", STREAM),
        ("KINESIS_OUTPUT_REGION", "us-east-1"),
        ("KINESIS_OUTPUT_ENDPOINT", "http://kinesis.test:4567"),
        ("KINESIS_OUTPUT_PARTITION_KEY", "pod"),
        ("KINESIS_OUTPUT_AWS_KEY_ID", KEY_ID),
        ("KINESIS_OUTPUT_AWS_SEC_KEY", r#"{"env":"MY_SECRET"}"#),
        ("MY_SECRET", SECRET),
        (
            "KINESIS_OUTPUT_FORMAT",
            r#"{"type":"single_value","message_key":"log"}"#,
        ),
    ];
    let (status, _, answer) = request(
        &fake,
        &env,
        "POST",
        "/",
        &[("content-type", "application/x-ndjson")],
        b"{\"pod\":\"a\",\"log\":\"hello\"}\n".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fake.stored()[0].data, b"hello\n");

    let bad = [
        ("KINESIS_OUTPUT_STREAM_NAME", STREAM),
        ("KINESIS_OUTPUT_AWS_KEY_ID", KEY_ID),
        ("KINESIS_OUTPUT_AWS_SEC_KEY", SECRET),
        ("KINESIS_OUTPUT_BATCH_REQUEST_MAX_COUNT", "600"),
        ("AWS_REGION", "us-east-1"),
    ];
    let (status, headers, answer) = request(&fake, &bad, "POST", "/", &[], b"{}".to_vec()).await;
    assert_eq!(status, 500, "{answer}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(answer["field"], "batch_request_max_count");
    assert!(!answer.to_string().contains(SECRET));
    let (status, _, answer) = request(&fake, &bad, "GET", "/health", &[], vec![]).await;
    assert_eq!(status, 503, "{answer}");
    let (status, _, answer) = request(&fake, &[], "GET", "/health", &[], vec![]).await;
    assert_eq!(status, 503);
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("KINESIS_OUTPUT_CONFIG"));
}
