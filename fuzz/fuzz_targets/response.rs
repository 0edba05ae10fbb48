//! Any PutRecords answer: parsed into one result per sent record or refused, never a panic.
#![no_main]

use kinesis_output::kinesis::code::classify_error_response;
use kinesis_output::kinesis::wire::parse_put_records_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sent, body)) = data.split_first() else {
        return;
    };
    let sent = usize::from(sent);
    if let Ok(entries) = parse_put_records_response(body, sent) {
        assert_eq!(entries.len(), sent, "one entry per record sent");
    }
    let status = 400 + (sent % 200) as u16;
    let _ = classify_error_response(status, body);
});
