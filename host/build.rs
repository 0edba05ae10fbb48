//! Puts the components into the program when `KINESIS_EMBED_COMPONENTS` names the folder that
//! holds them, by its absolute path (`make host`, `make plugin` and `make dist` name dist/):
//! then kinesis-ship and the Fluent Bit plugin are each one file. Without it (`cargo build`, the tests) nothing is built
//! in and the components are found at run time (see `engine`). Also records the version of
//! wasmtime that Cargo.lock resolved, for `--version` and the plugin's start-up line.

use std::path::{Path, PathBuf};

/// The worlds a host runs: the sink (ship, the plugin) and the proxy (serve).
const WORLDS: [(&str, &str); 2] = [
    ("SINK", "kinesis_output.wasm"),
    ("PROXY", "kinesis_output_proxy.wasm"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=KINESIS_EMBED_COMPONENTS");
    let folder = std::env::var_os("KINESIS_EMBED_COMPONENTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(folder) = folder.as_ref().filter(|f| f.is_relative()) {
        // A build script runs in its package's folder, not where the build was started.
        eprintln!(
            "KINESIS_EMBED_COMPONENTS must be an absolute path, not {}",
            folder.display()
        );
        std::process::exit(1);
    }
    let mut code = String::new();
    for (world, file) in WORLDS {
        let Some(folder) = &folder else {
            code.push_str(&format!("pub const {world}: Option<&[u8]> = None;\n"));
            continue;
        };
        let path = folder.join(file);
        let Ok(path) = path.canonicalize() else {
            eprintln!(
                "KINESIS_EMBED_COMPONENTS names {}, which has no {file} (build it with `make component`)",
                folder.display()
            );
            std::process::exit(1);
        };
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "pub const {world}: Option<&[u8]> = Some(include_bytes!({:?}));\n",
            path.display().to_string()
        ));
    }

    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| wasmtime_version(&text))
        .unwrap_or_else(|| "unknown".to_string());
    code.push_str(&format!("pub const WASMTIME_VERSION: &str = {version:?};\n"));

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("built_in.rs"), code).expect("writing built_in.rs");
}

/// The version of the `wasmtime` package in a Cargo.lock.
fn wasmtime_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasmtime\"" {
            let next = lines.next()?;
            return Some(next.strip_prefix("version = \"")?.strip_suffix('"')?.to_string());
        }
    }
    None
}
