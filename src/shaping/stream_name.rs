//! `stream_name` with placeholders: `${tag}`, `${tag[N]}` (also `${tag_parts[N]}`, negative N
//! from the end) and `${$.path}` (a record_accessor path). One `put` then routes its records to
//! several streams.

use serde_json::{Map, Value};

use super::accessor::Accessor;
use super::format::ruby_to_s;
use crate::kinesis::limits::MAX_STREAM_NAME_CHARS;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Tag,
    TagIndex(i64),
    Field(String, Accessor),
}

/// A stream name, fixed or with placeholders, and the streams it may name (`allowed_streams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamName {
    text: String,
    parts: Vec<Piece>,
    /// Empty: any name the placeholders produce.
    allowed: Vec<String>,
    /// The longest name the service takes (128 for Kinesis, 64 for Firehose).
    max_chars: usize,
}

/// Why a name is not a Kinesis stream name, or `None` if it is one.
pub fn invalid_reason(name: &str) -> Option<String> {
    invalid_reason_within(name, MAX_STREAM_NAME_CHARS)
}

/// Why a name is not a stream name of at most `max` characters, or `None` if it is one.
fn invalid_reason_within(name: &str, max: usize) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 || chars > max {
        return Some(format!("must be 1 to {max} characters, got {chars}"));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(|bad| format!("may hold only letters, digits, '_', '.' and '-'; found {bad:?}"))
}

impl StreamName {
    /// Parse a `stream_name`; a fixed name must already be a valid stream name.
    pub fn parse(text: &str) -> Result<StreamName, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Piece::Text(rest[..start].to_string()));
            }
            let end = rest[start..]
                .find('}')
                .map(|e| e + start)
                .ok_or_else(|| format!("{text:?} has \"${{\" without \"}}\""))?;
            let inner = &rest[start + 2..end];
            let part = if inner == "tag" {
                Piece::Tag
            } else if let Some(index) = inner
                .strip_prefix("tag[")
                .or_else(|| inner.strip_prefix("tag_parts["))
                .and_then(|i| i.strip_suffix(']'))
            {
                Piece::TagIndex(
                    index
                        .parse()
                        .map_err(|_| format!("{inner:?}: the index must be a whole number"))?,
                )
            } else if inner.starts_with('$') {
                Piece::Field(inner.to_string(), Accessor::parse(inner)?)
            } else {
                return Err(format!(
                    "unknown placeholder ${{{inner}}}; use ${{tag}}, ${{tag[N]}} or ${{$.path}}"
                ));
            };
            parts.push(part);
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Piece::Text(rest.to_string()));
        }
        let name = StreamName {
            text: text.to_string(),
            parts,
            allowed: Vec::new(),
            max_chars: MAX_STREAM_NAME_CHARS,
        };
        if name.is_fixed() {
            if let Some(why) = invalid_reason(text) {
                return Err(why);
            }
        } else {
            for part in &name.parts {
                if let Piece::Text(t) = part {
                    if let Some(bad) = t
                        .chars()
                        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                    {
                        return Err(format!("may hold only letters, digits, '_', '.' and '-' around placeholders; found {bad:?}"));
                    }
                }
            }
        }
        Ok(name)
    }

    /// Names are at most `max` characters (Firehose's delivery streams: 64).
    pub fn within(mut self, max: usize) -> Result<StreamName, String> {
        if let Some(why) = self.fixed().and_then(|f| invalid_reason_within(f, max)) {
            return Err(why);
        }
        self.max_chars = max;
        Ok(self)
    }

    /// Only these streams may be named (`allowed_streams`; empty: any). A fixed name outside
    /// them is an error; a placeholder that renders one outside them fails for that record.
    pub fn allow_only(mut self, allowed: Vec<String>) -> Result<StreamName, String> {
        if let Some(fixed) = self.fixed() {
            if !allowed.is_empty() && !allowed.iter().any(|a| a == fixed) {
                return Err(format!("{fixed:?} is not among allowed_streams"));
            }
        }
        self.allowed = allowed;
        Ok(self)
    }

    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// The stream's name when it has no placeholders.
    pub fn fixed(&self) -> Option<&str> {
        self.is_fixed().then_some(self.text.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The stream for a record of `tag`, or why it cannot be named.
    pub fn render(&self, tag: &str, record: &Map<String, Value>) -> Result<String, String> {
        if self.is_fixed() {
            return Ok(self.text.clone());
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Piece::Text(t) => out.push_str(t),
                Piece::Tag => out.push_str(tag),
                Piece::TagIndex(i) => {
                    let pieces: Vec<&str> = tag.split('.').collect();
                    let at = if *i < 0 { pieces.len() as i64 + i } else { *i };
                    let piece = usize::try_from(at)
                        .ok()
                        .and_then(|a| pieces.get(a))
                        .ok_or_else(|| {
                            format!("tag {tag:?} has no part {i} for stream_name {:?}", self.text)
                        })?;
                    out.push_str(piece);
                }
                Piece::Field(text, path) => match path.get_in(record) {
                    None | Some(Value::Null) => {
                        return Err(format!("field {text} of stream_name {:?} is missing", self.text))
                    }
                    Some(v) => ruby_to_s(v, &mut out),
                },
            }
        }
        if let Some(why) = invalid_reason_within(&out, self.max_chars) {
            return Err(format!("stream name {out:?} from {:?} {why}", self.text));
        }
        if !self.allowed.is_empty() && !self.allowed.contains(&out) {
            return Err(format!(
                "stream {out:?} (from {:?}) is not among allowed_streams",
                self.text
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_fill_from_tag_and_record() {
        let rec = json!({"kubernetes": {"namespace_name": "shop"}, "env": "prod", "bad": "a b"});
        let rec = rec.as_object().unwrap();
        let render = |t: &str, tag: &str| StreamName::parse(t).unwrap().render(tag, rec);
        assert_eq!(render("logs", "x").unwrap(), "logs");
        assert_eq!(render("logs-${tag}", "kube.app").unwrap(), "logs-kube.app");
        assert_eq!(
            render("${tag[1]}-${tag_parts[-1]}", "kube.app.web").unwrap(),
            "app-web"
        );
        assert_eq!(
            render("${$.kubernetes.namespace_name}-${$.env}", "t").unwrap(),
            "shop-prod"
        );
        assert!(render("${tag[5]}", "a.b").unwrap_err().contains("no part 5"));
        assert!(render("${$.missing}", "t").unwrap_err().contains("missing"));
        assert!(render("${$.bad}", "t").unwrap_err().contains("may hold only"));
        for bad in [
            "",
            "a b",
            "logs-${",
            "${host}",
            "${tag[x]}",
            "bad name-${tag}",
            &"x".repeat(129),
        ] {
            assert!(StreamName::parse(bad).is_err(), "{bad}");
        }
        assert!(StreamName::parse("s").unwrap().is_fixed());
    }

    #[test]
    fn allowed_streams_bound_what_placeholders_may_name() {
        let rec = json!({"stream": "audit"});
        let rec = rec.as_object().unwrap();
        let allowed = vec!["logs".to_string(), "app-logs".to_string()];
        let name = StreamName::parse("${$.stream}")
            .unwrap()
            .allow_only(allowed.clone())
            .unwrap();
        let e = name.render("t", rec).unwrap_err();
        assert!(e.contains("\"audit\"") && e.contains("allowed_streams"), "{e}");
        let ok = json!({"stream": "logs"});
        assert_eq!(name.render("t", ok.as_object().unwrap()).unwrap(), "logs");
        let tagged = StreamName::parse("app-${tag[0]}")
            .unwrap()
            .allow_only(allowed.clone())
            .unwrap();
        assert_eq!(tagged.render("logs.web", rec).unwrap(), "app-logs");
        assert!(tagged.render("audit.web", rec).is_err());
        // A fixed name is checked at once.
        assert!(StreamName::parse("logs")
            .unwrap()
            .allow_only(allowed.clone())
            .is_ok());
        let e = StreamName::parse("audit")
            .unwrap()
            .allow_only(allowed)
            .unwrap_err();
        assert!(e.contains("not among allowed_streams"), "{e}");
        // No list: anything the placeholders produce.
        let any = StreamName::parse("${$.stream}")
            .unwrap()
            .allow_only(Vec::new())
            .unwrap();
        assert_eq!(any.render("t", rec).unwrap(), "audit");
    }
}
