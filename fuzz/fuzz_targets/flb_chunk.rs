//! Any bytes as a Fluent Bit chunk (what the `kinesis_wasm` plugin is handed): every event read
//! or the reading stopped at a named offset, no record built past its limit, every record
//! written valid JSON, never a panic, never deep recursion; the packed reading (one buffer for
//! every record, as the plugin hands it to the component) reads the same.
#![no_main]

use kinesis_output::front::chunk::{decode, decode_packed};
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
    let packed = decode_packed(data, MAX_RECORD);
    assert_eq!(packed.events.len(), decoded.events.len());
    assert_eq!((packed.markers, &packed.broken), (decoded.markers, &decoded.broken));
    let mut next = 0;
    for (p, d) in packed.events.iter().zip(&decoded.events) {
        assert_eq!((p.seconds, p.nanoseconds), (d.seconds, d.nanoseconds));
        match (&p.record, &d.record) {
            (Ok(range), Ok(record)) => {
                assert_eq!(range.start, next, "records back to back");
                next = range.end;
                assert_eq!(&packed.records[range.clone()], &record[..]);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("read one way and refused the other"),
        }
    }
    assert_eq!(next, packed.records.len());
});
