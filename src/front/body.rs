//! Records arriving in an HTTP body (the proxy world): framing by `Content-Type`, decoding by
//! `Content-Encoding`, the size and count limits, and each record's place and time.

use std::io::Read;

use serde::de::DeserializeSeed;

use super::time::{scan_time, EventTime, TimeScan};
use crate::config::FrontSettings;

/// Why a request body cannot be taken: the status and a message for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError {
    pub status: u16,
    pub message: String,
    /// The 1-based line of the body the message is about.
    pub line: Option<usize>,
}

impl BodyError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        BodyError {
            status,
            message: message.into(),
            line: None,
        }
    }
}

/// How the records are laid out in a body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// One JSON value a line (`application/x-ndjson`).
    Lines,
    /// `application/json`: a JSON array of records, one object, or (as Fluent Bit's
    /// `json_lines` sends under this type) one value a line.
    Json,
}

/// The framing a `Content-Type` announces; absent means [`Framing::Json`].
pub fn framing(content_type: Option<&str>) -> Result<Framing, BodyError> {
    let Some(ct) = content_type else {
        return Ok(Framing::Json);
    };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonlines"
        | "application/x-jsonlines"
        | "application/json-lines"
        | "application/jsonl"
        | "text/x-ndjson" => Ok(Framing::Lines),
        "application/json" | "text/json" | "text/plain" | "" => Ok(Framing::Json),
        other => Err(BodyError::new(
            415,
            format!("Content-Type {other} is not supported; send application/x-ndjson or application/json"),
        )),
    }
}

/// Undo a `Content-Encoding` (none, `identity`, `gzip`, `zstd`, `deflate`), refusing bodies
/// that grow beyond `max` bytes.
pub fn decode(content_encoding: Option<&str>, body: Vec<u8>, max: usize) -> Result<Vec<u8>, BodyError> {
    let too_large = || BodyError::new(413, format!("the body exceeds {max} bytes"));
    let encoding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match encoding.as_str() {
        "" | "identity" => {
            return if body.len() > max {
                Err(too_large())
            } else {
                Ok(body)
            }
        }
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        "zstd" => Box::new(
            ruzstd::decoding::StreamingDecoder::new(&body[..])
                .map_err(|e| BodyError::new(400, format!("the body is not valid zstd: {e}")))?,
        ),
        other => {
            return Err(BodyError::new(
                415,
                format!("Content-Encoding {other} is not supported; use gzip, zstd or deflate"),
            ))
        }
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::new(400, format!("the body is not valid {encoding}: {e}")))?;
    if out.len() > max {
        return Err(too_large());
    }
    Ok(out)
}

/// One record of a body: where it is, on which line, and the time read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// 1-based line of the body where the record starts.
    pub line: usize,
    pub start: usize,
    pub end: usize,
    /// Seconds and nanoseconds since the epoch, when a time field held a readable time.
    pub time: Option<EventTime>,
}

/// Split a decoded body into records, checking that each is JSON and reading its time.
pub fn split(framing: Framing, body: &[u8], settings: &FrontSettings) -> Result<Vec<Item>, BodyError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let items = match (framing, first.map(|i| body[i])) {
        (_, None) => Vec::new(),
        (Framing::Json, Some(b'[')) => split_array(body, settings)?,
        (Framing::Json, Some(_)) => {
            // One object (perhaps pretty-printed over several lines), else one value a line.
            let mut de = serde_json::Deserializer::from_slice(body);
            let whole = TimeScan(&settings.time_keys)
                .deserialize(&mut de)
                .and_then(|t| de.end().map(|_| t));
            match whole {
                Ok(time) => {
                    let start = first.unwrap_or(0);
                    let end = body.len() - body.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
                    vec![Item {
                        line: line_of(body, start),
                        start,
                        end,
                        time,
                    }]
                }
                Err(_) => split_lines(body, settings)?,
            }
        }
        (Framing::Lines, Some(_)) => split_lines(body, settings)?,
    };
    if items.len() > settings.max_records {
        return Err(BodyError::new(
            413,
            format!(
                "the body holds {} records, more than the {} allowed",
                items.len(),
                settings.max_records
            ),
        ));
    }
    Ok(items)
}

fn line_of(body: &[u8], offset: usize) -> usize {
    1 + body[..offset].iter().filter(|b| **b == b'\n').count()
}

fn split_lines(body: &[u8], settings: &FrontSettings) -> Result<Vec<Item>, BodyError> {
    let mut items = Vec::new();
    let mut start = 0;
    for (index, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line_start = start;
        start += raw.len() + 1;
        let trimmed_end = raw.len() - raw.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
        let lead = raw[..trimmed_end]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if lead == trimmed_end {
            continue; // blank line
        }
        if items.len() >= settings.max_records {
            // Counted, not parsed: the limit answer does not need the rest.
            items.push(Item {
                line: index + 1,
                start: line_start + lead,
                end: line_start + trimmed_end,
                time: None,
            });
            continue;
        }
        let record = &raw[lead..trimmed_end];
        let time = scan_time(record, &settings.time_keys).map_err(|e| BodyError {
            status: 400,
            message: format!("line {} is not JSON: {e}", index + 1),
            line: Some(index + 1),
        })?;
        items.push(Item {
            line: index + 1,
            start: line_start + lead,
            end: line_start + trimmed_end,
            time,
        });
    }
    Ok(items)
}

fn split_array(body: &[u8], settings: &FrontSettings) -> Result<Vec<Item>, BodyError> {
    let elements: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| BodyError {
            status: 400,
            message: format!("the body is not a JSON array of records: {e}"),
            line: Some(e.line()),
        })?;
    let base = body.as_ptr() as usize;
    // Lines counted once over the body, element after element (not from the start for each:
    // that made a large array quadratic).
    let (mut line, mut counted) = (1usize, 0usize);
    elements
        .iter()
        .map(|raw| {
            let text = raw.get();
            let start = text.as_ptr() as usize - base;
            line += body[counted..start].iter().filter(|b| **b == b'\n').count();
            counted = start;
            let time = scan_time(text.as_bytes(), &settings.time_keys).unwrap_or(None);
            Ok(Item {
                line,
                start,
                end: start + text.len(),
                time,
            })
        })
        .collect()
}
