//! The configuration from environment variables, for the worlds whose hosts configure a
//! component that way (`wasmtime serve --env`, `wasmtime run --env`, jco's `process.env`,
//! containers): one JSON variable, a JSON file, or one variable per setting.
//!
//! The three combine: the JSON document (from [`CONFIG_VAR`], else the file named by
//! [`CONFIG_FILE_VAR`]) is the base, and each per-setting variable (`KINESIS_OUTPUT_STREAM_NAME`
//! for `stream_name`) sets its setting on top, so a secret can live in its own variable.

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::fields::nearest;
use super::settings::SETTINGS;
use crate::platform::Environment;

/// The whole configuration as one JSON object.
pub const CONFIG_VAR: &str = "KINESIS_OUTPUT_CONFIG";
/// A path to a file holding the JSON configuration (the host must grant its folder).
pub const CONFIG_FILE_VAR: &str = "KINESIS_OUTPUT_CONFIG_FILE";
/// The prefix of the per-setting variables.
pub const PREFIX: &str = "KINESIS_OUTPUT_";

/// The variable that holds `setting`: `KINESIS_OUTPUT_` and the name in upper case.
pub fn variable_name(setting: &str) -> String {
    format!("{PREFIX}{}", setting.to_ascii_uppercase())
}

/// The value a per-setting variable stands for: JSON when it starts with `{` or `[` (sections
/// such as `format`, secrets given as `{"env": …}`), else the text itself. Numbers and booleans
/// may stay text: the configuration accepts `"500"` and `"true"` as YAML renders them.
fn setting_value(variable: &str, text: &str) -> Result<Value, ConfigError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .map_err(|e| ConfigError::new(variable, format!("starts like JSON but does not parse: {e}")))
    } else {
        Ok(Value::String(text.to_string()))
    }
}

/// The configuration JSON the environment describes, or `None` when it sets none of the
/// variables. Errors name the variable.
pub fn from_env(env: &mut dyn Environment) -> Result<Option<String>, ConfigError> {
    let (mut base, mut found) = match env.var(CONFIG_VAR) {
        Some(text) => (parse_document(CONFIG_VAR, &text)?, true),
        None => match env.var(CONFIG_FILE_VAR) {
            Some(path) => {
                let bytes = env
                    .read_file(&path)
                    .map_err(|e| ConfigError::new(CONFIG_FILE_VAR, format!("cannot read {path}: {e}")))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ConfigError::new(CONFIG_FILE_VAR, format!("{path} is not UTF-8")))?;
                (parse_document(CONFIG_FILE_VAR, &text)?, true)
            }
            None => (Map::new(), false),
        },
    };
    for setting in SETTINGS {
        let variable = variable_name(setting);
        if let Some(text) = env.var(&variable) {
            base.insert(setting.to_string(), setting_value(&variable, &text)?);
            found = true;
        }
    }
    Ok(found.then(|| Value::Object(base).to_string()))
}

fn parse_document(variable: &str, text: &str) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConfigError::new(variable, "must hold a JSON object")),
        Err(e) => Err(ConfigError::new(variable, format!("is not valid JSON: {e}"))),
    }
}

/// The environment variables equivalent to a configuration: one per setting, objects as compact
/// JSON, strings as they are, numbers and booleans as their JSON text. The inverse of
/// [`from_env`] for hosts that prefer one variable per setting.
pub fn to_variables(config: &Map<String, Value>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in config {
        if !SETTINGS.contains(&key.as_str()) {
            let message = match nearest(key, SETTINGS.iter().copied()) {
                Some(near) => format!("unknown setting; did you mean {near}?"),
                None => "unknown setting".to_string(),
            };
            return Err(ConfigError::new(key.as_str(), message));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        out.push((variable_name(key), text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Env(HashMap<String, String>, HashMap<String, Vec<u8>>);

    impl Environment for Env {
        fn var(&mut self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
            self.1.get(path).cloned().ok_or_else(|| "not found".to_string())
        }
    }

    fn env(vars: &[(&str, &str)]) -> Env {
        Env(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            HashMap::new(),
        )
    }

    fn object(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn nothing_set_is_none() {
        assert_eq!(from_env(&mut env(&[("HOME", "/root")])).unwrap(), None);
    }

    #[test]
    fn one_variable_per_setting() {
        let mut e = env(&[
            ("KINESIS_OUTPUT_STREAM_NAME", "logs"),
            ("KINESIS_OUTPUT_BATCH_REQUEST_MAX_COUNT", "100"),
            (
                "KINESIS_OUTPUT_FORMAT",
                r#"{"type":"single_value","message_key":"log"}"#,
            ),
            ("KINESIS_OUTPUT_AWS_SEC_KEY", r#"{"env":"MY_SECRET"}"#),
        ]);
        let text = from_env(&mut e).unwrap().unwrap();
        assert_eq!(
            object(&text),
            object(
                r#"{"stream_name":"logs","aws_sec_key":{"env":"MY_SECRET"},
                    "format":{"type":"single_value","message_key":"log"},"batch_request_max_count":"100"}"#
            )
        );
    }

    #[test]
    fn per_setting_variables_override_the_document() {
        let mut e = env(&[
            (CONFIG_VAR, r#"{"stream_name":"a","region":"eu-west-1"}"#),
            ("KINESIS_OUTPUT_STREAM_NAME", "b"),
        ]);
        let text = from_env(&mut e).unwrap().unwrap();
        assert_eq!(
            object(&text),
            object(r#"{"stream_name":"b","region":"eu-west-1"}"#)
        );
    }

    #[test]
    fn a_file_is_read_when_no_document_variable_is_set() {
        let mut e = env(&[(CONFIG_FILE_VAR, "/etc/kinesis/config.json")]);
        e.1.insert(
            "/etc/kinesis/config.json".into(),
            br#"{"stream_name":"f"}"#.to_vec(),
        );
        assert_eq!(
            object(&from_env(&mut e).unwrap().unwrap()),
            object(r#"{"stream_name":"f"}"#)
        );
        let e2 = from_env(&mut env(&[(CONFIG_FILE_VAR, "/missing.json")])).unwrap_err();
        assert_eq!(e2.field, CONFIG_FILE_VAR);
        assert!(e2.message.contains("/missing.json"), "{e2}");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = from_env(&mut env(&[(CONFIG_VAR, "{nope")])).unwrap_err();
        assert_eq!(e.field, CONFIG_VAR);
        let e = from_env(&mut env(&[(CONFIG_VAR, "[1]")])).unwrap_err();
        assert!(e.message.contains("JSON object"), "{e}");
        let e = from_env(&mut env(&[("KINESIS_OUTPUT_FORMAT", "{type: json}")])).unwrap_err();
        assert_eq!(e.field, "KINESIS_OUTPUT_FORMAT");
    }

    #[test]
    fn variables_round_trip() {
        let config = object(
            r#"{"stream_name":"logs","region":"us-east-1","retries_on_batch_request":3,
                "reset_backoff_if_success":false,"format":{"type":"json"}}"#,
        );
        let Value::Object(map) = &config else {
            unreachable!()
        };
        let vars = to_variables(map).unwrap();
        assert!(vars.contains(&("KINESIS_OUTPUT_FORMAT".into(), r#"{"type":"json"}"#.into())));
        assert!(vars.contains(&("KINESIS_OUTPUT_RETRIES_ON_BATCH_REQUEST".into(), "3".into())));
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let back = object(&from_env(&mut env(&pairs)).unwrap().unwrap());
        // Scalars come back as text, which the configuration reads the same way.
        assert_eq!(back["format"], config["format"]);
        assert_eq!(back["retries_on_batch_request"], "3");
        assert_eq!(back["reset_backoff_if_success"], "false");
        assert_eq!(
            to_variables(&Map::from_iter([("zz".to_string(), Value::Null)]))
                .unwrap_err()
                .field,
            "zz"
        );
        let e = to_variables(&Map::from_iter([("stream_nmae".to_string(), Value::Null)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stream_nmae: unknown setting; did you mean stream_name?"
        );
    }
}
