//! End to end: kinesis-ship and the component against kinesalite, a real local Kinesis, with the
//! records read back through GetRecords and compared with what was sent. One test binary, a
//! module per area; the helpers every area uses are here.

mod delivery;
mod doors;
mod edge;
mod firehose;
mod guard;
mod operating;
mod operator;
mod ship;
mod traps;
mod worlds;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use host_tests::kinesalite::{root, Kinesalite};

const SHIP: &str = env!("CARGO_BIN_EXE_kinesis-ship");

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
    // The report, where there is one, is scanned too.
    if let Some(i) = args.iter().position(|a| *a == "--report") {
        if let Ok(report) = std::fs::read_to_string(args[i + 1]) {
            host_tests::transcript::record("kinesis-ship report", &report);
        }
    }
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
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut server = Server::spawn(cmd, addr);
        server.wait_healthy();
        server
    }

    /// Start `cmd` in its own process group, its output where `cmd` sends it, without waiting.
    fn spawn(mut cmd: Command, addr: String) -> Server {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("the host starts");
        Server {
            child,
            addr,
            group: true,
            also_stop: None,
        }
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

use host_tests::listener::free_port;

/// One HTTP/1.1 request; the status and the body as text.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    http_with_head(addr, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// [`http`], with the response's head (status line and headers) too.
fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    host_tests::listener::exchange(&mut s, addr, method, path, headers, body)
}

/// The value of the Prometheus sample whose line starts with `name` (labels included).
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
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
    node_tool("jco")
}

/// A program the npm packages in `.tools/node` provide (jco, workerd, deno).
fn node_tool(name: &str) -> PathBuf {
    let path = root().join(".tools/node/node_modules/.bin").join(name);
    assert!(path.is_file(), "{name} is not installed: run `make test`'s tools");
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

/// `POST /` of `lines` as Fluent Bit's `http` output sends them (`json_lines` under
/// application/json, gzipped): the status and the answer.
fn post_as_fluent_bit(addr: &str, lines: &[String]) -> (u16, String) {
    http(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("User-Agent", "Fluent-Bit"),
        ],
        &gzip(&ndjson(lines)),
    )
    .unwrap()
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

/// A fake Kinesis on a real port (it checks every signature) and a configuration for it: the
/// stream `name`, the fake as its endpoint, `pod` as the partition key, `extra`'s settings on top.
fn fake_on_a_port(
    name: &str,
    extra: Value,
) -> (
    std::sync::Arc<host_tests::fake_kinesis::FakeKinesis>,
    host_tests::listener::Listener,
    Value,
) {
    let fake = std::sync::Arc::new(host_tests::fake_kinesis::FakeKinesis::new(
        name,
        KEY_ID_VALUE,
        SECRET_VALUE,
    ));
    let upstream = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut config = json!({
        "stream_name": name, "region": "us-east-1",
        "endpoint": format!("http://{}", upstream.addr),
        "partition_key": "pod",
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    (fake, upstream, config)
}

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
    kinesis_ship_serve_with(config, &[])
}

/// [`kinesis_ship_serve`] with more arguments.
fn kinesis_ship_serve_with(config: &Path, args: &[&str]) -> Server {
    kinesis_ship_serve_env(config, args, &[])
}

/// [`kinesis_ship_serve_with`] with more environment variables.
fn kinesis_ship_serve_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    kinesis_ship_serve_to(config, args, env, Stdio::piped())
}

/// [`kinesis_ship_serve_env`] with serve's stderr going to `stderr`.
fn kinesis_ship_serve_to(config: &Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
    let mut child = Command::new(SHIP)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env(
            "KINESIS_OUTPUT_PROXY_WASM",
            host_tests::runtime::proxy_component_path(),
        )
        .env("AWS_ACCESS_KEY_ID", KEY_ID_VALUE)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .or_else(|| first.trim().strip_prefix("listening on https://"))
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
