//! The wasmtime engine: one per process, with compiled code kept in wasmtime's cache when the
//! program asks for it, and a linker holding WASI and wasi:http. Where the components are found:
//! a file named by an option or a variable, else the copy built into the program, else a file
//! beside it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Context as _, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

/// Whether compiled code is kept in wasmtime's cache directory (`~/.cache/wasmtime`) between
/// runs. Set by the `kinesis-ship` program (its start then skips the Cranelift compile of an
/// unchanged component); tests compile afresh.
static CODE_CACHE: AtomicBool = AtomicBool::new(false);

/// Keep compiled components in wasmtime's cache directory from now on.
pub fn enable_code_cache() {
    CODE_CACHE.store(true, Ordering::Relaxed);
}

/// Whether guest traps are caught with explicit checks instead of signal handlers.
static NO_SIGNAL_HANDLERS: AtomicBool = AtomicBool::new(false);

/// From now on, engines install no signal handlers: guest memory accesses are bounds-checked
/// explicitly. For hosts that own the process's signals (Fluent Bit installs its own SIGSEGV
/// handler, which aborts), at some cost in speed.
pub fn disable_signal_handlers() {
    NO_SIGNAL_HANDLERS.store(true, Ordering::Relaxed);
}

pub(crate) fn new_engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    if CODE_CACHE.load(Ordering::Relaxed) {
        // A cache that cannot be set up (no home directory, say) only costs the compile.
        if let Ok(cache) = wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
            config.cache(Some(cache));
        }
    }
    if NO_SIGNAL_HANDLERS.load(Ordering::Relaxed) {
        config.signals_based_traps(false);
    }
    if crate::faults::trap_after_puts().is_some() {
        config.epoch_interruption(true);
    }
    // `KINESIS_WASM_PROFILE=perfmap` writes /tmp/perf-<pid>.map so `perf report` can name the
    // component's functions (see docs/performance.md, profiling the guest).
    if std::env::var_os("KINESIS_WASM_PROFILE").is_some_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| anyhow!("{e}"))
}

/// Compile the component `bytes` in a new engine, with a linker holding WASI and wasi:http.
pub(crate) fn compile<T: WasiView + WasiHttpView + 'static>(
    bytes: &[u8],
) -> Result<(Engine, Component, Linker<T>)> {
    let engine = new_engine()?;
    let component = Component::new(&engine, bytes).map_err(|e| anyhow!("compiling the component: {e}"))?;
    let linker = wasi_linker(&engine)?;
    Ok((engine, component, linker))
}

pub(crate) fn wasi_linker<T: WasiView + WasiHttpView + 'static>(engine: &Engine) -> Result<Linker<T>> {
    let mut linker = Linker::<T>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    Ok(linker)
}

/// What `make host`, `make plugin` and `make dist` build into the program (see build.rs).
mod built_in {
    include!(concat!(env!("OUT_DIR"), "/built_in.rs"));
}

/// The version of wasmtime this program runs components with.
pub const WASMTIME_VERSION: &str = built_in::WASMTIME_VERSION;

/// Where a component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A file: named by an option, a setting or a variable, or found beside the program.
    File(PathBuf),
    /// The copy built into this program.
    BuiltIn(&'static [u8]),
}

impl ComponentSource {
    /// The component's bytes.
    pub fn bytes(&self) -> Result<Cow<'static, [u8]>> {
        match self {
            ComponentSource::BuiltIn(bytes) => Ok(Cow::Borrowed(bytes)),
            ComponentSource::File(path) => std::fs::read(path).map(Cow::Owned).with_context(|| {
                format!(
                    "reading the component {} (build it with `make component`)",
                    path.display()
                )
            }),
        }
    }

    /// `built in`, or the file's path.
    pub fn place(&self) -> String {
        match self {
            ComponentSource::BuiltIn(_) => "built in".to_string(),
            ComponentSource::File(path) => path.display().to_string(),
        }
    }

    /// Where it is and the SHA-256 of its bytes: `built in, sha256:…`.
    pub fn describe(&self) -> String {
        match self.bytes() {
            Ok(bytes) => self.describe_bytes(&bytes),
            Err(_) => format!("{} (not found)", self.place()),
        }
    }

    /// [`describe`](Self::describe) for bytes already read from this source.
    pub fn describe_bytes(&self, bytes: &[u8]) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{}, sha256:{hex}", self.place())
    }
}

/// The `sink` world's component: the file `$KINESIS_OUTPUT_WASM` names, else the one built in,
/// else `kinesis_output.wasm` beside the running executable or in the workspace's `dist/`.
pub fn sink_component() -> ComponentSource {
    sink_component_beside(None)
}

/// [`sink_component`], looking for `kinesis_output.wasm` in `folder` (a plugin's own folder)
/// first among the files found beside.
pub fn sink_component_beside(folder: Option<&Path>) -> ComponentSource {
    let (variable, file) = ("KINESIS_OUTPUT_WASM", "kinesis_output.wasm");
    choose(named_file(variable), built_in::SINK, || {
        folder
            .map(|d| d.join(file))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| world_path(variable, file))
    })
}

/// The `proxy` world's component, found like the sink's (`$KINESIS_OUTPUT_PROXY_WASM`).
pub fn proxy_component() -> ComponentSource {
    world_source(
        "KINESIS_OUTPUT_PROXY_WASM",
        built_in::PROXY,
        "kinesis_output_proxy.wasm",
    )
}

fn world_source(variable: &str, built_in: Option<&'static [u8]>, file: &str) -> ComponentSource {
    choose(named_file(variable), built_in, || world_path(variable, file))
}

/// The file a variable names; an empty variable names none.
fn named_file(variable: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(variable).filter(|v| !v.is_empty())
}

/// The order: the variable's file, the built-in copy, the file found beside.
fn choose(
    named: Option<std::ffi::OsString>,
    built_in: Option<&'static [u8]>,
    beside: impl FnOnce() -> PathBuf,
) -> ComponentSource {
    match (named, built_in) {
        (Some(path), _) => ComponentSource::File(PathBuf::from(path)),
        (None, Some(bytes)) => ComponentSource::BuiltIn(bytes),
        (None, None) => ComponentSource::File(beside()),
    }
}

/// The `sink` world's component file: `$KINESIS_OUTPUT_WASM`, else `kinesis_output.wasm` beside
/// the running executable, else the workspace's `dist/` (where `make component` puts it).
pub fn component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_WASM", "kinesis_output.wasm")
}

/// The `proxy` world's component file: `$KINESIS_OUTPUT_PROXY_WASM`, else
/// `kinesis_output_proxy.wasm` beside the running executable, else in `dist/`.
pub fn proxy_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_PROXY_WASM", "kinesis_output_proxy.wasm")
}

/// The `command` world's component, found like the others.
pub fn command_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_COMMAND_WASM", "kinesis_output_command.wasm")
}

fn world_path(variable: &str, file: &str) -> PathBuf {
    if let Some(p) = named_file(variable) {
        return PathBuf::from(p);
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(file)))
        .filter(|p| p.is_file())
    {
        return beside;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist").join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_file_wins_over_the_built_in_copy_which_wins_over_a_file_beside() {
        let beside = || PathBuf::from("/beside/kinesis_output.wasm");
        let bytes: &'static [u8] = b"\0asm";
        assert_eq!(
            choose(Some("/named.wasm".into()), Some(bytes), beside),
            ComponentSource::File("/named.wasm".into())
        );
        assert_eq!(choose(None, Some(bytes), beside), ComponentSource::BuiltIn(bytes));
        assert_eq!(choose(None, None, beside), ComponentSource::File(beside()));
    }

    #[test]
    fn a_source_describes_where_it_is_and_its_digest() {
        let built_in = ComponentSource::BuiltIn(b"abc");
        assert_eq!(
            built_in.describe(),
            "built in, sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let missing = ComponentSource::File("/no/such/component.wasm".into());
        assert_eq!(missing.describe(), "/no/such/component.wasm (not found)");
        let e = missing.bytes().unwrap_err();
        assert!(format!("{e:#}").contains("/no/such/component.wasm"), "{e:#}");
    }
}
