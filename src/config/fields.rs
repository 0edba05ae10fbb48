//! Reading a JSON object setting by setting: each read takes its field, so what is left at the
//! end is unknown and named in the error, with the nearest known setting suggested.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::secret::SecretSources;
use crate::auth::Secret;
use crate::shaping::accessor::Accessor;
use crate::shaping::format::json_kind;

/// A JSON object being read field by field, so that what is left at the end is unknown.
pub struct Fields {
    prefix: &'static str,
    map: Map<String, Value>,
    /// Every name asked for: the known settings, for suggestions.
    known: Vec<String>,
}

impl Fields {
    pub fn new(prefix: &'static str, map: Map<String, Value>) -> Self {
        Fields {
            prefix,
            map,
            known: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Value> {
        if !self.known.iter().any(|k| k == name) {
            self.known.push(name.to_string());
        }
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// The setting `name` as `pick` reads it; a value `pick` hands back is "must be `what`".
    fn typed<T>(
        &mut self,
        name: &str,
        what: &str,
        pick: impl FnOnce(Value) -> Result<T, Value>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        pick(value).map(Some).map_err(|other| {
            ConfigError::new(
                self.path(name),
                format!("must be {what}, got {}", json_kind(&other)),
            )
        })
    }

    pub fn string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        self.typed(name, "a string", |v| match v {
            Value::String(s) => Ok(s),
            other => Err(other),
        })
    }

    /// A secret in any of its forms ([`SecretSources::read`]).
    pub fn secret(&mut self, name: &str, sources: &mut SecretSources) -> Result<Option<Secret>, ConfigError> {
        let path = self.path(name);
        match self.take(name) {
            None => Ok(None),
            Some(value) => sources.read(&path, value),
        }
    }

    /// A field name or `$.path` (Fluentd's record_accessor), kept with its text.
    pub fn accessor(&mut self, name: &str) -> Result<Option<(String, Accessor)>, ConfigError> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => {
                let accessor = Accessor::parse(&text).map_err(|e| {
                    ConfigError::new(
                        self.path(name),
                        format!("{e}; use a field name or a path like $.kubernetes.pod_name"),
                    )
                })?;
                Ok(Some((text, accessor)))
            }
        }
    }

    pub fn object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, ConfigError> {
        self.typed(name, "an object", |v| match v {
            Value::Object(m) => Ok(m),
            other => Err(other),
        })
    }

    /// A boolean, also accepted as the strings "true" and "false" (YAML-rendered configs).
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(name, "true or false", |v| match v {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            other => Err(other),
        })
    }

    /// A whole number in `min..=max`, also accepted as a numeric string.
    pub fn integer(&mut self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let Some(n) = numeric(&value, serde_json::Number::as_u64) else {
            return Err(ConfigError::new(
                self.path(name),
                format!(
                    "must be a whole number from {min} to {max}, got {}",
                    shown(&value)
                ),
            ));
        };
        if n < min || n > max {
            let limit = if n > max {
                format!("exceeds the limit of {max}")
            } else {
                format!("is below the minimum of {min}")
            };
            return Err(ConfigError::new(self.path(name), format!("{n} {limit}")));
        }
        Ok(Some(n))
    }

    /// [`Fields::seconds`], or `default` when the setting is absent.
    pub fn seconds_or(
        &mut self,
        name: &str,
        min: f64,
        max: f64,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self.seconds(name, min, max)?.unwrap_or(default))
    }

    /// A duration in seconds (fractions allowed) in `min..=max`.
    pub fn seconds(&mut self, name: &str, min: f64, max: f64) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        match numeric(&value, serde_json::Number::as_f64) {
            Some(s) if s.is_finite() && s >= min && s <= max => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(ConfigError::new(
                self.path(name),
                format!(
                    "must be a number of seconds from {min} to {max}, got {}",
                    shown(&value)
                ),
            )),
        }
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        let mut unknown: Vec<&String> = self.map.keys().collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let field = self.path(unknown[0]);
        let mut message = "unknown setting".to_string();
        if let Some(near) = nearest(unknown[0], self.known.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean {}?", self.path(near)));
        }
        if unknown.len() > 1 {
            let names: Vec<String> = unknown.iter().map(|k| self.path(k)).collect();
            message.push_str(&format!(" (unknown: {})", names.join(", ")));
        }
        Err(ConfigError::new(field, message))
    }
}

/// The known name closest to `name`, if it is close enough to be a slip of the keyboard: at
/// most a third of its letters (and at least one) changed, added, dropped or swapped.
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (edit_distance(&name, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// A number, or a string that reads as one (YAML renderings of the logging-operator spec quote
/// numbers).
fn numeric<T: std::str::FromStr>(value: &Value, of: impl Fn(&serde_json::Number) -> Option<T>) -> Option<T> {
    match value {
        Value::Number(n) => of(n),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-secret value, shown in an error message (shortened).
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        let Value::Object(map) = v else { unreachable!() };
        Fields::new("", map)
    }

    #[test]
    fn an_unknown_setting_names_the_nearest_known_one() {
        let mut f = fields(json!({"partiton_key": "pod"}));
        assert_eq!(f.string("partition_key").unwrap(), None);
        f.string("stream_name").unwrap();
        let e = f.finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "partiton_key: unknown setting; did you mean partition_key?"
        );

        let mut f = fields(json!({"zzz": 1, "strem_name": "s"}));
        f.string("stream_name").unwrap();
        let e = f.finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "strem_name: unknown setting; did you mean stream_name? (unknown: strem_name, zzz)"
        );

        let mut f = fields(json!({"colour": 1}));
        f.string("region").unwrap();
        assert_eq!(f.finish().unwrap_err().to_string(), "colour: unknown setting");
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("region", "regoin"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(nearest("Region", ["region", "endpoint"]), Some("region"));
        assert_eq!(nearest("x", ["region"]), None);
    }
}
