//! Fluentd's formatters, byte for byte: `json`, `ltsv`, `csv`, `single_value`, `msgpack`,
//! `out_file` and `hash`, with the Ruby conversions they rely on (`to_s`, `inspect`).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::accessor::Accessor;
use super::number;
use super::timefmt::{iso8601, strftime, Zone};

/// How `out_file` and `inject` write the event time.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeStyle {
    /// `strftime` with this format, or ISO 8601 when `None`.
    Text { format: Option<String>, zone: Zone },
    /// Whole seconds.
    Unixtime,
    /// Seconds with the fraction.
    Float,
}

impl TimeStyle {
    /// The time as JSON, for `inject`.
    pub fn value(&self, seconds: i64, nanos: u32) -> Value {
        match self {
            TimeStyle::Unixtime => Value::from(seconds),
            // Fluentd's inject: `time.to_r.truncate(6).to_f`, microseconds. The quotient of two
            // integers exact in f64 is the double nearest the rational, as Ruby's `to_f`.
            TimeStyle::Float => {
                Value::from((seconds * 1_000_000 + i64::from(nanos / 1000)) as f64 / 1_000_000.0)
            }
            TimeStyle::Text { .. } => Value::String(self.text(seconds, nanos)),
        }
    }

    /// The time as text, for `out_file`.
    pub fn text(&self, seconds: i64, nanos: u32) -> String {
        match self {
            TimeStyle::Unixtime => seconds.to_string(),
            TimeStyle::Float => fluentd_float_time(seconds, nanos),
            TimeStyle::Text {
                format: Some(f),
                zone,
            } => strftime(f, seconds, nanos, *zone),
            TimeStyle::Text { format: None, zone } => iso8601(seconds, *zone),
        }
    }
}

/// Fluentd's `NumericTimeFormatter#format_float` (lib/fluent/time.rb), byte for byte: the
/// nanoseconds' digits when there are nine, and otherwise as many zeros as digits were missing
/// (it replaces the digits instead of padding them): `….500000000`, `….123456789`, but
/// `….00000000` for 5 ns or none and `….0` for 12,345,678 ns.
pub fn fluentd_float_time(seconds: i64, nanos: u32) -> String {
    let digits = nanos.to_string();
    let fraction = if digits.len() < 9 {
        "0".repeat(9 - digits.len())
    } else {
        digits
    };
    format!("{seconds}.{fraction}")
}

/// A configured formatter.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatter {
    Json {
        add_newline: bool,
    },
    Ltsv {
        delimiter: String,
        label_delimiter: String,
        /// Written instead of the delimiter inside a value (Fluentd's `replacement`, a space).
        replacement: String,
        add_newline: bool,
    },
    Csv {
        fields: Vec<Accessor>,
        delimiter: String,
        force_quotes: bool,
        add_newline: bool,
    },
    SingleValue {
        message_key: String,
        add_newline: bool,
    },
    Msgpack,
    OutFile {
        output_time: bool,
        output_tag: bool,
        delimiter: String,
        time: TimeStyle,
    },
    Hash {
        add_newline: bool,
    },
}

impl Formatter {
    /// Format one record (a JSON object) of `tag` at `seconds`/`nanos`.
    pub fn format(&self, tag: &str, seconds: i64, nanos: u32, record: &Map<String, Value>) -> Vec<u8> {
        let newline = |mut s: String, add: bool| {
            if add {
                s.push('\n');
            }
            s.into_bytes()
        };
        match self {
            Formatter::Json { add_newline } => {
                let mut out = number::to_json(record);
                if *add_newline {
                    out.push(b'\n');
                }
                out
            }
            Formatter::Ltsv {
                delimiter,
                label_delimiter,
                replacement,
                add_newline,
            } => {
                let mut s = String::new();
                let mut text = String::new();
                for (i, (label, value)) in record.iter().enumerate() {
                    if i > 0 {
                        s.push_str(delimiter);
                    }
                    s.push_str(label);
                    s.push_str(label_delimiter);
                    // `value.to_s.gsub(delimiter, replacement)`.
                    text.clear();
                    ruby_to_s(value, &mut text);
                    if !delimiter.is_empty() && text.contains(delimiter.as_str()) {
                        s.push_str(&text.replace(delimiter.as_str(), replacement));
                    } else {
                        s.push_str(&text);
                    }
                }
                newline(s, *add_newline)
            }
            Formatter::Csv {
                fields,
                delimiter,
                force_quotes,
                add_newline,
            } => {
                let mut s = String::new();
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push_str(delimiter);
                    }
                    csv_field(field.get_in(record), delimiter, *force_quotes, &mut s);
                }
                newline(s, *add_newline)
            }
            Formatter::SingleValue {
                message_key,
                add_newline,
            } => {
                let mut s = String::new();
                if let Some(v) = record.get(message_key) {
                    ruby_to_s(v, &mut s);
                }
                newline(s, *add_newline)
            }
            Formatter::Msgpack => {
                let mut out = Vec::new();
                msgpack_map(record, &mut out);
                out
            }
            Formatter::OutFile {
                output_time,
                output_tag,
                delimiter,
                time,
            } => {
                let mut s = String::new();
                if *output_time {
                    s.push_str(&time.text(seconds, nanos));
                    s.push_str(delimiter);
                }
                if *output_tag {
                    s.push_str(tag);
                    s.push_str(delimiter);
                }
                s.push_str(std::str::from_utf8(&number::to_json(record)).expect("JSON is UTF-8"));
                newline(s, true)
            }
            Formatter::Hash { add_newline } => {
                let mut s = String::new();
                ruby_inspect_map(record, &mut s);
                newline(s, *add_newline)
            }
        }
    }
}

/// Ruby's `Float#to_s`: `1.5`, `100.0`, `1.0e+15`, `1.5e-05`.
pub fn ruby_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let a = f.abs();
    // Ruby writes fixed notation for at most 15 integer digits, and down to 0.0001.
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        let e = format!("{f:e}");
        let (mantissa, exp) = e.split_once('e').expect("exponent form");
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Ruby's `to_s` of a number read from JSON: an integer's digits, whatever its size; a float
/// as Ruby writes it.
fn number_to_s(n: &serde_json::Number, out: &mut String) {
    match number::parsed(n) {
        number::Parsed::Integer(digits) => out.push_str(digits),
        number::Parsed::Float(f) => out.push_str(&ruby_float(f)),
    }
}

/// Ruby's `to_s` of a value parsed from JSON: strings as they are, `nil` as nothing, hashes and
/// arrays as their `inspect`.
pub fn ruby_to_s(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Number(n) => number_to_s(n, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(_) | Value::Object(_) => ruby_inspect(v, out),
    }
}

/// Ruby's `inspect` (Ruby 3.3 and before: `{"a"=>1}`).
pub fn ruby_inspect(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::String(s) => ruby_string_inspect(s, out),
        Value::Number(n) => number_to_s(n, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                ruby_inspect(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => ruby_inspect_map(map, out),
    }
}

/// Ruby's `Hash#inspect` of a record's fields.
fn ruby_inspect_map(map: &Map<String, Value>, out: &mut String) {
    out.push('{');
    for (i, (k, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        ruby_string_inspect(k, out);
        out.push_str("=>");
        ruby_inspect(item, out);
    }
    out.push('}');
}

fn ruby_string_inspect(s: &str, out: &mut String) {
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            '\u{8}' => out.push_str("\\b"),
            '\u{7}' => out.push_str("\\a"),
            '\u{1b}' => out.push_str("\\e"),
            '#' if matches!(chars.peek(), Some('{' | '$' | '@')) => out.push_str("\\#"),
            c if !ruby_prints(c) => {
                let code = c as u32;
                let _ = if code < 0x10000 {
                    write!(out, "\\u{code:04X}")
                } else {
                    write!(out, "\\u{{{code:X}}}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether Ruby's `String#inspect` writes `c` as it is (the table is Ruby's own, generated).
fn ruby_prints(c: char) -> bool {
    let code = c as u32;
    if (0x20..0x7f).contains(&code) {
        return true;
    }
    let table = unprintable::UNPRINTABLE;
    let i = table.partition_point(|&(_, last)| last < code);
    table.get(i).is_none_or(|&(first, _)| first > code)
}

/// One CSV field as Ruby's CSV writes it: `nil` empty (or `""` with force_quotes), quotes
/// doubled, quoted when forced or when the text needs it.
fn csv_field(v: Option<&Value>, delimiter: &str, force_quotes: bool, out: &mut String) {
    let text = match v {
        None | Some(Value::Null) => {
            if force_quotes {
                out.push_str("\"\"");
            }
            return;
        }
        Some(v) => {
            let mut s = String::new();
            ruby_to_s(v, &mut s);
            s
        }
    };
    let needs =
        force_quotes || text.is_empty() || text.contains(delimiter) || text.contains(['"', '\r', '\n']);
    if needs {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

fn msgpack_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, m8: Option<u8>, m16: u8, m32: u8) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if let (Some(tag), true) = (m8, len <= 0xff) {
        out.push(tag);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn msgpack_map(map: &Map<String, Value>, out: &mut Vec<u8>) {
    msgpack_len(out, map.len(), 0x80, 15, None, 0xde, 0xdf);
    for (k, v) in map {
        msgpack_str(k, out);
        msgpack_value(v, out);
    }
}

fn msgpack_str(s: &str, out: &mut Vec<u8>) {
    msgpack_len(out, s.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb);
    out.extend_from_slice(s.as_bytes());
}

/// MessagePack as Ruby's msgpack gem writes a value: the smallest integer form, float 64.
fn msgpack_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::String(s) => msgpack_str(s, out),
        Value::Array(items) => {
            msgpack_len(out, items.len(), 0x90, 15, None, 0xdc, 0xdd);
            for item in items {
                msgpack_value(item, out);
            }
        }
        Value::Object(map) => msgpack_map(map, out),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                match u {
                    0..=0x7f => out.push(u as u8),
                    0x80..=0xff => out.extend_from_slice(&[0xcc, u as u8]),
                    0x100..=0xffff => {
                        out.push(0xcd);
                        out.extend_from_slice(&(u as u16).to_be_bytes());
                    }
                    0x1_0000..=0xffff_ffff => {
                        out.push(0xce);
                        out.extend_from_slice(&(u as u32).to_be_bytes());
                    }
                    _ => {
                        out.push(0xcf);
                        out.extend_from_slice(&u.to_be_bytes());
                    }
                }
            } else if let Some(i) = n.as_i64() {
                match i {
                    -32..=-1 => out.push(i as i8 as u8),
                    -128..=-33 => out.extend_from_slice(&[0xd0, i as i8 as u8]),
                    -32_768..=-129 => {
                        out.push(0xd1);
                        out.extend_from_slice(&(i as i16).to_be_bytes());
                    }
                    -2_147_483_648..=-32_769 => {
                        out.push(0xd2);
                        out.extend_from_slice(&(i as i32).to_be_bytes());
                    }
                    _ => {
                        out.push(0xd3);
                        out.extend_from_slice(&i.to_be_bytes());
                    }
                }
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.as_f64().unwrap_or_default().to_be_bytes());
            }
        }
    }
}

/// How a JSON value is named in messages: "a string", "an array", …
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
mod unprintable;
