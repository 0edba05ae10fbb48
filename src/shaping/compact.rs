//! Recognising a record that the `json` formatter would write back byte for byte, so that it can
//! be sent as it arrived instead of being parsed into a tree and serialised again (the largest
//! cost per record after SHA-256).
//!
//! [`scan`] validates the whole record as JSON and accepts it only when `serde_json` would write
//! exactly these bytes: no whitespace, no duplicate keys, strings whose escapes are the ones
//! `serde_json` writes (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, lowercase `\u00XX` for other
//! control characters), integers (of any size: their digits are kept), and floats already in their shortest
//! form as serde_json writes it. Anything else returns `None` and takes the general path, which gives the
//! same bytes (or the same rejection) the slow way.

use std::ops::Range;

/// Nesting deeper than this takes the general path (serde_json refuses beyond 128).
const MAX_DEPTH: usize = 120;

/// A record that may be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compact {
    /// Where the value of the top-level field named by the caller is, if present.
    pub field: Option<Range<usize>>,
}

/// Accept `record` when it is a JSON object in the exact form serde_json writes; note where the
/// top-level `field` (if given) holds its value.
pub fn scan(record: &[u8], field: Option<&str>) -> Option<Compact> {
    std::str::from_utf8(record).ok()?;
    if record.first() != Some(&b'{') {
        return None;
    }
    let mut s = Scanner {
        b: record,
        i: 0,
        field: field.map(str::as_bytes),
        found: None,
        keys: Vec::new(),
    };
    s.value(0)?;
    (s.i == record.len()).then_some(Compact { field: s.found })
}

/// The first index at or after `i` that may hold `"`, `\\` or a control character, eight bytes
/// at a time (wasm has no SIMD here, but 64-bit words): string contents are most of a log record.
/// May stop early; never skips one of those bytes.
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero iff (x - 1) & !x has its high bit; the test is exact for "any byte".
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let special = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            // Some byte below 0x20 (exact for thresholds up to 0x80).
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if special != 0 {
            break;
        }
        i += 8;
    }
    i
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    field: Option<&'a [u8]>,
    found: Option<Range<usize>>,
    /// Raw key spans of the objects being read, innermost last (for duplicate checks).
    keys: Vec<(usize, usize)>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Step into an object or array that ends with `close`: `Some(true)` when it is empty (and
    /// already stepped over), `None` past the depth limit.
    fn enter(&mut self, depth: usize, close: u8) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let empty = self.peek()? == close;
        if empty {
            self.i += 1;
        }
        Some(empty)
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if self.enter(depth, b'}')? {
            return Some(());
        }
        let base = self.keys.len();
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (start, end) = self.string()?;
            let key = &self.b[start..end];
            if self.keys[base..].iter().any(|&(a, z)| &self.b[a..z] == key) {
                return None; // serde_json keeps one of them: not byte-identical
            }
            self.keys.push((start, end));
            if self.next()? != b':' {
                return None;
            }
            let value_start = self.i;
            self.value(depth)?;
            if depth == 1 && self.field == Some(key) {
                self.found = Some(value_start..self.i);
            }
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        self.keys.truncate(base);
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if self.enter(depth, b']')? {
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string in serde_json's own escaping; the span between the quotes.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.i += 1;
        let start = self.i;
        loop {
            self.i = skip_plain(self.b, self.i);
            match self.peek()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end));
                }
                b'\\' => {
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            // serde_json writes \u00XX, lowercase, only for control characters
                            // without a short form.
                            let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                            if hex[0] != b'0' || hex[1] != b'0' || !lower_hex(hex[2]) || !lower_hex(hex[3]) {
                                return None;
                            }
                            let v = u8::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()?;
                            if v >= 0x20 || matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A number written back the same (shaping::number): an integer, or a float in the form
    /// serde_json writes it.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        if float {
            // Compared with serde_json's own writing of the value (floats are rare in logs).
            let v: f64 = text.parse().ok()?;
            let written = serde_json::Number::from_f64(v)?.to_string();
            (written == text).then_some(())
        } else {
            // Integers of any size are written back as their digits (shaping::number); `-0`
            // is written `0`.
            (text != "-0").then_some(())
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// What the general path writes for `record`, if it parses as an object.
    fn reserialised(record: &[u8]) -> Option<Vec<u8>> {
        let map: Map<String, Value> = serde_json::from_slice(record).ok()?;
        Some(crate::shaping::number::to_json(&map))
    }

    /// The rule that matters: whenever `scan` accepts, the general path writes the same bytes.
    fn check(record: &str) -> bool {
        let accepted = scan(record.as_bytes(), None).is_some();
        if accepted {
            assert_eq!(
                reserialised(record.as_bytes()).as_deref(),
                Some(record.as_bytes()),
                "accepted but reserialised differently: {record}"
            );
        }
        accepted
    }

    #[test]
    fn skipping_by_words_never_passes_a_quote_backslash_or_control_byte() {
        let mut seed = 99u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 58) as usize;
            // Mostly plain bytes (ASCII and UTF-8 continuation-range values), now and then one
            // that matters, at every offset and word alignment.
            let bytes: Vec<u8> = (0..len)
                .map(|k| {
                    let r = seed.rotate_left(k as u32 * 7) ^ (k as u64 * 0x9E37_79B9);
                    match r % 23 {
                        0 => b'"',
                        1 => b'\\',
                        2 => (r >> 8) as u8 % 0x20,
                        _ => 0x20 + (r >> 8) as u8 % 0xdf,
                    }
                })
                .collect();
            for start in 0..=len {
                let stop = skip_plain(&bytes, start);
                assert!(stop >= start && stop <= len);
                let passed = &bytes[start..stop];
                assert!(
                    passed.iter().all(|&c| c != b'"' && c != b'\\' && c >= 0x20),
                    "skipped past a special byte in {bytes:?} from {start}"
                );
                // It stops only within a word holding a special byte, or at the last word.
                assert!(
                    len - stop < 8
                        || bytes[stop..stop + 8]
                            .iter()
                            .any(|&c| c == b'"' || c == b'\\' || c < 0x20)
                );
            }
        }
    }

    #[test]
    fn compact_records_are_accepted() {
        for r in [
            r#"{}"#,
            r#"{"log":"GET / 200\n","stream":"stdout","n":42,"neg":-7,"f":0.125,"big":18446744073709551615}"#,
            r#"{"k":{"a":[1,2,{"b":null}],"t":true,"u":false},"e":[],"o":{}}"#,
            r#"{"esc":"q\" b\\ \r\t\b\f \u0001\u001f","uni":"é ✓ 🚀","del":""}"#,
            r#"{"f":1e+21,"g":1.5e-7,"h":100.0}"#,
            // Integers beyond 64 bits keep their digits (shaping::number).
            r#"{"a":18446744073709551616,"b":-9223372036854775809,"c":123456789012345678901234567890}"#,
        ] {
            assert!(check(r), "should be accepted: {r}");
        }
    }

    #[test]
    fn anything_serde_json_would_write_differently_is_refused() {
        for r in [
            r#"{"a": 1}"#, // whitespace
            r#" {"a":1}"#, // leading whitespace
            r#"{"a":1}
"#,  // trailing newline
            r#"{"a":1,"a":2}"#, // duplicate key
            r#"{"a":"\/"}"#, // escape serde_json does not write
            r#"{"a":"\u00e9"}"#, // escaped non-ASCII
            r#"{"a":"\u001F"}"#, // uppercase hex
            r#"{"a":"\u000a"}"#, // has a short form
            r#"{"a":1.50}"#, // not the shortest float
            r#"{"a":1E5}"#, // exponent form serde_json does not write
            r#"{"a":1e21}"#, // serde_json writes 1e+21
            r#"{"a":-0}"#, // negative zero
            r#"[1,2]"#,    // not an object
            r#"{"a":1"#,   // truncated
            r#"{"a":01}"#, // invalid number
            r#"{"a":tru}"#, // invalid literal
            r#"{"a":"x"}x"#, // trailing garbage
        ] {
            assert!(!check(r), "should be refused: {r}");
        }
        assert!(scan(b"{\"a\":\"\xff\"}", None).is_none(), "invalid UTF-8");
        let deep = format!("{}{}", "{\"a\":".repeat(130), "1".to_string() + &"}".repeat(130));
        assert!(scan(deep.as_bytes(), None).is_none());
    }

    #[test]
    fn the_top_level_field_is_found_not_nested_ones() {
        let r = br#"{"inner":{"pod":"x"},"pod":"web-1","n":3}"#;
        let c = scan(r, Some("pod")).unwrap();
        assert_eq!(&r[c.field.unwrap()], br#""web-1""#);
        let c = scan(br#"{"inner":{"pod":"x"}}"#, Some("pod")).unwrap();
        assert_eq!(c.field, None);
        let r = br#"{"pod":{"a":[1]}}"#;
        assert_eq!(&r[scan(r, Some("pod")).unwrap().field.unwrap()], br#"{"a":[1]}"#);
    }

    /// Many generated records, compact and not: whenever the scan accepts, the bytes equal the
    /// general path's.
    #[test]
    fn generated_records_agree_with_the_general_path() {
        let pieces = [
            r#""s""#,
            "0",
            "-12",
            "3.25",
            "1e-7",
            "2.0",
            r#""a\nb""#,
            r#""\u0007""#,
            "true",
            "null",
            "[]",
            r#"[1,"x"]"#,
            "{}",
            r#"{"z":1}"#,
            "1.0e3",
            r#""é""#,
            r#""\t""#,
            "123456789012345678901",
        ];
        let mut seed = 12345u64;
        let mut accepted = 0;
        for _ in 0..5000 {
            let mut rec = String::from("{");
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let fields = (seed >> 60) as usize;
            for f in 0..fields {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if f > 0 {
                    rec.push(',');
                }
                let key = (seed >> 40) % 6;
                let piece = pieces[((seed >> 20) as usize) % pieces.len()];
                rec.push_str(&format!("\"k{key}\":{piece}"));
            }
            rec.push('}');
            if check(&rec) {
                accepted += 1;
            }
        }
        assert!(
            accepted > 500,
            "the generator should produce many compact records ({accepted})"
        );
    }
}
