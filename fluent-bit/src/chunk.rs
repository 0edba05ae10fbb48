//! A Fluent Bit chunk: the msgpack events of one flush, each turned into the tag's event (time and
//! record as JSON) the component takes.
//!
//! Events are `[time, record]` or, since Fluent Bit 2.1, `[[time, metadata], record]`; the time is
//! Fluent Bit's EventTime (msgpack extension type 0: big-endian u32 seconds, u32 nanoseconds), an
//! integer or a float. Records become JSON as Fluent Bit's own conversion writes them (checked
//! against Fluent Bit 5.1's `json_lines`): no spaces, non-ASCII characters and control characters
//! as `\uXXXX` (surrogate pairs above U+FFFF), whole floats as `100.0` and others with 16
//! significant digits (`1e+20`, `1e-06`). Where Fluent Bit would write something that is not
//! JSON, we write JSON instead: binary values as strings (invalid UTF-8 replaced), extension
//! values as a string of `\xNN` escapes, keys that are not strings as the string of their JSON,
//! NaN and infinities as `null`.

use std::fmt::Write as _;

/// One event of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEvent {
    pub seconds: i64,
    pub nanoseconds: u32,
    /// The record as JSON text (an object, if Fluent Bit's record was a map).
    pub record: Vec<u8>,
}

/// Why a chunk could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    /// Byte offset in the chunk where reading stopped.
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

/// Nesting deeper than this is refused rather than followed (the component's own JSON reader
/// refuses deeper records anyway).
const MAX_DEPTH: usize = 128;

/// Every event of `chunk`, in order.
pub fn decode(chunk: &[u8]) -> Result<Vec<ChunkEvent>, ChunkError> {
    let mut r = Reader { b: chunk, i: 0 };
    let mut events = Vec::new();
    while r.i < chunk.len() {
        events.push(r.event()?);
    }
    Ok(events)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

/// A msgpack value's head: what kind it is and its length or value.
enum Head {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext(i8, usize),
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ChunkError> {
        Err(ChunkError {
            offset: self.i,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        if self.b.len() - self.i < n {
            return self.fail(format!("the chunk ends inside a value ({n} more bytes expected)"));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, ChunkError> {
        Ok(self.take(n)?.iter().fold(0u64, |v, b| v << 8 | u64::from(*b)))
    }

    fn head(&mut self) -> Result<Head, ChunkError> {
        let b = self.take(1)?[0];
        Ok(match b {
            0x00..=0x7f => Head::Uint(u64::from(b)),
            0x80..=0x8f => Head::Map(usize::from(b & 0x0f)),
            0x90..=0x9f => Head::Array(usize::from(b & 0x0f)),
            0xa0..=0xbf => Head::Str(usize::from(b & 0x1f)),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.uint(1)? as usize),
            0xc5 => Head::Bin(self.uint(2)? as usize),
            0xc6 => Head::Bin(self.uint(4)? as usize),
            0xc7 => {
                let n = self.uint(1)? as usize;
                Head::Ext(self.take(1)?[0] as i8, n)
            }
            0xc8 => {
                let n = self.uint(2)? as usize;
                Head::Ext(self.take(1)?[0] as i8, n)
            }
            0xc9 => {
                let n = self.uint(4)? as usize;
                Head::Ext(self.take(1)?[0] as i8, n)
            }
            0xca => Head::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Head::Float(f64::from_bits(self.uint(8)?)),
            0xcc => Head::Uint(self.uint(1)?),
            0xcd => Head::Uint(self.uint(2)?),
            0xce => Head::Uint(self.uint(4)?),
            0xcf => Head::Uint(self.uint(8)?),
            0xd0 => Head::Int(i64::from(self.take(1)?[0] as i8)),
            0xd1 => Head::Int(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Head::Int(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Head::Int(self.uint(8)? as i64),
            0xd4 => Head::Ext(self.take(1)?[0] as i8, 1),
            0xd5 => Head::Ext(self.take(1)?[0] as i8, 2),
            0xd6 => Head::Ext(self.take(1)?[0] as i8, 4),
            0xd7 => Head::Ext(self.take(1)?[0] as i8, 8),
            0xd8 => Head::Ext(self.take(1)?[0] as i8, 16),
            0xd9 => Head::Str(self.uint(1)? as usize),
            0xda => Head::Str(self.uint(2)? as usize),
            0xdb => Head::Str(self.uint(4)? as usize),
            0xdc => Head::Array(self.uint(2)? as usize),
            0xdd => Head::Array(self.uint(4)? as usize),
            0xde => Head::Map(self.uint(2)? as usize),
            0xdf => Head::Map(self.uint(4)? as usize),
            0xe0..=0xff => Head::Int(i64::from(b as i8)),
            0xc1 => {
                self.i -= 1;
                return self.fail("0xc1 is not a msgpack type");
            }
        })
    }

    /// `[time, record]` or `[[time, metadata], record]`.
    fn event(&mut self) -> Result<ChunkEvent, ChunkError> {
        let Head::Array(2) = self.head()? else {
            return self.fail("an event is not a two-element array");
        };
        let (seconds, nanoseconds) = match self.head()? {
            Head::Array(n) if n >= 1 => {
                let time = self.time()?;
                for _ in 1..n {
                    self.skip(0)?; // metadata
                }
                time
            }
            head => self.time_from(head)?,
        };
        let mut record = Vec::new();
        self.json(&mut record, 0)?;
        Ok(ChunkEvent {
            seconds,
            nanoseconds,
            record,
        })
    }

    fn time(&mut self) -> Result<(i64, u32), ChunkError> {
        let head = self.head()?;
        self.time_from(head)
    }

    fn time_from(&mut self, head: Head) -> Result<(i64, u32), ChunkError> {
        match head {
            Head::Ext(0, 8) => {
                let s = self.uint(4)?;
                let n = self.uint(4)? as u32;
                Ok((s as i64, n.min(999_999_999)))
            }
            Head::Uint(s) => Ok((s.min(i64::MAX as u64) as i64, 0)),
            Head::Int(s) => Ok((s, 0)),
            Head::Float(f) if f.is_finite() => {
                let s = f.floor();
                Ok((s as i64, ((f - s) * 1e9).round().min(999_999_999.0) as u32))
            }
            _ => self.fail("an event's time is not an EventTime, an integer or a float"),
        }
    }

    fn skip(&mut self, depth: usize) -> Result<(), ChunkError> {
        let mut sink = Vec::new();
        self.json(&mut sink, depth)
    }

    /// Write the next value as JSON.
    fn json(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), ChunkError> {
        if depth > MAX_DEPTH {
            return self.fail(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        match self.head()? {
            Head::Nil => out.extend_from_slice(b"null"),
            Head::Bool(true) => out.extend_from_slice(b"true"),
            Head::Bool(false) => out.extend_from_slice(b"false"),
            Head::Uint(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Head::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Head::Float(f) => out.extend_from_slice(float(f).as_bytes()),
            Head::Str(n) | Head::Bin(n) => {
                let bytes = self.take(n)?;
                string(out, &String::from_utf8_lossy(bytes));
            }
            Head::Ext(_, n) => {
                let bytes = self.take(n)?;
                let mut text = String::with_capacity(n * 4);
                for b in bytes {
                    let _ = write!(text, "\\x{b:02x}");
                }
                string(out, &text);
            }
            Head::Array(n) => self.sequence(out, n, b"[]", |r, out| r.json(out, depth + 1))?,
            Head::Map(n) => self.sequence(out, n, b"{}", |r, out| {
                r.key(out, depth + 1)?;
                out.push(b':');
                r.json(out, depth + 1)
            })?,
        }
        Ok(())
    }

    /// `n` items written by `item` between the `brackets`, comma-separated.
    fn sequence(
        &mut self,
        out: &mut Vec<u8>,
        n: usize,
        brackets: &[u8; 2],
        mut item: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<(), ChunkError>,
    ) -> Result<(), ChunkError> {
        out.push(brackets[0]);
        for k in 0..n {
            if k > 0 {
                out.push(b',');
            }
            item(self, out)?;
        }
        out.push(brackets[1]);
        Ok(())
    }

    /// A map key: a string as it is, anything else as the string of its JSON.
    fn key(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), ChunkError> {
        if let Some(&b) = self.b.get(self.i) {
            if matches!(b, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6) {
                return self.json(out, depth);
            }
        }
        let mut inner = Vec::new();
        self.json(&mut inner, depth)?;
        string(out, &String::from_utf8_lossy(&inner));
        Ok(())
    }
}

/// A JSON string as Fluent Bit writes it: `"`, `\`, and the short escapes for backspace, form
/// feed, newline, carriage return and tab; every other character below U+0020 or above U+007E
/// as `\uXXXX` (a surrogate pair above U+FFFF).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// A float as Fluent Bit writes it: a whole number as `%.1f`, anything else as `%.16g`; NaN and
/// infinities (which would not be JSON) as `null`.
pub fn float(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_string();
    }
    // C's `f == (double)(long long)f`, which holds for whole numbers in i64's range.
    const I64_RANGE: std::ops::Range<f64> = -9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && I64_RANGE.contains(&f) {
        return format!("{f:.1}");
    }
    general(f, 16)
}

/// C's `%.{precision}g`.
fn general(f: f64, precision: usize) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{:.*e}", precision - 1, f);
    let (mantissa, exponent) = sci.split_once('e').expect("scientific notation");
    let exponent: i32 = exponent.parse().expect("an exponent");
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_zeros(&format!("{f:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A msgpack writer for the tests.
    fn str8(s: &str) -> Vec<u8> {
        let mut v = vec![0xd9, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn event_time(seconds: u32, nanos: u32) -> Vec<u8> {
        let mut v = vec![0xd7, 0x00];
        v.extend_from_slice(&seconds.to_be_bytes());
        v.extend_from_slice(&nanos.to_be_bytes());
        v
    }

    #[test]
    fn floats_read_as_fluent_bit_writes_them() {
        // Every case checked against Fluent Bit 5.1's json_lines.
        for (f, text) in [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e20, "1e+20"),
            (0.000001, "1e-06"),
            (-0.5, "-0.5"),
            (123456789012345678.0, "123456789012345680.0"),
            (0.3333333333333333, "0.3333333333333333"),
            (0.0, "0.0"),
            (1795833890.276789, "1795833890.276789"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ] {
            assert_eq!(float(f), text, "{f}");
        }
    }

    #[test]
    fn strings_escape_as_fluent_bit_escapes_them() {
        let mut out = Vec::new();
        string(&mut out, "é\u{1}\"\\/\t😀\u{8}\u{c}\n\r\u{7f}\u{80} ~");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""\u00e9\u0001\"\\/\t\ud83d\ude00\b\f\n\r\u007f\u0080 ~""#
        );
    }

    #[test]
    fn both_event_formats_and_every_time_form() {
        let mut chunk = Vec::new();
        // [EventTime, {"log": "a"}]
        chunk.extend([0x92]);
        chunk.extend(event_time(1_700_000_000, 5));
        chunk.extend([0x81]);
        chunk.extend(str8("log"));
        chunk.extend(str8("a"));
        // [[EventTime, {}], {"n": -3, "f": 2.5, "b": true, "z": nil, "a": [1]}]
        chunk.extend([0x92, 0x92]);
        chunk.extend(event_time(1_700_000_001, 0));
        chunk.extend([0x80, 0x85]);
        chunk.extend(str8("n"));
        chunk.push(0xfd);
        chunk.extend(str8("f"));
        chunk.push(0xcb);
        chunk.extend(2.5f64.to_bits().to_be_bytes());
        chunk.extend(str8("b"));
        chunk.push(0xc3);
        chunk.extend(str8("z"));
        chunk.push(0xc0);
        chunk.extend(str8("a"));
        chunk.extend([0x91, 0x01]);
        // [1700000002 (integer), {1: bin "x"}], then [1700000003.25 (float), {"e": ext}]
        chunk.extend([0x92, 0xce]);
        chunk.extend(1_700_000_002u32.to_be_bytes());
        chunk.extend([0x81, 0x01, 0xc4, 0x01, b'x']);
        chunk.extend([0x92, 0xcb]);
        chunk.extend(1_700_000_003.25f64.to_bits().to_be_bytes());
        chunk.extend([0x81]);
        chunk.extend(str8("e"));
        chunk.extend([0xd4, 0x05, 0xab]);
        let events = decode(&chunk).unwrap();
        let seen: Vec<(i64, u32, String)> = events
            .into_iter()
            .map(|e| (e.seconds, e.nanoseconds, String::from_utf8(e.record).unwrap()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1_700_000_000, 5, r#"{"log":"a"}"#.to_string()),
                (
                    1_700_000_001,
                    0,
                    r#"{"n":-3,"f":2.5,"b":true,"z":null,"a":[1]}"#.to_string()
                ),
                (1_700_000_002, 0, r#"{"1":"x"}"#.to_string()),
                (1_700_000_003, 250_000_000, r#"{"e":"\\xab"}"#.to_string()),
            ]
        );
    }

    #[test]
    fn a_broken_chunk_is_an_error_naming_the_offset() {
        let e = decode(&[0x92, 0xd7, 0x00, 1, 2]).unwrap_err();
        assert!(e.message.contains("ends inside a value"), "{e}");
        assert_eq!(decode(&[0x91, 0x01]).unwrap_err().offset, 1);
        // Deep nesting is refused, not followed.
        let mut deep = vec![0x92, 0x01];
        deep.extend(std::iter::repeat_n(0x91, 10_000));
        deep.push(0x01);
        assert!(decode(&deep).unwrap_err().message.contains("nest deeper"));
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }
}
