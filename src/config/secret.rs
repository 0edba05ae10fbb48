//! Secret values in every form a configuration may give them: a string, `{"value": …}`,
//! `{"env": NAME}`, `{"file": PATH}`, and the logging-operator's own secret type,
//! `{"valueFrom": {"secretKeyRef": {"name", "key", "optional"}}}` and `{"mountFrom": …}` (the
//! operator's `secret.Secret`, whose selector is Kubernetes' `SecretKeySelector`).
//!
//! A `secretKeyRef` is read from Kubernetes' secret-volume layout: each secret mounted as a folder
//! under `secrets_dir`, one file per key (`<secrets_dir>/<name>/<key>`). Errors name the secret
//! and the key, never a value.

use serde_json::{Map, Value};

use super::error::ConfigError;
use crate::auth::Secret;
use crate::platform::{env_nonempty, Environment};
use crate::shaping::format::json_kind;

/// The forms, for messages.
const FORMS: &str = "a string, value, env, file, valueFrom or mountFrom";

/// Where secrets come from besides the configuration itself.
pub struct SecretSources<'a> {
    pub env: &'a mut dyn Environment,
    /// `secrets_dir`: the folder holding one folder per Kubernetes secret.
    pub secrets_dir: Option<&'a str>,
}

impl SecretSources<'_> {
    /// The secret at `path` given as `value`: `None` for an optional `secretKeyRef` whose secret
    /// or key does not exist.
    pub fn read(&mut self, path: &str, value: Value) -> Result<Option<Secret>, ConfigError> {
        let text = match value {
            Value::String(s) => Some(s),
            Value::Object(m) if m.len() == 1 => {
                let (kind, v) = m.into_iter().next().expect("one entry");
                let at = format!("{path}.{kind}");
                match kind.as_str() {
                    "value" => Some(string(&at, v)?),
                    "env" => {
                        let name = string(&at, v)?;
                        Some(env_nonempty(self.env, &name).ok_or_else(|| {
                            ConfigError::new(at, format!("environment variable {name} is not set"))
                        })?)
                    }
                    "file" => {
                        let file = string(&at, v)?;
                        let bytes = self
                            .env
                            .read_file(&file)
                            .map_err(|e| ConfigError::new(&at, format!("cannot read: {e}")))?;
                        Some(text_of(&at, &file, bytes)?)
                    }
                    "valueFrom" | "mountFrom" => self.key_ref(&at, v)?,
                    _ => {
                        return Err(ConfigError::new(
                            path,
                            format!("unknown secret form {kind:?}; use {FORMS}"),
                        ))
                    }
                }
            }
            other => {
                return Err(ConfigError::new(
                    path,
                    format!("must be {FORMS} (one of them), got {}", describe(&other)),
                ))
            }
        };
        match text {
            None => Ok(None),
            Some(t) if t.is_empty() => Err(ConfigError::new(path, "must not be empty")),
            Some(t) => Ok(Some(Secret::new(t))),
        }
    }

    /// `{"secretKeyRef": {"name", "key", "optional"}}` under `at` (`….valueFrom`).
    fn key_ref(&mut self, at: &str, v: Value) -> Result<Option<String>, ConfigError> {
        let mut from = object(at, v)?;
        let selector_at = format!("{at}.secretKeyRef");
        let selector = from
            .remove("secretKeyRef")
            .ok_or_else(|| ConfigError::new(&selector_at, "is required"))?;
        if let Some(other) = from.keys().next() {
            return Err(ConfigError::new(
                format!("{at}.{other}"),
                "is not a secret source; use secretKeyRef",
            ));
        }
        let at = selector_at;
        let mut selector = object(&at, selector)?;
        let mut take_string = |name: &str| -> Result<String, ConfigError> {
            let field = format!("{at}.{name}");
            string(
                &field,
                selector
                    .remove(name)
                    .ok_or_else(|| ConfigError::new(&field, "is required"))?,
            )
        };
        let name = take_string("name")?;
        let key = take_string("key")?;
        let optional = match selector.remove("optional") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{at}.optional"),
                    format!("must be true or false, got {}", json_kind(&other)),
                ))
            }
        };
        if let Some(other) = selector.keys().next() {
            return Err(ConfigError::new(
                format!("{at}.{other}"),
                "is not a field of secretKeyRef; use name, key and optional",
            ));
        }
        if !is_secret_name(&name) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{name:?} is not a Kubernetes secret name (lower-case letters, digits, '-' and '.')"),
            ));
        }
        if !is_secret_key(&key) {
            return Err(ConfigError::new(
                format!("{at}.key"),
                format!("{key:?} is not a Kubernetes secret key (letters, digits, '-', '_' and '.')"),
            ));
        }
        let Some(dir) = self.secrets_dir else {
            return Err(ConfigError::new(
                at,
                format!(
                    "secret {name:?} key {key:?} needs secrets_dir: the folder where each secret is mounted as <secret name>/<key>"
                ),
            ));
        };
        let file = format!("{}/{name}/{key}", dir.trim_end_matches('/'));
        match self.env.read_file(&file) {
            Ok(bytes) => text_of(&at, &file, bytes).map(Some),
            Err(_) if optional => Ok(None),
            Err(e) => Err(ConfigError::new(
                at,
                format!("secret {name:?} has no key {key:?} in secrets_dir (cannot read {e})"),
            )),
        }
    }
}

fn string(at: &str, v: Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(ConfigError::new(
            at,
            format!("must be a string, got {}", json_kind(&other)),
        )),
    }
}

fn object(at: &str, v: Value) -> Result<Map<String, Value>, ConfigError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ConfigError::new(
            at,
            format!("must be an object, got {}", json_kind(&other)),
        )),
    }
}

/// A secret's bytes as text, trailing white space trimmed (files written by hand or by
/// `kubectl create secret --from-file` often end in a newline).
fn text_of(at: &str, file: &str, bytes: Vec<u8>) -> Result<String, ConfigError> {
    let text =
        String::from_utf8(bytes).map_err(|_| ConfigError::new(at, format!("{file} is not UTF-8 text")))?;
    Ok(text.trim_end().to_string())
}

/// What a wrong-shaped secret was, without its content.
fn describe(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "an empty object".to_string(),
        Value::Object(m) => format!(
            "an object with {}",
            m.keys().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
        ),
        other => json_kind(other).to_string(),
    }
}

/// A Kubernetes object name (a DNS subdomain): what may name a folder under `secrets_dir`.
fn is_secret_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A key of a Kubernetes secret (`[-._a-zA-Z0-9]+`), never `.` or `..`.
fn is_secret_key(key: &str) -> bool {
    (1..=253).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && key != "."
        && key != ".."
}
