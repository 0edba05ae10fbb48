//! End to end: kinesis-ship and the component against kinesalite, a real local Kinesis, with the
//! records read back through GetRecords and compared with what was sent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

const SHIP: &str = env!("CARGO_BIN_EXE_kinesis-ship");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// kinesalite on 127.0.0.1, stopped on drop.
struct Kinesalite {
    child: Child,
    port: u16,
    stream: String,
}

impl Kinesalite {
    fn start(stream: &str) -> Kinesalite {
        let kinesalite = root().join(".tools/node/node_modules/kinesalite");
        assert!(
            kinesalite.is_dir(),
            "kinesalite is not installed: run `make tools`"
        );
        let mut child = Command::new("node")
            .arg(root().join("scripts/kinesalite.mjs"))
            .args(["serve", "--port", "0", "--stream", stream, "--shards", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("kinesalite did not start: {err}");
        });
        let port = line
            .strip_prefix("ready ")
            .expect("ready PORT")
            .trim()
            .parse()
            .unwrap();
        Kinesalite {
            child,
            port,
            stream: stream.to_string(),
        }
    }

    /// Every record in the stream: (data, partition key).
    fn read(&self) -> Vec<(Vec<u8>, String)> {
        self.read_stream(&self.stream)
    }

    fn read_stream(&self, stream: &str) -> Vec<(Vec<u8>, String)> {
        let out = Command::new("node")
            .arg(root().join("scripts/kinesalite.mjs"))
            .args(["read", "--port", &self.port.to_string(), "--stream", stream])
            .output()
            .expect("node runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(v["data"].as_str().unwrap())
                    .unwrap();
                (data, v["partitionKey"].as_str().unwrap().to_string())
            })
            .collect()
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kinesis-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, k: &Kinesalite, extra: Value) -> PathBuf {
    let mut cfg = json!({
        "stream_name": k.stream,
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", k.port),
        "partition_key": "pod",
        "buffer": {"chunk_limit_records": 400, "flush_interval": "5s"},
    });
    for (key, v) in extra.as_object().unwrap() {
        cfg[key] = v.clone();
    }
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn ship(args: &[&str], stdin: Option<&[u8]>) -> (i32, String) {
    ship_env(
        args,
        stdin,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDINTEGRATION"),
            ("AWS_SECRET_ACCESS_KEY", "integration-secret-value"),
        ],
    )
}

/// Run kinesis-ship with only `env` of the AWS variables (and no instance profile).
fn ship_env(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(SHIP);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", temp_dir("home"))
        .env("KINESIS_OUTPUT_WASM", host_tests::runtime::component_path())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for (name, value) in env {
        host_tests::transcript::secrets_in_env(&[(name.to_string(), value.to_string())]);
    }
    host_tests::transcript::record("kinesis-ship stderr", &stderr);
    host_tests::transcript::record("kinesis-ship stdout", &String::from_utf8_lossy(&out.stdout));
    assert!(
        !stderr.contains("integration-secret-value"),
        "secret in output: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

/// What the stream should hold for an input line: compact JSON plus a newline, keyed by `pod`.
fn expected(line: &str) -> (Vec<u8>, String) {
    let v: Value = match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "message": line }),
    };
    let key = match &v["pod"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut data = serde_json::to_vec(&v).unwrap();
    data.push(b'\n');
    (data, key)
}

fn multiset(items: impl IntoIterator<Item = (Vec<u8>, String)>) -> HashMap<(Vec<u8>, String), usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

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

// ---- The proxy and command worlds in hosts nobody here wrote: the wasmtime CLI and jco ----

/// A server process (and its children: `jco serve` starts a second node), stopped on drop.
struct Server {
    child: Child,
    addr: String,
    /// Whether the child leads its own process group (then the whole group is stopped).
    group: bool,
    /// Processes whose command line contains this are stopped too (`jco serve` starts its
    /// worker in a process group of its own).
    also_stop: Option<String>,
}

impl Server {
    /// Start `cmd` in its own process group and wait (bounded) until `GET /health` answers 200.
    fn start(mut cmd: Command, addr: String) -> Server {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host starts");
        let mut server = Server {
            child,
            addr,
            group: true,
            also_stop: None,
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        for _ in 0..240 {
            if let Ok((200, _)) = http(&self.addr, "GET", "/health", &[], b"") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("the host exited ({status}): {err}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("the host did not answer /health within 60 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Signals through the syscall, not the `kill` program: procps-ng 4.0.2's
        // `kill -TERM -PGID` signalled every process on this machine.
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        if self.group {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pattern) = &self.also_stop {
            for signal in [Signal::SIGTERM, Signal::SIGKILL] {
                for pid in processes_matching(pattern) {
                    let _ = kill(Pid::from_raw(pid as i32), signal);
                }
                for _ in 0..50 {
                    if processes_matching(pattern).is_empty() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// The processes whose command line contains `pattern`.
fn processes_matching(pattern: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(pattern))
                .unwrap_or(false)
        })
        .collect()
}

/// A free port on 127.0.0.1 (released for the host to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status and the body as text.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Run `cmd` with `stdin`, bounded in time; exit code and stderr.
fn run_bounded(mut cmd: Command, stdin: &[u8]) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    for _ in 0..1200 {
        if let Some(status) = child.try_wait().unwrap() {
            let text = reader.join().unwrap();
            assert!(!text.contains(SECRET_VALUE), "secret in output: {text}");
            return (status.code().unwrap_or(-1), text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the command did not finish within 120 s");
}

const KEY_ID_VALUE: &str = "AKIDINTEGRATION";
const SECRET_VALUE: &str = "integration-secret-value";

fn wasmtime_cli() -> PathBuf {
    let path = root().join(".tools/wasmtime/wasmtime_cli/wasmtime");
    assert!(
        path.is_file(),
        "the wasmtime CLI is not installed: run `make tools`"
    );
    path
}

fn jco() -> PathBuf {
    let path = root().join(".tools/node/node_modules/.bin/jco");
    assert!(path.is_file(), "jco is not installed: run `make tools`");
    path
}

/// Kubernetes-style lines, numbered from `from`.
fn lines(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            json!({"log": format!("GET /api/{i} 200 ✓"), "stream": "stdout", "pod": format!("web-{}", i % 5),
                   "date": 1_700_000_000.25 + i as f64})
            .to_string()
        })
        .collect()
}

fn ndjson(lines: &[String]) -> Vec<u8> {
    lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect()
}

fn site_config(k: &Kinesalite) -> Value {
    json!({
        "stream_name": k.stream,
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", k.port),
        "partition_key": "pod",
        "aws_key_id": KEY_ID_VALUE,
        "aws_sec_key": {"env": "KINESIS_SECRET"},
    })
}

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
    let (status, body) = http(
        &server.addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("User-Agent", "Fluent-Bit"),
        ],
        &gzip(&ndjson(&sent)),
    )
    .unwrap();
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

#[test]
fn a_trap_is_reported_and_a_new_instance_ships_the_next_chunks() {
    // --max-memory bounds the component's linear memory: a chunk of large records needs more
    // and traps; kinesis-ship reports its records, starts a new instance and goes on.
    let k = Kinesalite::start("it-trap");
    let dir = temp_dir("trap");
    let config = write_config(
        &dir,
        &k,
        json!({"buffer": {"chunk_limit_records": 40, "flush_interval": "60s"}}),
    );
    let big = "x".repeat(200_000);
    let mut input = String::new();
    for i in 0..40 {
        input.push_str(&format!("{{\"pod\":\"small-{i}\",\"n\":{i}}}\n"));
    }
    for i in 0..40 {
        input.push_str(&format!("{{\"pod\":\"big-{i}\",\"log\":\"{big}\"}}\n"));
    }
    for i in 0..40 {
        input.push_str(&format!("{{\"pod\":\"after-{i}\",\"n\":{i}}}\n"));
    }
    let input_path = dir.join("input.ndjson");
    std::fs::write(&input_path, &input).unwrap();
    let report = dir.join("report.json");
    let (code, stderr) = ship(
        &[
            "--config",
            config.to_str().unwrap(),
            "--input",
            input_path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--max-memory",
            "6",
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the component trapped"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 80, "{report}");
    assert_eq!(report["failed"], 40, "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 40);
    assert!(problems
        .iter()
        .all(|p| p["code"] == "ComponentTrap" && (41..=80).contains(&p["line"].as_u64().unwrap())));
    let stored = k.read();
    assert_eq!(
        stored.len(),
        80,
        "the chunks before and after the trap, nothing of the trapped one twice"
    );
}

#[test]
fn after_a_trap_only_what_the_service_did_not_store_is_sent_again() {
    // The instance traps right after the first PutRecords answer (fault injection). The host
    // saw that answer: those records count as delivered, the rest go through a new instance,
    // and the stream holds every record exactly once.
    let k = Kinesalite::start("it-trap-resend");
    let dir = temp_dir("trap-resend");
    let config = write_config(
        &dir,
        &k,
        json!({"buffer": {"chunk_limit_records": 300, "flush_interval": "60s"},
               "batch_request_max_count": 100, "max_concurrent_requests": 1}),
    );
    let lines: Vec<String> = (0..300)
        .map(|i| json!({"pod": format!("pod-{}", i % 7), "log": format!("line {i}"), "n": i}).to_string())
        .collect();
    let input = dir.join("input.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let report = dir.join("report.json");
    let (code, stderr) = ship_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDINTEGRATION"),
            ("AWS_SECRET_ACCESS_KEY", "integration-secret-value"),
            ("KINESIS_FAULT_TRAP_AFTER_PUTS", "1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the component trapped after the service stored 100 of this chunk's 300 records; sending the other 200 again"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["delivered"], 300, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let stored = k.read();
    assert_eq!(stored.len(), 300, "no record twice");
    assert_eq!(multiset(stored), multiset(lines.iter().map(|l| expected(l))));
}

// ---- One kit for every door ----

/// `(line, code)` of every problem listed in a report or an answer.
fn problems(answer: &Value) -> Vec<(u64, String)> {
    answer["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems listed: {answer}"))
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Start `kinesis-ship serve` with the configuration file `config` (credentials from the
/// environment); the server, with the address it printed.
fn kinesis_ship_serve(config: &Path) -> Server {
    let mut child = Command::new(SHIP)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env(
            "KINESIS_OUTPUT_PROXY_WASM",
            host_tests::runtime::proxy_component_path(),
        )
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("no address: {first:?}")
        })
        .to_string();
    Server {
        child,
        addr,
        group: false,
        also_stop: None,
    }
}

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
