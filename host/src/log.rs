//! kinesis-ship's own log lines, on stderr: `kinesis-ship: …` text by default, or one JSON
//! object a line with `--log-format json` (`time`, `level`, `message`, and `source` for lines
//! the component wrote), for log pipelines that parse their shipper's own logs. Nothing logged
//! carries a secret: messages name settings and sources, never values.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kinesis_output::shaping::timefmt::{strftime, Zone};

static JSON: AtomicBool = AtomicBool::new(false);

/// `--log-format`: `text` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Log in `format` from now on (for the whole process).
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

/// Whether lines are JSON.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// `what: message` (`what` is `kinesis-ship` or `kinesis-ship serve`), or its JSON line.
pub fn line(level: Level, what: &str, message: &str) {
    let text = format_line(json(), level, what, message, SystemTime::now());
    // One write a line, so that concurrent requests' lines do not interleave.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn info(message: &str) {
    line(Level::Info, "kinesis-ship", message);
}

pub fn warn(message: &str) {
    line(Level::Warn, "kinesis-ship", message);
}

pub fn error(message: &str) {
    line(Level::Error, "kinesis-ship", message);
}

/// A detail under the line before (a problem of the summary): indented text, or a JSON line.
pub fn detail(text: &str) {
    if json() {
        info(text);
    } else {
        let _ = writeln!(std::io::stderr().lock(), "  {text}");
    }
}

/// What the component wrote to its stderr, a log line each (with `source: component`).
pub fn component(text: &str) {
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        if json() {
            line(Level::Info, "component", l);
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{l}");
        }
    }
}

fn format_line(json: bool, level: Level, what: &str, message: &str, now: SystemTime) -> String {
    if !json {
        let prefix = match level {
            Level::Warn => "warning: ",
            _ => "",
        };
        return format!("{what}: {prefix}{message}\n");
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = strftime(
        "%Y-%m-%dT%H:%M:%S.%LZ",
        since.as_secs() as i64,
        since.subsec_nanos(),
        Zone::UTC,
    );
    let mut object = serde_json::json!({
        "time": time,
        "level": level.as_str(),
        "message": message,
    });
    if what == "component" {
        object["source"] = "component".into();
    }
    object.to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn text_and_json_lines() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(
            format_line(false, Level::Warn, "kinesis-ship", "a \"b\"", at),
            "kinesis-ship: warning: a \"b\"\n"
        );
        assert_eq!(
            format_line(false, Level::Info, "kinesis-ship serve", "stopped", at),
            "kinesis-ship serve: stopped\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_line(true, Level::Error, "kinesis-ship", "a \"b\"\nc", at)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"time": "2026-11-18T11:06:40.123Z", "level": "error", "message": "a \"b\"\nc"})
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_line(true, Level::Info, "component", "x", at)).unwrap();
        assert_eq!(json["source"], "component");
    }
}
