//! The built plugin, loaded as Fluent Bit loads it: by a Rust host that plays Fluent Bit's side
//! of the ABI ([`abi`]), and by the real Fluent Bit ([`agent`]). Records go to kinesalite and
//! are read back.

mod abi;
mod agent;

use std::path::PathBuf;

/// The plugin's shared library, as `cargo test` builds it: beside this test in
/// `target/<profile>/deps/` (`cargo build` also copies it up to `target/<profile>/`).
pub fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [
        deps.to_path_buf(),
        deps.parent().expect("target/<profile>").to_path_buf(),
    ];
    candidates
        .iter()
        .map(|d| d.join("libflb_out_kinesis_wasm.so"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the plugin is not built beside {}", exe.display()))
}

/// A msgpack writer, as much as the tests need.
pub mod msgpack {
    pub fn str(out: &mut Vec<u8>, s: &str) {
        out.push(0xdb);
        out.extend((s.len() as u32).to_be_bytes());
        out.extend(s.as_bytes());
    }

    pub fn map(out: &mut Vec<u8>, n: usize) {
        out.push(0xdf);
        out.extend((n as u32).to_be_bytes());
    }

    pub fn event_time(out: &mut Vec<u8>, seconds: u32, nanos: u32) {
        out.extend([0xd7, 0x00]);
        out.extend(seconds.to_be_bytes());
        out.extend(nanos.to_be_bytes());
    }

    /// One event of string fields: `[time, record]`, or with `metadata` Fluent Bit 2.1's
    /// `[[time, {}], record]`.
    pub fn event(out: &mut Vec<u8>, seconds: u32, metadata: bool, fields: &[(&str, &str)]) {
        out.push(0x92);
        if metadata {
            out.push(0x92);
            event_time(out, seconds, 0);
            map(out, 0);
        } else {
            event_time(out, seconds, 0);
        }
        map(out, fields.len());
        for (k, v) in fields {
            str(out, k);
            str(out, v);
        }
    }
}
