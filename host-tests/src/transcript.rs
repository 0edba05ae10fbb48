//! The secret scan's record: while `KINESIS_TEST_TRANSCRIPTS` names a folder (the Makefile sets
//! it for the whole harness suite), every text the harness sees from the component — each
//! report's `Debug`, each configuration error, every response body of the proxy world, the
//! guest's stderr, the output of the programs the tests run — is appended to a transcript
//! there, and every secret value the tests hand to the component is listed beside it. After
//! the suite, `secret-scan` ([`scan`]) looks for each secret in every transcript.
//!
//! Without the variable nothing is written: `kinesis-ship` never keeps transcripts.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The folder transcripts go to, when the suite is recording.
const VARIABLE: &str = "KINESIS_TEST_TRANSCRIPTS";
/// Shorter values are not scanned for (they would match by chance: `x`, `s1`).
pub const MIN_SECRET_LEN: usize = 8;

fn folder() -> Option<PathBuf> {
    std::env::var_os(VARIABLE).map(PathBuf::from)
}

fn append(file: &str, text: &str) {
    let Some(dir) = folder() else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{file}-{}.txt", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{text}");
    }
}

/// Keep `text` (what the component or a program said) for the scan.
pub fn record(what: &str, text: &str) {
    if !text.is_empty() {
        append("transcript", &format!("--- {what}\n{text}"));
    }
}

/// A value that must never appear in any transcript.
pub fn secret(value: &str) {
    if value.len() >= MIN_SECRET_LEN && !value.contains('\n') {
        append("secrets", value);
    }
}

/// Secrets inside a configuration the tests open: `aws_sec_key`, `aws_ses_token` and anything
/// named like a secret, at any depth.
pub fn secrets_in_config(config_json: &str) {
    fn walk(v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let k = k.to_ascii_lowercase();
                    let named = k.contains("sec_key") || k.contains("ses_token") || k.contains("secret");
                    match v {
                        serde_json::Value::String(s) if named => secret(s),
                        other => walk(other),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(walk),
            _ => {}
        }
    }
    if folder().is_some() {
        if let Ok(v) = serde_json::from_str(config_json) {
            walk(&v);
        }
    }
}

/// Secrets among environment variables handed to the component.
pub fn secrets_in_env(env: &[(String, String)]) {
    for (name, value) in env {
        let name = name.to_ascii_uppercase();
        if (name.contains("SECRET") || name.contains("TOKEN") || name.contains("PASSWORD"))
            && !name.ends_with("_FILE")
        {
            secret(value);
        }
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub transcripts: usize,
    pub bytes: usize,
    pub secrets: usize,
    /// (transcript file, the line with the secret replaced by `<SECRET>`).
    pub hits: Vec<(PathBuf, String)>,
}

/// Look for every listed secret in every transcript of `dir`.
pub fn scan(dir: &Path) -> std::io::Result<Scan> {
    let mut secrets: Vec<String> = Vec::new();
    let mut transcripts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("secrets-") {
            secrets.extend(std::fs::read_to_string(&path)?.lines().map(str::to_string));
        } else if name.starts_with("transcript-") {
            transcripts.push(path);
        }
    }
    secrets.sort();
    secrets.dedup();
    secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
    let mut out = Scan {
        transcripts: transcripts.len(),
        secrets: secrets.len(),
        ..Scan::default()
    };
    for path in transcripts {
        let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        out.bytes += text.len();
        for line in text.lines() {
            for s in &secrets {
                if line.contains(s.as_str()) {
                    out.hits
                        .push((path.clone(), line.replace(s.as_str(), "<SECRET>")));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_a_planted_secret_and_not_short_values() {
        let dir = std::env::temp_dir().join(format!("kinesis-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secrets-1.txt"), "planted-secret-value\nshort\n").unwrap();
        std::fs::write(dir.join("transcript-1.txt"), "--- put\nall fine, short\n").unwrap();
        let clean = scan(&dir).unwrap();
        assert_eq!((clean.transcripts, clean.secrets, clean.hits.len()), (1, 1, 0));
        std::fs::write(
            dir.join("transcript-2.txt"),
            "--- open\nkey=planted-secret-value!\n",
        )
        .unwrap();
        let leaked = scan(&dir).unwrap();
        assert_eq!(leaked.hits.len(), 1);
        assert_eq!(leaked.hits[0].1, "key=<SECRET>!");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
