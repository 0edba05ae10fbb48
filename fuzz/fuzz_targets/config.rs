//! Any text as a configuration: `Settings` or a `ConfigError` naming a field, never a panic.
#![no_main]

use kinesis_output::{Environment, Settings};
use libfuzzer_sys::fuzz_target;

/// An environment with a few variables a configuration may point at.
struct Env;

impl Environment for Env {
    fn var(&mut self, name: &str) -> Option<String> {
        match name {
            "AWS_REGION" => Some("eu-west-1".to_string()),
            "SECRET_FROM_ENV" => Some("s3cr3t-from-env".to_string()),
            _ => None,
        }
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("{path}: no files while fuzzing"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_json(text, &mut Env) {
        Ok(settings) => {
            // A valid configuration also yields its credential chain.
            let _ = kinesis_output::config::resolve(&settings.sink, &mut Env);
        }
        Err(e) => assert!(!e.field.is_empty() || !e.message.is_empty()),
    }
    // The proxy world reads the same document with its own defaults.
    let _ = Settings::for_proxy(text, &mut Env);
});
