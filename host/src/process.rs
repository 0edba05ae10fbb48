//! Running `credential_process` commands for the component (the `host` interface).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Characters that need a shell to mean what the user meant.
const SHELL_CHARS: &[char] = &[
    '|', '&', ';', '<', '>', '$', '`', '"', '\'', '*', '?', '(', ')', '\\',
];

/// Run `command` (split on white space, or through `sh -c` when it uses shell syntax), wait at
/// most `timeout`, and return its standard output, or the exit status with standard error.
pub fn run(command: &str, timeout: Duration) -> Result<String, String> {
    let mut cmd = if command.contains(SHELL_CHARS) {
        let mut c = Command::new("sh");
        c.arg("-c").arg(command);
        c
    } else {
        let mut words = command.split_whitespace();
        let program = words.next().ok_or("the credential process command is empty")?;
        let mut c = Command::new(program);
        c.args(words);
        c
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the credential process: {e}"))?;
    // Read both pipes on threads so a chatty process cannot fill one and stall.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the credential process did not finish within {timeout:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the credential process: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let text: String = String::from_utf8_lossy(&stderr)
            .trim()
            .chars()
            .take(500)
            .collect();
        return Err(format!("the credential process exited with {status}: {text}"));
    }
    String::from_utf8(stdout).map_err(|_| "the credential process printed non-UTF-8 output".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_commands_with_and_without_a_shell() {
        assert_eq!(
            run("echo hello world", Duration::from_secs(5)).unwrap(),
            "hello world\n"
        );
        assert_eq!(run("printf '%s' \"a b\"", Duration::from_secs(5)).unwrap(), "a b");
        let e = run("sh -c 'echo oops >&2; exit 3'", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("oops"), "{e}");
        let e = run("sleep 5", Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(run("/no/such/program", Duration::from_secs(5))
            .unwrap_err()
            .contains("cannot start"));
    }
}
