//! The edge bundle (`make edge`, dist/edge/) on both edge runtimes, the open-source Workers
//! runtime workerd and Deno (from npm), started by `dist/edge/serve` as a user would: records
//! through the real bundle to kinesalite, signatures checked by the harness's fake, throttling,
//! a hung endpoint, a bad configuration, and the answers every other door gives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tests::fake_kinesis::{FakeKinesis, Fault, RandomFaults};
use host_tests::listener;

use super::*;

const RUNTIMES: [&str; 2] = ["workerd", "deno"];

fn edge_serve_path() -> PathBuf {
    let path = root().join("dist/edge/serve");
    assert!(path.is_file(), "the edge bundle is not built: run `make edge`");
    path
}

/// `dist/edge/serve RUNTIME --config CONFIG --port N`, its output in `log`; waits for
/// `/health` to answer 200 when `healthy`, else for any answer.
fn edge_serve(runtime: &str, config: &Path, env: &[(&str, &str)], log: &Path, healthy: bool) -> Server {
    edge_serve_at(&edge_serve_path(), runtime, config, env, log, healthy)
}

/// [`edge_serve`] with the `serve` of another bundle.
fn edge_serve_at(
    serve: &Path,
    runtime: &str,
    config: &Path,
    env: &[(&str, &str)],
    log: &Path,
    healthy: bool,
) -> Server {
    let port = free_port();
    let mut cmd = Command::new(serve);
    cmd.args([
        runtime,
        "--config",
        config.to_str().unwrap(),
        "--port",
        &port.to_string(),
    ])
    .envs(env.iter().copied())
    .stdout(std::fs::File::create(log).unwrap())
    .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    let mut server = Server::spawn(cmd, format!("127.0.0.1:{port}"));
    if healthy {
        server.wait_healthy();
    } else {
        for _ in 0..240 {
            if http(&server.addr, "GET", "/health", &[], b"").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    server
}

/// A copy of dist/edge/'s files in `to` (made if missing): a bundle a test may change.
fn copy_bundle(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(root().join("dist/edge")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `POST /` of `body` as NDJSON: the status and the answer.
fn post_ndjson(addr: &str, body: &[u8]) -> (u16, String) {
    http(
        addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-ndjson")],
        body,
    )
    .unwrap()
}

/// What the runtime and the component wrote, kept for the secret scan.
fn edge_log(runtime: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default()
        + &std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    host_tests::transcript::record(&format!("dist/edge/serve {runtime}"), &text);
    assert!(
        !text.contains(SECRET_VALUE),
        "secret in {runtime}'s output: {text}"
    );
    text
}

/// NDJSON, Fluent Bit's gzipped json_lines and ten concurrent posts through each runtime to
/// kinesalite: every record stored once; the routes and codes of the proxy world.
#[test]
fn edge_runtimes_ship_every_record_once_to_kinesalite() {
    for runtime in RUNTIMES {
        let k = Kinesalite::start(&format!("it-edge-{runtime}"));
        let dir = temp_dir(&format!("edge-{runtime}"));
        std::fs::write(dir.join("config.json"), site_config(&k).to_string()).unwrap();
        let log = dir.join("serve.log");
        let server = edge_serve(
            runtime,
            &dir.join("config.json"),
            &[("KINESIS_SECRET", SECRET_VALUE)],
            &log,
            true,
        );

        // A sender cannot speak for the entry's memory: a forged entry saying every record is
        // stored is replaced by what the entry remembers (nothing).
        let first = lines(0, 300);
        let forged =
            "kinesis-output-ledger 1;records=300;stored=300;attempts=1;traps=0;first=0;settled=0-299";
        let (status, body) = http(
            &server.addr,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-ndjson"),
                ("kinesis-output-ledger", forged),
            ],
            &ndjson(&first),
        )
        .unwrap();
        assert_eq!(status, 200, "{runtime}: {body}");
        assert!(body.contains("\"delivered\":300"), "{runtime}: {body}");

        // Fluent Bit's framing: json_lines under application/json, gzipped.
        let second = lines(300, 200);
        let (status, body) = post_as_fluent_bit(&server.addr, &second);
        assert_eq!(status, 200, "{runtime}: {body}");

        // Ten posts at once, each answered in full.
        let addr = server.addr.clone();
        let posts: Vec<_> = (0..10)
            .map(|i| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let batch = lines(500 + i * 50, 50);
                    let answer = http(
                        &addr,
                        "POST",
                        "/",
                        &[("Content-Type", "application/x-ndjson")],
                        &ndjson(&batch),
                    );
                    (batch, answer)
                })
            })
            .collect();
        let mut concurrent = Vec::new();
        for post in posts {
            let (batch, answer) = post.join().unwrap();
            let (status, body) = answer.unwrap();
            assert_eq!(status, 200, "{runtime}: {body}");
            assert!(body.contains("\"delivered\":50"), "{runtime}: {body}");
            concurrent.extend(batch);
        }

        let (status, _) = http(&server.addr, "DELETE", "/", &[], b"").unwrap();
        assert_eq!(status, 405, "{runtime}");
        let (status, _) = http(&server.addr, "GET", "/nowhere", &[], b"").unwrap();
        assert_eq!(status, 404, "{runtime}");
        drop(server);
        edge_log(runtime, &log);

        let sent = first.iter().chain(&second).chain(&concurrent);
        assert_eq!(
            multiset(k.read()),
            multiset(sent.map(|l| expected(l))),
            "{runtime}"
        );
    }
}

/// A fake on a real port (it checks every signature) and a configuration file for it.
fn fake_edge(
    runtime: &str,
    name: &str,
    extra: Value,
) -> (Arc<FakeKinesis>, listener::Listener, PathBuf, Server) {
    let (fake, upstream, config) = fake_on_a_port(name, extra);
    let dir = temp_dir(&format!("{name}-{runtime}"));
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];
    let server = edge_serve(
        runtime,
        &dir.join("config.json"),
        &env,
        &dir.join("serve.log"),
        true,
    );
    (fake, upstream, dir, server)
}

/// Throttled calls are retried inside a post; records still throttled at `put_deadline` are
/// answered 503 and remembered, and each re-post of the same body ships only those: every line
/// stored once, every call signed as the fake expects (credentials as secrets from the
/// environment).
#[test]
fn edge_runtimes_retry_throttling_and_resend_only_what_was_not_stored() {
    for runtime in RUNTIMES {
        let (fake, _upstream, dir, server) =
            fake_edge(runtime, "it-edge-throttle", json!({"put_deadline": 10}));
        // Two whole calls throttled: retried within the post.
        fake.script([Fault::Throttled, Fault::Throttled]);
        let first = lines(0, 100);
        let (status, body) = post_ndjson(&server.addr, &ndjson(&first));
        assert_eq!(status, 200, "{runtime}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        // Three calls: two throttled whole (each of the 100 records counted), one stored.
        assert_eq!(answer["counters"]["requests"], 3, "{runtime}: {body}");
        assert_eq!(answer["counters"]["throttled_records"], 200, "{runtime}: {body}");

        // Most records throttled for a while: 503s until every record is stored.
        fake.set_random_faults(RandomFaults {
            throttle_records: 0.8,
            ..RandomFaults::default()
        });
        let second = lines(100, 400);
        let body_bytes = gzip(&ndjson(&second));
        let headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")];
        let mut answers = Vec::new();
        for attempt in 0..40 {
            if attempt == 3 {
                fake.set_random_faults(RandomFaults::default());
            }
            let (status, body) = http(&server.addr, "POST", "/", &headers, &body_bytes).unwrap();
            answers.push(status);
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{runtime}: {body}");
            assert!(
                body.len() < 4096,
                "{runtime}: an answer Fluent Bit can read: {body}"
            );
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert!(
                answer.get("ledger").is_none(),
                "{runtime}: the ledger stays inside: {body}"
            );
        }
        assert_eq!(
            answers.first(),
            Some(&503),
            "{runtime}: the storm reached the sender"
        );
        assert_eq!(answers.last(), Some(&200), "{runtime}: {answers:?}");
        drop(server);
        edge_log(runtime, &dir.join("serve.log"));

        let stored: Vec<(Vec<u8>, String)> = fake
            .stored()
            .into_iter()
            .map(|s| (s.data, s.partition_key))
            .collect();
        let sent = first.iter().chain(&second);
        assert_eq!(
            multiset(stored),
            multiset(sent.map(|l| expected(l))),
            "{runtime}: every line once"
        );
        let seen = fake.seen();
        assert!(
            seen.iter().all(|s| s.status == 200 || s.fault.is_some()),
            "{runtime}: signatures valid: {seen:?}"
        );
        assert!(seen.iter().all(|s| s
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.contains(KEY_ID_VALUE))));
    }
}

/// An endpoint that never answers: the post is answered 503 at `put_deadline` and `/health`
/// answers meanwhile; the same body posted again while the first is shipped waits for its turn,
/// then ships what is left: stored once.
#[test]
fn edge_runtimes_cut_a_hung_endpoint_at_put_deadline() {
    for runtime in RUNTIMES {
        let (fake, _upstream, dir, server) = fake_edge(runtime, "it-edge-hang", json!({"put_deadline": 5}));
        fake.script([Fault::Hang]);
        let sent = lines(0, 20);
        let body = ndjson(&sent);
        let post = |delay: u64| {
            let (addr, body) = (server.addr.clone(), body.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                let started = Instant::now();
                let answer = http(
                    &addr,
                    "POST",
                    "/",
                    &[("Content-Type", "application/x-ndjson")],
                    &body,
                );
                (answer.unwrap(), started.elapsed())
            })
        };
        // The second post goes once the first has reached the endpoint.
        let first = post(0);
        for _ in 0..100 {
            if !fake.seen().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            fake.seen().len(),
            1,
            "{runtime}: the first post reached the endpoint"
        );
        let again = post(0);
        std::thread::sleep(Duration::from_millis(300));
        let asked = Instant::now();
        let (status, health) = http(&server.addr, "GET", "/health", &[], b"").unwrap();
        assert_eq!(status, 200, "{runtime}: {health}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{runtime}: /health waited {:?}",
            asked.elapsed()
        );
        let ((status, answer), took) = first.join().unwrap();
        assert_eq!(status, 503, "{runtime}: {answer}");
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(15),
            "{runtime}: answered after {took:?}"
        );
        let ((status, answer), took) = again.join().unwrap();
        assert_eq!(status, 200, "{runtime}: {answer}");
        assert!(
            took >= Duration::from_secs(2),
            "{runtime}: the re-post waited for its turn ({took:?})"
        );
        drop(server);
        edge_log(runtime, &dir.join("serve.log"));
        let stored: Vec<(Vec<u8>, String)> = fake
            .stored()
            .into_iter()
            .map(|s| (s.data, s.partition_key))
            .collect();
        assert_eq!(
            multiset(stored),
            multiset(sent.iter().map(|l| expected(l))),
            "{runtime}"
        );
    }
}

/// A configuration the component refuses: every post answered 500 naming the field (and
/// `/health` 503), as on every door; nothing shipped. A file serve cannot read as a
/// configuration is refused before any runtime starts, naming the line.
#[test]
fn edge_runtimes_answer_a_bad_configuration() {
    for runtime in RUNTIMES {
        let dir = temp_dir(&format!("edge-bad-{runtime}"));
        std::fs::write(
            dir.join("config.json"),
            json!({"stream_name": "s", "region": "us-east-1", "retries_on_batch_request": "many"})
                .to_string(),
        )
        .unwrap();
        let log = dir.join("serve.log");
        let server = edge_serve(runtime, &dir.join("config.json"), &[], &log, false);
        let (status, answer) = http(&server.addr, "GET", "/health", &[], b"").unwrap();
        assert_eq!(status, 503, "{runtime}: {answer}");
        let (status, answer) = post_ndjson(&server.addr, b"{\"a\":1}\n");
        assert_eq!(status, 500, "{runtime}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["field"], "retries_on_batch_request", "{runtime}: {answer}");
        drop(server);
        edge_log(runtime, &log);

        std::fs::write(
            dir.join("bad.yaml"),
            "spec:\n  kinesisStream:\n    stream_name: s\n",
        )
        .unwrap();
        let out = Command::new(edge_serve_path())
            .args([
                runtime,
                "--config",
                dir.join("bad.yaml").to_str().unwrap(),
                "--port",
                "1",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("line 1 is neither JSON nor NAME=VALUE") && stderr.contains("kinesis-ship env"),
            "{stderr}"
        );
    }
    let out = Command::new(edge_serve_path())
        .args(["bun", "--config", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workerd or deno"));
}

/// The same body with bad records through `kinesis-ship serve` and both runtimes: the same
/// status and the same answer (problems cut for the agent, with their total), or all of them
/// with `?problems=all`.
#[test]
fn edge_runtimes_answer_as_kinesis_ship_serve_does() {
    let k = Kinesalite::start("it-edge-same");
    let dir = temp_dir("edge-same");
    let config = json!({
        "stream_name": "it-edge-same",
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", k.port),
        "partition_key": "pod",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];
    // Eight lines without a partition key, one too large, two good ones.
    let mut body = String::new();
    body.push_str(&format!("{}\n", json!({"pod": "a", "log": "ok"})));
    for i in 0..8 {
        body.push_str(&format!(
            "{}\n",
            json!({"log": format!("no key {i} {}", "é".repeat(300))})
        ));
    }
    body.push_str(&format!(
        "{}\n",
        json!({"pod": "c", "log": "x".repeat(1_100_000)})
    ));
    body.push_str(&format!("{}\n", json!({"pod": "d", "log": "ok too"})));
    let ndjson_type = [("Content-Type", "application/x-ndjson")];

    let answers = |addr: &str| {
        let (status, short) = http(addr, "POST", "/", &ndjson_type, body.as_bytes()).unwrap();
        let (all_status, all) = http(addr, "POST", "/?problems=all", &ndjson_type, body.as_bytes()).unwrap();
        assert_eq!(status, all_status);
        let short: Value = serde_json::from_str(&short).unwrap();
        let all: Value = serde_json::from_str(&all).unwrap();
        (status, short, all)
    };
    let server = kinesis_ship_serve_env(&dir.join("config.json"), &[], &keys);
    let (status, short, all) = answers(&server.addr);
    drop(server);
    assert_eq!(status, 202, "{short}");
    assert_eq!(short["problems"].as_array().unwrap().len(), 5, "{short}");
    assert_eq!(short["problems_total"], 9, "{short}");
    assert_eq!(all["problems"].as_array().unwrap().len(), 9, "{all}");

    for runtime in RUNTIMES {
        let log = dir.join(format!("{runtime}.log"));
        let server = edge_serve(runtime, &dir.join("config.json"), &keys, &log, true);
        let (edge_status, edge_short, edge_all) = answers(&server.addr);
        drop(server);
        edge_log(runtime, &log);
        assert_eq!(edge_status, status, "{runtime}");
        assert_eq!(edge_short, short, "{runtime}");
        assert_eq!(edge_all, all, "{runtime}");
    }
    // Three hosts, two posts each, two good records a post.
    assert_eq!(k.read().len(), 3 * 2 * 2);
}

/// The Worker takes bodies up to 8 MiB unless `proxy.max_body_size` says otherwise (an isolate
/// has 128 MB); Deno keeps the proxy's 16 MiB. Past the limit: 413 from the component, the rest
/// of the body not read.
#[test]
fn edge_runtimes_refuse_a_body_past_max_body_size() {
    let dir = temp_dir("edge-limit");
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];
    // Nothing is shipped: the endpoint is never reached.
    let base = json!({"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:9"});
    std::fs::write(dir.join("default.json"), base.to_string()).unwrap();
    let mut small = base.clone();
    small["proxy"] = json!({"max_body_size": 1000});
    std::fs::write(dir.join("small.json"), small.to_string()).unwrap();
    let post = |addr: &str, size: usize| {
        let body = "a".repeat(size);
        post_ndjson(addr, body.as_bytes())
    };
    for (runtime, limit) in [("workerd", 8 << 20), ("deno", 16 << 20)] {
        let log = dir.join(format!("{runtime}-default.log"));
        let server = edge_serve(runtime, &dir.join("default.json"), &keys, &log, true);
        let (status, answer) = post(&server.addr, limit + 1);
        assert_eq!(status, 413, "{runtime}: {answer}");
        assert!(
            answer.contains(&format!("the body exceeds {limit} bytes")),
            "{runtime}: {answer}"
        );
        drop(server);
        edge_log(runtime, &log);

        let log = dir.join(format!("{runtime}-small.log"));
        let server = edge_serve(runtime, &dir.join("small.json"), &keys, &log, true);
        let (status, answer) = post(&server.addr, 1001);
        assert_eq!(status, 413, "{runtime}: {answer}");
        assert!(
            answer.contains("the body exceeds 1000 bytes"),
            "{runtime}: {answer}"
        );
        drop(server);
        edge_log(runtime, &log);
    }
}

/// What `wrangler deploy` would upload: wrangler (pinned, on Deno: it needs a newer Node than
/// this machine's) packs dist/edge/ by its wrangler.toml with `--dry-run`, names the
/// configuration binding, and the Worker it packed (its own module names) ships records through
/// workerd.
#[test]
fn wrangler_packs_the_worker_and_workerd_runs_what_it_packed() {
    let wrangler = root().join(".tools/wrangler/node_modules/wrangler/bin/wrangler.js");
    assert!(
        wrangler.is_file(),
        "wrangler is not installed: run `make test`'s tools"
    );
    let deno = node_tool("deno");
    let dir = temp_dir("edge-wrangler");
    let project = dir.join("project");
    copy_bundle(&project);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(deno);
    cmd.args(["run", "--quiet", "-A"])
        .arg(&wrangler)
        .args(["deploy", "--dry-run", "--outdir", "packed"])
        .current_dir(&project)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CI", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("DENO_DIR", dir.join("deno"));
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("env.KINESIS_OUTPUT_CONFIG"), "{said}");
    let packed = project.join("packed");
    let wasm: Vec<String> = std::fs::read_dir(&packed)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    let built = std::fs::read_dir(root().join("dist/edge"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wasm")
        })
        .count();
    assert_eq!(wasm.len(), built, "{wasm:?}");
    let source = std::fs::read_to_string(packed.join("worker.js")).unwrap();
    for name in &wasm {
        assert!(source.contains(name.as_str()), "worker.js imports {name}");
    }
    // serve runs the Worker of its own folder: give it wrangler's.
    for file in ["serve", "serve.mjs"] {
        std::fs::copy(project.join(file), packed.join(file)).unwrap();
    }
    std::fs::write(
        packed.join("core-modules.json"),
        serde_json::to_string(&wasm).unwrap(),
    )
    .unwrap();

    let k = Kinesalite::start("it-edge-wrangler");
    std::fs::write(dir.join("config.json"), site_config(&k).to_string()).unwrap();
    let log = dir.join("serve.log");
    let workerd = node_tool("workerd");
    let env = [
        ("KINESIS_SECRET", SECRET_VALUE),
        ("WORKERD", workerd.to_str().unwrap()),
    ];
    let server = edge_serve_at(
        &packed.join("serve"),
        "workerd",
        &dir.join("config.json"),
        &env,
        &log,
        true,
    );
    let sent = lines(0, 50);
    let (status, answer) = post_ndjson(&server.addr, &ndjson(&sent));
    assert_eq!(status, 200, "{answer}");
    drop(server);
    edge_log("workerd", &log);
    assert_eq!(multiset(k.read()), multiset(sent.iter().map(|l| expected(l))));
}

/// The same bytes under two tags (`proxy.tag_header`) are two bodies: what one stored says
/// nothing of the other, which ships every record.
#[test]
fn edge_runtimes_tell_bodies_apart_by_their_tag() {
    for runtime in RUNTIMES {
        let (fake, _upstream, dir, server) = fake_edge(
            runtime,
            "it-edge-tags",
            json!({"retries_on_batch_request": 0, "proxy": {"tag_header": "X-Log-Tag"}}),
        );
        fake.set_random_faults(RandomFaults {
            throttle_records: 0.5,
            ..RandomFaults::default()
        });
        let sent = lines(0, 100);
        let body = ndjson(&sent);
        let post = |tag: &str| {
            let (status, answer) = http(
                &server.addr,
                "POST",
                "/",
                &[("Content-Type", "application/x-ndjson"), ("X-Log-Tag", tag)],
                &body,
            )
            .unwrap();
            (status, serde_json::from_str::<Value>(&answer).unwrap())
        };
        let (status, answer) = post("app.one");
        assert_eq!(status, 503, "{runtime}: {answer}");
        let stored_first = fake.stored().len();
        assert!(
            stored_first > 0 && stored_first < 100,
            "{runtime}: {stored_first}"
        );
        fake.set_random_faults(RandomFaults::default());
        let (status, answer) = post("app.two");
        assert_eq!(status, 200, "{runtime}: {answer}");
        assert_eq!(answer["delivered"], 100, "{runtime}: {answer}");
        assert!(answer.get("stored_before").is_none(), "{runtime}: {answer}");
        // The first tag's re-post ships only what it has left.
        let (status, answer) = post("app.one");
        assert_eq!(status, 200, "{runtime}: {answer}");
        assert_eq!(answer["stored_before"], stored_first, "{runtime}: {answer}");
        drop(server);
        edge_log(runtime, &dir.join("serve.log"));
        assert_eq!(fake.stored().len(), 200, "{runtime}");
    }
}

/// A component that fails (here: a bundle whose core modules do not link) is answered 503 with
/// `ComponentTrap`, then, the second time in a row for the same body, given up (422), as
/// kinesis-ship serve gives it up; `/health` says 503. The runtime keeps serving.
#[test]
fn edge_runtimes_give_a_body_up_after_two_failures_in_a_row() {
    let dir = temp_dir("edge-broken");
    let bundle = dir.join("bundle");
    copy_bundle(&bundle);
    // The smallest core module in place of the other small one: valid wasm, wrong imports.
    std::fs::copy(
        bundle.join("kinesis.core2.wasm"),
        bundle.join("kinesis.core3.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        json!({"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:9"}).to_string(),
    )
    .unwrap();
    let (workerd, deno) = (node_tool("workerd"), node_tool("deno"));
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
        ("WORKERD", workerd.to_str().unwrap()),
        ("DENO", deno.to_str().unwrap()),
    ];
    for runtime in RUNTIMES {
        let log = dir.join(format!("{runtime}.log"));
        let server = edge_serve_at(
            &bundle.join("serve"),
            runtime,
            &dir.join("config.json"),
            &env,
            &log,
            false,
        );
        let body = b"{\"pod\":\"a\"}\n";
        let post = || {
            let (status, answer) = post_ndjson(&server.addr, body);
            (status, serde_json::from_str::<Value>(&answer).unwrap())
        };
        let (status, answer) = post();
        assert_eq!(
            (status, answer["code"].as_str()),
            (503, Some("ComponentTrap")),
            "{runtime}: {answer}"
        );
        let (status, answer) = post();
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some("ComponentTrap")),
            "{runtime}: {answer}"
        );
        assert!(
            answer["error"].as_str().unwrap().contains("2 times in a row"),
            "{runtime}: {answer}"
        );
        // A new run of failures starts again from the first.
        let (status, _) = post();
        assert_eq!(status, 503, "{runtime}");
        let (status, _) = http(&server.addr, "GET", "/health", &[], b"").unwrap();
        assert_eq!(status, 503, "{runtime}");
        drop(server);
        let said = edge_log(runtime, &log);
        assert!(said.contains("the component failed"), "{runtime}: {said}");
    }
}

/// Past `proxy.max_body_size`, a body announced larger and a chunked one that goes on are
/// answered 413 once the limit is passed, not read to their end.
#[test]
fn edge_runtimes_stop_reading_a_body_past_the_limit() {
    use std::io::{Read as _, Write as _};
    let dir = temp_dir("edge-limit-stream");
    std::fs::write(
        dir.join("config.json"),
        json!({"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:9", "proxy": {"max_body_size": 1000}})
            .to_string(),
    )
    .unwrap();
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEY_ID_VALUE),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];
    // Writes `head` and then `piece` up to `times` times, until the server stops reading;
    // returns the answer's first bytes.
    let exchange = |addr: &str, head: String, piece: Vec<u8>, times: usize| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..times {
                    if s.write_all(&piece).is_err() {
                        return;
                    }
                }
            })
        };
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).unwrap_or(0);
        drop(s);
        let _ = writer.join();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    for runtime in RUNTIMES {
        let log = dir.join(format!("{runtime}.log"));
        let server = edge_serve(runtime, &dir.join("config.json"), &keys, &log, true);
        // Announced as 1 MiB, sent in 4 KiB pieces.
        let answer = exchange(
            &server.addr,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1048576\r\n\r\n".into(),
            vec![b'a'; 4096],
            256,
        );
        assert!(answer.starts_with("HTTP/1.1 413"), "{runtime}: {answer}");
        assert!(
            answer.contains("the body exceeds 1000 bytes"),
            "{runtime}: {answer}"
        );
        // Chunked, up to 64 MiB.
        let line = format!("{}\n", json!({"pod": "p", "filler": "y".repeat(1000)}));
        let answer = exchange(
            &server.addr,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            format!("{:x}\r\n{line}\r\n", line.len()).into_bytes(),
            64 * 1024,
        );
        assert!(answer.starts_with("HTTP/1.1 413"), "{runtime}: {answer}");
        drop(server);
        edge_log(runtime, &log);
    }
}

/// A client that goes away while its body is shipped does not stop the put: what it stored is
/// remembered, and the re-post ships only the rest. (Local workerd goes on without the Worker's
/// `ctx.waitUntil` too: this does not prove that call, which is for Cloudflare's own runtime.)
#[test]
fn edge_runtimes_finish_a_put_whose_client_went_away() {
    use std::io::Write as _;
    for runtime in RUNTIMES {
        let (fake, _upstream, dir, server) = fake_edge(
            runtime,
            "it-edge-gone",
            json!({"put_deadline": 10, "retries_on_batch_request": 0}),
        );
        // One slow call, half its records throttled: the body ends 503 with half stored.
        fake.script([Fault::Slow(Duration::from_secs(2))]);
        fake.set_random_faults(RandomFaults {
            throttle_records: 0.5,
            ..RandomFaults::default()
        });
        let sent = lines(0, 40);
        let body = ndjson(&sent);
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        s.write_all(&body).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop(s);
        for _ in 0..100 {
            if !fake.stored().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let stored_first = fake.stored().len();
        assert!(
            stored_first > 0 && stored_first < sent.len(),
            "{runtime}: {stored_first}"
        );
        fake.set_random_faults(RandomFaults::default());
        std::thread::sleep(Duration::from_secs(1));
        let (status, answer) = post_ndjson(&server.addr, &body);
        drop(server);
        edge_log(runtime, &dir.join("serve.log"));
        assert_eq!(status, 200, "{runtime}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            answer["stored_before"], stored_first,
            "{runtime}: the put went on and was remembered: {answer}"
        );
        assert_eq!(fake.stored().len(), sent.len(), "{runtime}: nothing twice");
    }
}

/// The sample `workerd.capnp` in dist/edge/ (what a user edits) runs the Worker under workerd:
/// its credentials from the environment, as it says.
#[test]
fn the_sample_workerd_configuration_runs_the_worker() {
    let dir = temp_dir("edge-sample");
    copy_bundle(&dir);
    let port = free_port();
    let sample = std::fs::read_to_string(dir.join("workerd.capnp")).unwrap();
    assert!(sample.contains("127.0.0.1:8080"), "{sample}");
    std::fs::write(
        dir.join("workerd.capnp"),
        sample.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let mut cmd = Command::new(node_tool("workerd"));
    cmd.args(["serve", "workerd.capnp"])
        .current_dir(&dir)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE);
    let server = Server::start(cmd, format!("127.0.0.1:{port}"));
    let (status, health) = http(&server.addr, "GET", "/health", &[], b"").unwrap();
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("environment (AWS_ACCESS_KEY_ID)"), "{health}");
}
