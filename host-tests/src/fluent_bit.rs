//! Where the real Fluent Bit is, for the tests that run it: `FLUENT_BIT`, else `fluent-bit` on
//! the PATH, else the build in `../shared/tools/fluent-bit` beside the workspace (where CI finds
//! it). Without one, those tests say so and check nothing.

use std::path::PathBuf;

use crate::kinesalite::root;

/// The Fluent Bit to run, if there is one.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLUENT_BIT") {
        return Some(PathBuf::from(p));
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("fluent-bit"))
            .find(|p| p.is_file())
    }) {
        return Some(found);
    }
    let shared = root().join("../shared/tools/fluent-bit/bin/fluent-bit");
    shared.is_file().then_some(shared)
}

/// What a test prints when there is none.
pub const NOT_FOUND: &str = "Fluent Bit not found (FLUENT_BIT, PATH, ../shared/tools): this test did not run";
