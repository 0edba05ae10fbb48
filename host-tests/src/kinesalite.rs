//! kinesalite, a real local Kinesis (npm, installed by `make tools`), started and stopped by the
//! tests, and read back through GetRecords.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// The workspace.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// kinesalite on 127.0.0.1, stopped on drop.
pub struct Kinesalite {
    child: Child,
    pub port: u16,
    pub stream: String,
}

impl Kinesalite {
    /// Start kinesalite with `stream` (3 shards), bounded to 60 s.
    pub fn start(stream: &str) -> Kinesalite {
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
    pub fn read(&self) -> Vec<(Vec<u8>, String)> {
        self.read_stream(&self.stream)
    }

    pub fn read_stream(&self, stream: &str) -> Vec<(Vec<u8>, String)> {
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
