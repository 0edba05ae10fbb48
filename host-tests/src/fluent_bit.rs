//! Where the real Fluent Bit is, for the tests that run it: `FLUENT_BIT`, else `fluent-bit` on
//! the PATH, else the build in `../shared/tools/fluent-bit` beside the workspace (where CI finds
//! it). Without one, those tests say so and check nothing.

use std::path::PathBuf;

use crate::kinesalite::root;

/// The Fluent Bit to run, if there is one.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLUENT_BIT") {
        return Some(PathBuf::from(p));
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("fluent-bit"))
            .find(|p| p.is_file())
    }) {
        return Some(found);
    }
    let shared = root().join("../shared/tools/fluent-bit/bin/fluent-bit");
    shared.is_file().then_some(shared)
}

/// What a test prints when there is none.
pub const NOT_FOUND: &str = "Fluent Bit not found (FLUENT_BIT, PATH, ../shared/tools): this test did not run";

/// `fluent_bit -c config` with no input and everything it writes (stdout and stderr) in `log`;
/// the caller adds what else it needs (`-e` plugins, environment) and starts it.
pub fn command(
    fluent_bit: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> std::io::Result<std::process::Command> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new(fluent_bit);
    cmd.arg("-c")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    Ok(cmd)
}

/// Fluent Bit's Prometheus metrics from its HTTP server on 127.0.0.1:`port`, asked again every
/// half second (it serves a snapshot taken every second or so) until they show `wanted` or 20 s
/// have passed; the last text.
pub fn metrics_showing(port: u16, wanted: &str) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut metrics = prometheus(port);
    while std::time::Instant::now() < until && !metrics.contains(wanted) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        metrics = prometheus(port);
    }
    metrics
}

/// Fluent Bit's Prometheus metrics, from its HTTP server on `port`.
pub fn prometheus(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("Fluent Bit's HTTP server");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET /api/v2/metrics/prometheus HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}
