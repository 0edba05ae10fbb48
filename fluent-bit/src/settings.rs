//! The plugin's settings, from Fluent Bit's properties: `config FILE` (the file `kinesis-ship
//! --config` takes) and every top-level setting under its own name (objects as JSON text), the
//! properties over the file; and the plugin's own: `component`, `max_memory`, `allow_dir`,
//! `allow_authority`, `dead_letter_file`, `state_dir`, `tls_ca_file` and `tls_verify` for the
//! component's connections (Fluent Bit keeps its dotted `tls.*` properties to itself).

use std::path::PathBuf;

use serde_json::{Map, Value};

use kinesis_output::config::{SECRET_SETTINGS, SETTINGS};
use kinesis_ship::setup::{parse_max_memory, read_config, Sandbox};

/// Settings whose value is an object (given as JSON text in a property).
const OBJECT_SETTINGS: &[&str] = &[
    "format",
    "inject",
    "assume_role_credentials",
    "process_credentials",
    "buffer",
    "proxy",
];

/// The plugin's own properties, beside the component's settings.
pub const PLUGIN_PROPERTIES: &[&str] = &[
    "config",
    "component",
    "max_memory",
    "allow_dir",
    "allow_authority",
    "dead_letter_file",
    "tls_ca_file",
    "tls_verify",
    "state_dir",
];

/// What one `[OUTPUT]` section of `kinesis_wasm` says.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// The component's configuration: the file's, with the properties over it.
    pub config: Value,
    /// The `sink` world's component.
    pub component: Option<PathBuf>,
    pub sandbox: Sandbox,
    /// Every record not delivered goes here, one NDJSON line each.
    pub dead_letter_file: Option<PathBuf>,
    /// `tls_ca_file`: an extra CA the component's connections trust.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_verify` (default on).
    pub tls_verify: bool,
    /// `state_dir`: what was stored of chunks not finished is kept here, so that a restart of
    /// Fluent Bit (with filesystem buffering) re-sends nothing already stored.
    pub state_dir: Option<PathBuf>,
}

/// A property that cannot be used: which, and why (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    pub property: String,
    pub message: String,
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.property, self.message)
    }
}

fn error(property: &str, message: impl Into<String>) -> PropertyError {
    PropertyError {
        property: property.to_string(),
        message: message.into(),
    }
}

/// Read the settings through `property` (Fluent Bit's `output_get_property`: `None` when unset).
pub fn read(property: &mut dyn FnMut(&str) -> Option<String>) -> Result<PluginSettings, PropertyError> {
    let mut config = match property("config") {
        Some(path) => match read_config(path.trim().as_ref()) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(error("config", "the file must hold an object")),
            Err(e) => return Err(error("config", format!("{e:#}"))),
        },
        None => Map::new(),
    };
    for name in SETTINGS {
        let Some(text) = property(name) else {
            continue;
        };
        let value = if OBJECT_SETTINGS.contains(name) {
            serde_json::from_str::<Value>(&text)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| error(name, "must be a JSON object"))?
        } else if SECRET_SETTINGS.contains(name) && text.trim_start().starts_with('{') {
            serde_json::from_str::<Value>(&text).map_err(|_| {
                error(
                    name,
                    "starts with { but is not JSON (a secret form like {\"env\": \"NAME\"})",
                )
            })?
        } else {
            Value::String(text)
        };
        config.insert(name.to_string(), value);
    }
    // Fluent Bit keeps its own `tls.*` properties (like `workers`) and never hands them to a
    // proxy plugin, so the plugin reads them under `tls_ca_file` and `tls_verify`; the dotted
    // names still work for hosts of the ABI that pass them on.
    let mut either = |names: [&str; 2]| names.iter().find_map(|n| property(n));
    let tls_ca_file = either(["tls_ca_file", "tls.ca_file"]);
    let tls_verify = match either(["tls_verify", "tls.verify"]).map(|v| v.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if matches!(v.as_str(), "on" | "true" | "yes" | "1") => true,
        Some(v) if matches!(v.as_str(), "off" | "false" | "no" | "0") => false,
        Some(_) => return Err(error("tls_verify", "must be on or off")),
    };
    let list = |text: Option<String>| -> Vec<String> {
        text.map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let max_memory_mib = match property("max_memory") {
        Some(text) => Some(parse_max_memory(text.trim()).map_err(|e| error("max_memory", e))?),
        None => None,
    };
    let sandbox = Sandbox {
        allow_dirs: list(property("allow_dir"))
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        allow_authorities: list(property("allow_authority"))
            .into_iter()
            .map(|a| a.to_ascii_lowercase())
            .collect(),
        max_memory_mib,
        // `secrets_dir` is a setting like any other here; its folder is granted from it.
        secrets_dir: None,
        // `tls_ca_file` is the plugin's own setting, applied by the output.
        ca_file: None,
    };
    Ok(PluginSettings {
        config: Value::Object(config),
        component: property("component").map(|p| PathBuf::from(p.trim())),
        sandbox,
        dead_letter_file: property("dead_letter_file").map(|p| PathBuf::from(p.trim())),
        tls_ca_file: tls_ca_file.map(|p| PathBuf::from(p.trim())),
        tls_verify,
        state_dir: property("state_dir")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn read_from(pairs: &[(&str, &str)]) -> Result<PluginSettings, PropertyError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(&mut |k| map.get(k).cloned())
    }

    #[test]
    fn properties_become_the_configuration_over_the_file() {
        let dir = std::env::temp_dir().join(format!("kinesis-wasm-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kinesis.yaml");
        std::fs::write(
            &file,
            "stream_name: from-file\nregion: eu-west-1\npartition_key: pod\n",
        )
        .unwrap();
        let s = read_from(&[
            ("config", file.to_str().unwrap()),
            ("stream_name", "from-property"),
            ("format", r#"{"type":"ltsv"}"#),
            ("aws_sec_key", r#"{"env":"SECRET"}"#),
            ("aws_key_id", "AKID"),
            ("max_concurrent_requests", "4"),
            ("allow_authority", "Proxy.internal:3128, other:80"),
            ("max_memory", "64"),
        ])
        .unwrap();
        assert_eq!(
            s.config,
            json!({"stream_name": "from-property", "region": "eu-west-1", "partition_key": "pod",
                   "format": {"type": "ltsv"}, "aws_sec_key": {"env": "SECRET"}, "aws_key_id": "AKID",
                   "max_concurrent_requests": "4"})
        );
        assert_eq!(
            s.sandbox.allow_authorities,
            vec!["proxy.internal:3128", "other:80"]
        );
        assert_eq!(s.sandbox.max_memory_mib, Some(64));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_property_names_itself() {
        assert_eq!(read_from(&[("format", "json")]).unwrap_err().property, "format");
        assert_eq!(
            read_from(&[("max_memory", "lots")]).unwrap_err().property,
            "max_memory"
        );
        assert_eq!(
            read_from(&[("tls_verify", "maybe")]).unwrap_err().property,
            "tls_verify"
        );
        let s = read_from(&[("tls_ca_file", "/ca.pem"), ("tls_verify", "Off")]).unwrap();
        assert_eq!(
            (s.tls_ca_file, s.tls_verify),
            (Some(PathBuf::from("/ca.pem")), false)
        );
        // The dotted names, for hosts of the ABI that pass them on.
        let s = read_from(&[("tls.ca_file", "/ca.pem"), ("tls.verify", "Off")]).unwrap();
        assert_eq!(
            (s.tls_ca_file, s.tls_verify),
            (Some(PathBuf::from("/ca.pem")), false)
        );
        let e = read_from(&[("config", "/nonexistent/k.json")]).unwrap_err();
        assert!(e.message.contains("No such file"), "{e}");
    }
}
