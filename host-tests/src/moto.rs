//! moto, an independent implementation of Amazon Data Firehose (PyPI, installed by `make tools`
//! into `.tools/moto`): DirectPut delivery streams into an S3 bucket, started and stopped by the
//! tests, read back from the bucket (`scripts/moto-firehose.py`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;

use crate::kinesalite::root;

/// The keys moto's server is reached with (it checks that requests are signed, not by whom).
pub const KEY_ID: &str = "AKIDMOTO";
pub const SECRET: &str = "moto-secret-value";

/// moto's server on 127.0.0.1 with one delivery stream, stopped on drop.
pub struct MotoFirehose {
    child: Child,
    pub port: u16,
    pub stream: String,
}

fn python() -> Command {
    let tools = root().join(".tools/moto");
    assert!(
        tools.join("moto").is_dir(),
        "moto is not installed: run `make tools`"
    );
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", tools)
        .arg(root().join("scripts/moto-firehose.py"));
    cmd
}

impl MotoFirehose {
    /// Start moto with the delivery stream `stream` (bounded to 90 s).
    pub fn start(stream: &str) -> MotoFirehose {
        crate::transcript::secret(SECRET);
        let mut child = python()
            .args(["serve", stream])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(90)) else {
            let _ = child.kill();
            panic!("moto did not start within 90 s");
        };
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("moto said {line:?}"))
            .trim()
            .parse()
            .unwrap();
        MotoFirehose {
            child,
            port,
            stream: stream.to_string(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every object the delivery stream wrote to the bucket (one a PutRecordBatch), oldest
    /// first.
    pub fn objects(&self) -> Vec<Vec<u8>> {
        let out = python()
            .args(["read", &self.port.to_string()])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap())
            .collect()
    }

    /// Every line of every object.
    pub fn lines(&self) -> Vec<String> {
        self.objects()
            .iter()
            .flat_map(|o| {
                String::from_utf8_lossy(o)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for MotoFirehose {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
