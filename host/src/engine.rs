//! The wasmtime engine: one per process, with compiled code kept in wasmtime's cache when the
//! program asks for it, and a linker holding WASI and wasi:http. Where the components are found.

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

/// Compile the component at `path` in a new engine, with a linker holding WASI and wasi:http.
pub(crate) fn compile<T: WasiView + WasiHttpView + 'static>(
    path: &Path,
) -> Result<(Engine, Component, Linker<T>)> {
    let engine = new_engine()?;
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the component {} (build it with `make component`)",
            path.display()
        )
    })?;
    let component = Component::new(&engine, &bytes).map_err(|e| anyhow!("compiling the component: {e}"))?;
    let linker = wasi_linker(&engine)?;
    Ok((engine, component, linker))
}

pub(crate) fn wasi_linker<T: WasiView + WasiHttpView + 'static>(engine: &Engine) -> Result<Linker<T>> {
    let mut linker = Linker::<T>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
    Ok(linker)
}

/// The `sink` world's component: `$KINESIS_OUTPUT_WASM`, else `kinesis_output.wasm` beside the
/// running executable, else the workspace's `dist/` (where `make component` puts it).
pub fn component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_WASM", "kinesis_output.wasm")
}

/// The `proxy` world's component: `$KINESIS_OUTPUT_PROXY_WASM`, else
/// `kinesis_output_proxy.wasm` beside the running executable, else in `dist/`.
pub fn proxy_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_PROXY_WASM", "kinesis_output_proxy.wasm")
}

/// The `command` world's component, found like the others.
pub fn command_component_path() -> PathBuf {
    world_path("KINESIS_OUTPUT_COMMAND_WASM", "kinesis_output_command.wasm")
}

fn world_path(variable: &str, file: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(variable) {
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
