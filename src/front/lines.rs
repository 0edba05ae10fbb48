//! Text input, a record a line (`kinesis-ship`, the command world): the line rules every door
//! that reads lines follows.
//!
//! - A line ends at `\n`; a `\r` before it is dropped. Bytes that are not UTF-8 are replaced.
//! - A blank line (only white space) carries no record, but still counts for line numbers.
//! - A JSON object is the record as it is; anything else (plain text, other JSON values) ships
//!   as `{"message": line}`, so a stray line is never lost.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::time::scan_time;

/// A line of text input as a record (see the module documentation).
pub fn line_to_record(line: &str) -> Vec<u8> {
    if line.trim_start().starts_with('{') && scan_time(line.as_bytes(), &[]).is_ok() {
        return line.as_bytes().to_vec();
    }
    let mut m = Map::new();
    m.insert("message".to_string(), Value::String(line.to_string()));
    serde_json::to_vec(&Value::Object(m)).expect("a map of strings serialises")
}

/// One record read from the input, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub record: Vec<u8>,
}

/// The records of a text input, blank lines skipped.
pub struct Lines<R> {
    input: R,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines {
            input,
            number: 0,
            buf: Vec::new(),
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            self.number += 1;
            // Valid UTF-8 (nearly every line) is checked at the standard library's fast pace,
            // and only other lines are walked for their invalid bytes.
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&self.buf),
            };
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim().is_empty() {
                continue;
            }
            return Some(Ok(Line {
                number: self.number,
                record: line_to_record(text),
            }));
        }
    }
}
