//! The floor under the component's cost per record: what any signed PutRecords client must do
//! for each record, and nothing else. For `COUNT` records of `SIZE` bytes, in requests of 500:
//! base64 of the data straight into the body, the JSON framing with a 32-character key, and the
//! SHA-256 of each body (SigV4's payload hash). Run as a `wasi:cli` command by `kinesis-bench`,
//! which measures its CPU time.
//!
//! `sigv4-floor SIZE COUNT [host]` prints a checksum of the digests (so nothing is optimised
//! away). With `host` the bodies are hashed through the sink world's host interface
//! (`kinesis:output/host` `payload-sha256`), the path the sink world takes; without it, in wasm.

use base64::Engine as _;
use sha2::{Digest, Sha256};

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        world: "kinesis:floor/floor",
        path: ["../../wit", "wit"],
        generate_all,
    });
}

/// The first byte of the SHA-256 of `body`: from the host's hex digest, or hashed here.
fn first_digest_byte(body: &[u8], host: bool) -> u8 {
    #[cfg(target_arch = "wasm32")]
    if host {
        let hex = bindings::kinesis::output::host::payload_sha256(body);
        return u8::from_str_radix(&hex[..2], 16).expect("a hex digest");
    }
    let _ = host;
    Sha256::digest(body)[0]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(size), Some(count)) = (
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: sigv4-floor SIZE COUNT [host]");
        std::process::exit(2);
    };
    let host = args.get(3).is_some_and(|a| a == "host");
    let data: Vec<u8> = (0..size)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz{}\":,"[i % 31])
        .collect();
    let key = "0123456789abcdef0123456789abcdef";
    let mut body: Vec<u8> = Vec::with_capacity(500 * (size * 4 / 3 + 80) + 64);
    let mut checksum = 0u8;
    let mut left = count;
    while left > 0 {
        let n = left.min(500);
        left -= n;
        body.clear();
        body.extend_from_slice(b"{\"StreamName\":\"bench\",\"Records\":[");
        for i in 0..n {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"Data\":\"");
            let start = body.len();
            body.resize(start + base64::encoded_len(size, true).expect("fits"), 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(&data, &mut body[start..])
                .expect("sized");
            body.truncate(start + written);
            body.extend_from_slice(b"\",\"PartitionKey\":\"");
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(b"\"}");
        }
        body.extend_from_slice(b"]}");
        checksum ^= first_digest_byte(&body, host);
    }
    println!("{checksum}");
}
