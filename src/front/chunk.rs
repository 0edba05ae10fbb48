//! Fluent Bit's chunks: the msgpack events of one flush, each turned into the event (time and
//! record as JSON) the sink takes.
//!
//! Events are `[time, record]` or, since Fluent Bit 2.1, `[[time, metadata], record]`; the time is
//! Fluent Bit's EventTime (msgpack extension type 0: big-endian signed 32-bit seconds, 32-bit
//! nanoseconds), an integer or a float. Events whose time is -1 or -2 are the group markers of
//! grouped inputs (OpenTelemetry and others): not records, skipped and counted. Records become
//! JSON as Fluent Bit's own conversion writes them (checked against Fluent Bit 5.1's
//! `json_lines`): no spaces, non-ASCII characters and control characters as `\uXXXX` (surrogate
//! pairs above U+FFFF), whole floats as `100.0` and others with 16 significant digits (`1e+20`,
//! `1e-06`). Where Fluent Bit would write something that is not JSON, we write JSON instead:
//! binary values as strings (invalid UTF-8 replaced), extension values as a string of `\xNN`
//! escapes, NaN and infinities as `null`, and a map key that is not a string as one string: the
//! key written as JSON, with any key inside it that is not a string written as its bare JSON
//! text (so the string is escaped once, and its size stays linear in the key's).
//!
//! Reading never recurses (the stack a Fluent Bit flush runs on is small) and never builds more
//! than it may keep: a record that would pass `max_record` bytes of JSON, or nest deeper than
//! [`MAX_DEPTH`], is rejected as soon as that is known, its rest skipped without being written.
//! Bytes that are not msgpack end the reading: the events before them are kept, and the rest is
//! reported ([`Decoded::broken`]).

use std::fmt::Write as _;

use crate::kinesis::{Rejected, RejectionKind};

/// One event of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEvent {
    pub seconds: i64,
    pub nanoseconds: u32,
    /// The record as JSON text (an object, if Fluent Bit's record was a map), or why it could
    /// not be written.
    pub record: Result<Vec<u8>, Rejected>,
}

/// Why reading a chunk stopped before its end.
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

/// What a chunk held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Every event read, in order (group markers left out).
    pub events: Vec<ChunkEvent>,
    /// Group markers skipped.
    pub markers: usize,
    /// Where and why reading stopped early, with the byte offset of the first event not read.
    pub broken: Option<(usize, ChunkError)>,
}

/// Records nesting deeper than this are rejected: the sink's JSON reader (serde_json) takes at
/// most 127 levels.
pub const MAX_DEPTH: usize = 127;

/// The events of `chunk`; a record whose JSON would pass `max_record` bytes is rejected.
pub fn decode(chunk: &[u8], max_record: usize) -> Decoded {
    let mut r = Reader::new(chunk);
    let mut decoded = Decoded::default();
    while r.i < chunk.len() {
        let start = r.i;
        let mut out = Vec::with_capacity(r.room(max_record));
        match r.event_into(max_record, &mut out) {
            Ok(Some((seconds, nanoseconds, record))) => decoded.events.push(ChunkEvent {
                seconds,
                nanoseconds,
                record: record.map(|()| out),
            }),
            Ok(None) => decoded.markers += 1,
            Err(e) => {
                decoded.broken = Some((start, e));
                break;
            }
        }
    }
    decoded
}

/// A chunk's events with their records' JSON back to back in one buffer: what [`decode`]
/// reads, without an allocation a record (the Fluent Bit plugin hands `records` to the
/// component as it is).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PackedChunk {
    /// The JSON of every record written, back to back.
    pub records: Vec<u8>,
    /// Every event read, in order (group markers left out): its time, and where its record
    /// ends in `records` (it starts where the one written before it ended), or why it was
    /// not written.
    pub events: Vec<PackedChunkEvent>,
    /// Group markers skipped.
    pub markers: usize,
    /// As [`Decoded::broken`].
    pub broken: Option<(usize, ChunkError)>,
}

/// One event of a [`PackedChunk`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackedChunkEvent {
    pub seconds: i64,
    pub nanoseconds: u32,
    /// The record's bytes in [`PackedChunk::records`], or why it was not written.
    pub record: Result<std::ops::Range<usize>, Rejected>,
}

/// [`decode`], packed.
pub fn decode_packed(chunk: &[u8], max_record: usize) -> PackedChunk {
    let mut r = Reader::new(chunk);
    let mut packed = PackedChunk {
        // JSON is about as long as msgpack for log lines; a little more.
        records: Vec::with_capacity(chunk.len() + chunk.len() / 8),
        ..PackedChunk::default()
    };
    while r.i < chunk.len() {
        let start = r.i;
        let from = packed.records.len();
        match r.event_into(max_record, &mut packed.records) {
            Ok(Some((seconds, nanoseconds, record))) => packed.events.push(PackedChunkEvent {
                seconds,
                nanoseconds,
                record: record.map(|()| from..packed.records.len()),
            }),
            Ok(None) => packed.markers += 1,
            Err(e) => {
                packed.records.truncate(from);
                packed.broken = Some((start, e));
                break;
            }
        }
    }
    packed
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Reader<'a> {
        Reader {
            b,
            i: 0,
            hint: 0,
            stack: Vec::new(),
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// The length of the last record written: the next one is given about as much room, so
    /// that records of a chunk (mostly alike) are written without growing their buffer.
    hint: usize,
    /// The frames of the record being written, kept from one record to the next.
    stack: Vec<Frame>,
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

/// Where the JSON writer is, one frame per open container (and per key written as a string).
enum Frame {
    /// Items of an array left to write; whether one was written.
    Array { left: usize, first: bool },
    /// Entries of a map left; whether the next value is a key; whether one was written.
    Map {
        left: usize,
        key_next: bool,
        first: bool,
    },
    /// A key that is not a string ends here: its JSON, written from `start`, becomes one string.
    KeyEnd { start: usize },
}

/// Why a record is given up while it is read.
enum Refusal {
    TooLarge,
    TooDeep,
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

    /// `[time, record]` or `[[time, metadata], record]`, the record written at the end of
    /// `out`: its time, and whether it was written; `None` for a group marker.
    #[allow(clippy::type_complexity)]
    fn event_into(
        &mut self,
        max_record: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<(i64, u32, Result<(), Rejected>)>, ChunkError> {
        let Head::Array(2) = self.head()? else {
            self.i = self.i.saturating_sub(1);
            return self.fail("an event is not a two-element array");
        };
        let (seconds, nanoseconds, whole) = match self.head()? {
            Head::Array(n) if n >= 1 => {
                let time = self.time()?;
                // The metadata and anything after it.
                self.skip(n - 1)?;
                time
            }
            head => self.time_from(head)?,
        };
        // Markers carry a whole -1 or -2 (an EventTime or an integer), never a float time.
        if whole && (seconds == -1 || seconds == -2) {
            self.skip(1)?;
            return Ok(None);
        }
        let record = self.record_into(max_record, out)?;
        Ok(Some((seconds, nanoseconds, record)))
    }

    /// Room for a record about as long as the last one.
    fn room(&self, max_record: usize) -> usize {
        (self.hint + self.hint / 4 + 16).min(max_record.saturating_add(1))
    }

    fn time(&mut self) -> Result<(i64, u32, bool), ChunkError> {
        let head = self.head()?;
        self.time_from(head)
    }

    /// Seconds, nanoseconds, and whether the time was whole (an EventTime or an integer).
    fn time_from(&mut self, head: Head) -> Result<(i64, u32, bool), ChunkError> {
        match head {
            Head::Ext(0, 8) => {
                // Seconds are signed: -1 and -2 mark groups.
                let s = self.uint(4)? as u32 as i32;
                let n = self.uint(4)? as u32;
                Ok((i64::from(s), n.min(999_999_999), true))
            }
            Head::Uint(s) => Ok((s.min(i64::MAX as u64) as i64, 0, true)),
            Head::Int(s) => Ok((s, 0, true)),
            Head::Float(f) if f.is_finite() => {
                let s = f.floor();
                Ok((
                    s as i64,
                    ((f - s) * 1e9).round().clamp(0.0, 999_999_999.0) as u32,
                    false,
                ))
            }
            _ => self.fail("an event's time is not an EventTime, an integer or a float"),
        }
    }

    /// Pass over `values` whole values without writing them (no recursion: a count of the
    /// values still to pass).
    fn skip(&mut self, values: usize) -> Result<(), ChunkError> {
        let mut left = values;
        while left > 0 {
            left -= 1;
            match self.head()? {
                Head::Str(n) | Head::Bin(n) | Head::Ext(_, n) => {
                    self.take(n)?;
                }
                Head::Array(n) => left = left.saturating_add(n),
                Head::Map(n) => left = left.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The next value, a record, as JSON at the end of `out`; refused (and passed over, `out`
    /// as it was) when it would be larger than `max` bytes or nest deeper than [`MAX_DEPTH`].
    fn record_into(&mut self, max: usize, out: &mut Vec<u8>) -> Result<Result<(), Rejected>, ChunkError> {
        let base = out.len();
        let written = self.write_record(max, out, base);
        if !matches!(written, Ok(Ok(()))) {
            out.truncate(base);
        }
        written
    }

    fn write_record(
        &mut self,
        max: usize,
        out: &mut Vec<u8>,
        base: usize,
    ) -> Result<Result<(), Rejected>, ChunkError> {
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        // Containers open, and the stack height where a key being written as a string began.
        let mut depth = 0usize;
        let mut bare_from: Option<usize> = None;
        loop {
            // Punctuation before the next value, and whether the next value is a map key.
            let mut is_key = false;
            match stack.last_mut() {
                Some(Frame::Array { left, first }) => {
                    if *left == 0 {
                        out.push(b']');
                        stack.pop();
                        depth -= 1;
                        if self.close(&mut stack, out, &mut bare_from) {
                            break;
                        }
                        continue;
                    }
                    *left -= 1;
                    if !std::mem::replace(first, false) {
                        out.push(b',');
                    }
                }
                Some(Frame::Map {
                    left,
                    key_next,
                    first,
                }) => {
                    if *key_next && *left == 0 {
                        out.push(b'}');
                        stack.pop();
                        depth -= 1;
                        if self.close(&mut stack, out, &mut bare_from) {
                            break;
                        }
                        continue;
                    }
                    if *key_next {
                        *left -= 1;
                        if !std::mem::replace(first, false) {
                            out.push(b',');
                        }
                        is_key = true;
                    } else {
                        out.push(b':');
                    }
                    *key_next = !*key_next;
                }
                Some(Frame::KeyEnd { .. }) => unreachable!("closed by close()"),
                None => {}
            }
            if out.len() - base > max {
                // The value after the punctuation is not read yet.
                return self.refuse(Refusal::TooLarge, max, &stack, 1);
            }
            let at = self.i;
            let head = self.head()?;
            if is_key && bare_from.is_none() && !matches!(head, Head::Str(_) | Head::Bin(_)) {
                // A key that is not a string: written as JSON, then made one string.
                stack.push(Frame::KeyEnd { start: out.len() });
                bare_from = Some(stack.len());
            }
            match head {
                Head::Nil => out.extend_from_slice(b"null"),
                Head::Bool(true) => out.extend_from_slice(b"true"),
                Head::Bool(false) => out.extend_from_slice(b"false"),
                Head::Uint(v) => {
                    let _ = write!(Hex(out), "{v}");
                }
                Head::Int(v) => {
                    let _ = write!(Hex(out), "{v}");
                }
                Head::Float(f) => out.extend_from_slice(float(f).as_bytes()),
                Head::Str(n) | Head::Bin(n) => {
                    if n > max.saturating_sub(out.len() - base) && self.b.len() - self.i >= n {
                        // Even unescaped it would not fit.
                        self.i += n;
                        return self.refuse(Refusal::TooLarge, max, &stack, 0);
                    }
                    let bytes = self.take(n)?;
                    match std::str::from_utf8(bytes) {
                        Ok(text) => string(out, text),
                        Err(_) => string(out, &String::from_utf8_lossy(bytes)),
                    }
                }
                Head::Ext(_, n) => {
                    if n.saturating_mul(4) > max.saturating_sub(out.len() - base)
                        && self.b.len() - self.i >= n
                    {
                        self.i += n;
                        return self.refuse(Refusal::TooLarge, max, &stack, 0);
                    }
                    let bytes = self.take(n)?;
                    let mut text = String::with_capacity(n * 4);
                    for b in bytes {
                        let _ = write!(text, "\\x{b:02x}");
                    }
                    string(out, &text);
                }
                Head::Array(n) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        self.i = at;
                        return self.refuse(Refusal::TooDeep, max, &stack, 1);
                    }
                    out.push(b'[');
                    stack.push(Frame::Array { left: n, first: true });
                    continue;
                }
                Head::Map(n) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        self.i = at;
                        return self.refuse(Refusal::TooDeep, max, &stack, 1);
                    }
                    out.push(b'{');
                    stack.push(Frame::Map {
                        left: n,
                        key_next: true,
                        first: true,
                    });
                    continue;
                }
            }
            if self.close(&mut stack, out, &mut bare_from) {
                break;
            }
        }
        self.stack = stack;
        if out.len() - base > max {
            return self.refuse(Refusal::TooLarge, max, &[], 0);
        }
        self.hint = out.len() - base;
        Ok(Ok(()))
    }

    /// A value has just been written: end a key being made a string, if this value was it.
    /// Returns true when the record is complete.
    fn close(&mut self, stack: &mut Vec<Frame>, out: &mut Vec<u8>, bare_from: &mut Option<usize>) -> bool {
        if let Some(Frame::KeyEnd { start }) = stack.last() {
            let start = *start;
            stack.pop();
            *bare_from = None;
            let text = String::from_utf8_lossy(&out[start..]).into_owned();
            out.truncate(start);
            string(out, &text);
        }
        stack.is_empty()
    }

    /// Give up the record being written: pass over what is left of it (the values the open
    /// containers in `stack` still owe, plus `unread` values at the reader).
    fn refuse(
        &mut self,
        why: Refusal,
        max: usize,
        stack: &[Frame],
        unread: usize,
    ) -> Result<Result<(), Rejected>, ChunkError> {
        let left: usize = stack
            .iter()
            .map(|f| match f {
                Frame::Array { left, .. } => *left,
                // A map waiting for a value owes one more than its pairs.
                Frame::Map { left, key_next, .. } => left.saturating_mul(2) + usize::from(!*key_next),
                Frame::KeyEnd { .. } => 0,
            })
            .fold(unread, usize::saturating_add);
        let message = match why {
            Refusal::TooLarge => format!("the record as JSON would pass {max} bytes"),
            Refusal::TooDeep => format!("the record nests deeper than {MAX_DEPTH} levels"),
        };
        self.skip(left)?;
        let kind = match why {
            Refusal::TooLarge => RejectionKind::TooLarge,
            Refusal::TooDeep => RejectionKind::NotJson,
        };
        Ok(Err(Rejected { kind, message }))
    }
}

/// A JSON string as Fluent Bit writes it: `"`, `\`, and the short escapes for backspace, form
/// feed, newline, carriage return and tab; every other character below U+0020 or above U+007E
/// as `\uXXXX` (a surrogate pair above U+FFFF).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    // Runs of characters written as they are go out in one copy.
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if AS_IS[b as usize] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        if !short.is_empty() {
            out.extend_from_slice(short);
            i += 1;
        } else {
            let c = s[i..].chars().next().expect("a character starts here");
            let mut units = [0u16; 2];
            for &mut unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(b"\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(b"0123456789abcdef"[usize::from(unit >> shift & 0xf)]);
                }
            }
            i += c.len_utf8();
        }
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// The bytes a JSON string holds as they are: printable ASCII but `"` and `\`.
const AS_IS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        table[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    table
};

/// `fmt::Write` into a byte buffer.
struct Hex<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
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
mod tests;
