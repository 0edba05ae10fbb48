//! Any STS XML, IMDS / container JSON, credential-process output or timestamp: credentials
//! or a clear error, never a panic.
#![no_main]

use kinesis_output::auth::credentials::{parse_credentials_json, parse_process_output, parse_sts_response};
use kinesis_output::shaping::timefmt::parse_timestamp;
use kinesis_output::HttpResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let status = if selector & 0x80 == 0 { 200 } else { 403 };
            let _ = parse_sts_response(&HttpResponse {
                status,
                body: body.to_vec(),
            });
        }
        1 => {
            let _ = parse_credentials_json(body, "container endpoint");
        }
        2 => {
            let _ = parse_process_output(body);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = parse_timestamp(text);
            }
        }
    }
});
