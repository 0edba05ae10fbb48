//! Fluentd's record_accessor paths: `$.kubernetes.pod_name`, `$['key with.dot']`, `$.items[0]`.
//! A name without `$` is a top-level field, as in the seed.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed path into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    steps: Vec<Step>,
}

impl Accessor {
    /// Parse `path`; the error says what is wrong with it.
    pub fn parse(path: &str) -> Result<Accessor, String> {
        if path.is_empty() {
            return Err("is empty".to_string());
        }
        let Some(rest) = path.strip_prefix('$') else {
            return Ok(Accessor {
                steps: vec![Step::Key(path.to_string())],
            });
        };
        let chars: Vec<char> = rest.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                        end += 1;
                    }
                    if end == start {
                        return Err(format!("{path:?} has an empty name after '.'"));
                    }
                    steps.push(Step::Key(chars[start..end].iter().collect()));
                    i = end;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| format!("{path:?} has '[' without ']'"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let quoted = (inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"'));
                    if quoted && inner.len() >= 2 {
                        steps.push(Step::Key(inner[1..inner.len() - 1].to_string()));
                    } else if let Ok(n) = inner.parse::<usize>() {
                        steps.push(Step::Index(n));
                    } else {
                        return Err(format!(
                            "{path:?}: brackets hold a quoted key ('key') or an array index, not {inner:?}"
                        ));
                    }
                    i = close + 1;
                }
                c => return Err(format!("{path:?}: expected '.' or '[' but found {c:?}")),
            }
        }
        if steps.is_empty() {
            return Err(format!("{path:?} names no field"));
        }
        Ok(Accessor { steps })
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(record, step)
    }

    /// The field name when the path is one top-level field (`pod`, `$.pod`, `$['pod']`).
    pub fn top_level_key(&self) -> Option<&str> {
        match self.steps.as_slice() {
            [Step::Key(k)] => Some(k),
            _ => None,
        }
    }

    /// The value at this path in a record's fields.
    pub fn get_in<'a>(&self, record: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.steps.split_first()?;
        let Step::Key(k) = first else { return None };
        rest.iter().try_fold(record.get(k)?, step)
    }
}

fn step<'a>(v: &'a Value, step: &Step) -> Option<&'a Value> {
    match step {
        Step::Key(k) => v.as_object()?.get(k),
        Step::Index(n) => v.as_array()?.get(*n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_fluentd_record_accessor() {
        let r = json!({"log": "x", "kubernetes": {"pod_name": "p-1", "labels": {"app.kubernetes.io/name": "web"}},
                       "items": [{"id": 7}, 8], "a.b": 1});
        let get = |p: &str| Accessor::parse(p).unwrap().get(&r).cloned();
        assert_eq!(get("log"), Some(json!("x")));
        assert_eq!(get("a.b"), Some(json!(1)), "a plain name is one top-level field");
        assert_eq!(get("$.kubernetes.pod_name"), Some(json!("p-1")));
        assert_eq!(
            get("$['kubernetes']['labels']['app.kubernetes.io/name']"),
            Some(json!("web"))
        );
        assert_eq!(
            get("$.kubernetes.labels[\"app.kubernetes.io/name\"]"),
            Some(json!("web"))
        );
        assert_eq!(get("$.items[0].id"), Some(json!(7)));
        assert_eq!(get("$.items[1]"), Some(json!(8)));
        assert_eq!(get("$['a.b']"), Some(json!(1)));
        assert_eq!(get("$.items[5]"), None);
        assert_eq!(get("$.log.deeper"), None);
        assert_eq!(get("$.missing"), None);
        let fields = r.as_object().unwrap();
        assert_eq!(
            Accessor::parse("$.items[0].id").unwrap().get_in(fields),
            Some(&json!(7))
        );
        assert_eq!(Accessor::parse("log").unwrap().get_in(fields), Some(&json!("x")));
        for bad in ["", "$", "$.", "$..a", "$.a[", "$.a[x]", "$a"] {
            assert!(Accessor::parse(bad).is_err(), "{bad}");
        }
    }
}
