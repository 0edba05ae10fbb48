//! Any bytes as a Fluent Bit chunk (what the `kinesis_wasm` plugin is handed): every event read
//! or the reading stopped at a named offset, no record built past its limit, every record
//! written valid JSON, never a panic, never deep recursion.
#![no_main]

use kinesis_output::front::chunk::decode;
use libfuzzer_sys::fuzz_target;

/// A small record limit, so that the refusal path is reached often.
const MAX_RECORD: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data, MAX_RECORD);
    for event in &decoded.events {
        if let Ok(record) = &event.record {
            assert!(record.len() <= MAX_RECORD, "a record past its limit");
            assert!(
                serde_json::from_slice::<serde_json::Value>(record).is_ok(),
                "not JSON: {}",
                String::from_utf8_lossy(record)
            );
        }
        assert!(event.nanoseconds < 1_000_000_000);
        assert!(event.seconds != -1 && event.seconds != -2, "a group marker shipped");
    }
    if let Some((from, e)) = &decoded.broken {
        assert!(*from <= data.len() && e.offset <= data.len());
    }
});
