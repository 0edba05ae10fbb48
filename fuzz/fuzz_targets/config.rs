//! Any text as a configuration: a `Config` or a `ConfigError` naming a field, never a panic.
#![no_main]

use kinesis_output::config::{Config, Environment};
use kinesis_output::ingest::ProxySettings;
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
    match Config::from_json(text, &mut Env) {
        Ok(config) => {
            // A valid configuration also yields its credential chain and proxy settings.
            let _ = kinesis_output::credentials::resolve(&config, &mut Env);
        }
        Err(e) => assert!(!e.field.is_empty() || !e.message.is_empty()),
    }
    let _ = ProxySettings::from_config(text);
    let _ = kinesis_output::ingest::proxy_sink_config(text);
});
