//! Any request body the proxy world may receive, with any of its content types and encodings:
//! split into lines or refused with a status, within the limits, never a panic.
#![no_main]

use kinesis_output::config::FrontSettings;
use kinesis_output::front::body::{decode, framing, split};
use kinesis_output::front::lines::line_to_record;
use kinesis_output::front::time::scan_time;
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/x-ndjson"),
    Some("application/json"),
    Some("text/plain; charset=utf-8"),
    Some("application/octet-stream"),
];
const ENCODINGS: [Option<&str>; 5] = [None, Some("gzip"), Some("zstd"), Some("deflate"), Some("br")];
/// A small decoded-size cap, so that the limit path is reached often.
const MAX_DECODED: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let settings = FrontSettings {
        max_records: 50,
        ..FrontSettings::default()
    };
    let Ok(framing) = framing(TYPES[usize::from(selector % 5)]) else {
        return;
    };
    let decoded = match decode(ENCODINGS[usize::from(selector / 5 % 5)], body.to_vec(), MAX_DECODED) {
        Ok(d) => d,
        Err(_) => return,
    };
    assert!(decoded.len() <= MAX_DECODED, "the decoded-size cap holds");
    if let Ok(items) = split(framing, &decoded, &settings) {
        assert!(items.len() <= 50, "the record-count limit holds");
        for item in &items {
            assert!(item.start <= item.end && item.end <= decoded.len(), "{item:?} lies in the body");
        }
    }
    if let Ok(text) = std::str::from_utf8(&decoded) {
        for line in text.lines().take(4) {
            let record = line_to_record(line);
            let _ = scan_time(&record, &["time".to_string(), "@timestamp".to_string()]);
        }
    }
});
