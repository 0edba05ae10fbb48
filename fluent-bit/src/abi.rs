//! Fluent Bit's side of the plugin: the Go-proxy interface, which any shared library exporting
//! these C symbols can implement (layouts as Fluent Bit 5.1 declares them). The only module with
//! `unsafe`: raw pointers from Fluent Bit are read here and nowhere else.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use crate::output::{Flushed, Level, Log, Output};

/// `struct flb_plugin_proxy_def`.
#[repr(C)]
pub struct ProxyDef {
    pub kind: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *mut c_char,
    pub description: *mut c_char,
    pub event_type: c_int,
    pub config_map: *mut c_void,
}

/// `struct flb_api`: the functions Fluent Bit lends its proxy plugins.
#[repr(C)]
pub struct Api {
    pub output_get_property: Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char>,
    pub input_get_property: Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char>,
    pub output_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub input_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub log_print: Option<unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...)>,
    pub input_log_check: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub output_log_check: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub custom_get_property: Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char>,
    pub custom_log_check: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
}

/// `struct flb_plugin_proxy_context`.
#[repr(C)]
pub struct ProxyContext {
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

/// `struct flbgo_output_plugin`, the part a plugin reads (Fluent Bit's callbacks follow).
#[repr(C)]
pub struct OutputPlugin {
    pub name: *mut c_char,
    pub api: *mut Api,
    pub o_ins: *mut c_void,
    pub context: *mut ProxyContext,
}

/// The plugin's name in Fluent Bit's configuration.
pub const NAME: &CStr = c"kinesis_wasm";
const DESCRIPTION: &CStr =
    c"Amazon Kinesis Data Streams and Firehose through the kinesis-output WebAssembly component";

/// Fluent Bit's return codes.
const FLB_OK: c_int = 1;
const FLB_ERROR: c_int = 0;
/// `FLB_PROXY_OUTPUT_PLUGIN`, `FLB_PROXY_GOLANG`.
const OUTPUT_PLUGIN: c_int = 2;
const GOLANG_PROXY: c_int = 11;

/// Fluent Bit's API table, kept for logging (it lives as long as Fluent Bit).
static API: AtomicPtr<Api> = AtomicPtr::new(std::ptr::null_mut());

/// Log through Fluent Bit's logger (stderr before it is known).
fn log(level: Level, message: &str) {
    let api = API.load(Ordering::Acquire);
    let line =
        CString::new(format!("[output:kinesis_wasm] {message}").replace('\0', " ")).expect("no NUL left");
    // SAFETY: `api` is the table Fluent Bit passed to init, alive while Fluent Bit runs; the
    // format is a literal "%s" with one C string argument.
    unsafe {
        if let Some(print) = api.as_ref().and_then(|a| a.log_print) {
            print(
                level as c_int,
                c"kinesis_wasm".as_ptr(),
                0,
                c"%s".as_ptr(),
                line.as_ptr(),
            );
            return;
        }
    }
    eprintln!("{}", line.to_string_lossy());
}

fn logger() -> Log {
    Arc::new(log)
}

/// Where this plugin's shared library is, to find the component beside it.
pub fn plugin_path() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let me = plugin_path as *const () as usize;
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (start, end) = parts.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        let path = parts.nth(4)?;
        (start <= me && me < end && path.starts_with('/')).then(|| PathBuf::from(path))
    })
}

/// Run `f`, turning a panic into `on_panic` (a panic must not cross into C).
fn guarded(what: &str, on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => {
            log(
                Level::Error,
                &format!("{what}: internal error (a panic); see the log above"),
            );
            on_panic
        }
    }
}

/// # Safety
/// `def` is the zeroed definition Fluent Bit passes at load.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    let Some(def) = def.as_mut() else {
        return -1;
    };
    def.kind = OUTPUT_PLUGIN;
    def.proxy = GOLANG_PROXY;
    def.flags = 0;
    // Fluent Bit keeps these for as long as it runs.
    def.name = NAME.as_ptr() as *mut c_char;
    def.description = DESCRIPTION.as_ptr() as *mut c_char;
    0
}

/// # Safety
/// `plugin` is the output plugin Fluent Bit passes to init, with its API table and instance.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut OutputPlugin) -> c_int {
    let Some(plugin) = plugin.as_mut() else {
        return FLB_ERROR;
    };
    API.store(plugin.api, Ordering::Release);
    let api = plugin.api;
    let o_ins = plugin.o_ins;
    let context = plugin.context;
    guarded("init", FLB_ERROR, move || {
        let mut property = |key: &str| -> Option<String> {
            let key = CString::new(key).ok()?;
            // SAFETY: Fluent Bit's own getter with its own instance; it returns NULL or a C string
            // it owns.
            unsafe {
                let get = (*api).output_get_property?;
                let value = get(key.as_ptr(), o_ins);
                (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned())
            }
        };
        let settings = match crate::settings::read(&mut property) {
            Ok(s) => s,
            Err(e) => {
                log(Level::Error, &e.to_string());
                return FLB_ERROR;
            }
        };
        kinesis_ship::engine::enable_code_cache();
        kinesis_ship::engine::disable_signal_handlers();
        // SAFETY: Fluent Bit's own getter with its own instance; null or its `struct cmt`.
        let metrics = unsafe {
            let cmt = (*api)
                .output_get_cmt_instance
                .map_or(std::ptr::null_mut(), |get| get(o_ins));
            crate::metrics::Metrics::new(cmt)
        };
        if metrics.is_none() {
            log(
                Level::Info,
                "no cmetrics from the host: counters only in the summary at exit",
            );
        }
        match Output::new(settings, logger(), metrics) {
            Ok(output) => {
                // SAFETY: the context Fluent Bit gave this instance; it hands the pointer back to
                // every flush and to exit.
                unsafe {
                    (*context).remote_context = Box::into_raw(Box::new(Arc::new(output))) as *mut c_void;
                }
                FLB_OK
            }
            Err(e) => {
                log(Level::Error, &e);
                FLB_ERROR
            }
        }
    })
}

/// # Safety
/// `ctx` is the remote context set at init; `data` holds `size` bytes; `tag` is a C string.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    ctx: *mut c_void,
    data: *const c_void,
    size: usize,
    tag: *const c_char,
) -> c_int {
    let Some(output) = (ctx as *const Arc<Output>).as_ref() else {
        log(Level::Error, "flush without a context");
        return Flushed::Retry.code();
    };
    let data = if data.is_null() || size == 0 {
        &[][..]
    } else {
        std::slice::from_raw_parts(data as *const u8, size)
    };
    let tag = if tag.is_null() {
        String::new()
    } else {
        CStr::from_ptr(tag).to_string_lossy().into_owned()
    };
    guarded("flush", Flushed::Retry.code(), || output.flush(data, &tag).code())
}

/// # Safety
/// `ctx` is the remote context set at init, not used again after this.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginExitCtx(ctx: *mut c_void) -> c_int {
    if !ctx.is_null() {
        let output = Box::from_raw(ctx as *mut Arc<Output>);
        log(Level::Info, &format!("stopping: {}", output.summary()));
        drop(output);
    }
    FLB_OK
}

#[no_mangle]
pub extern "C" fn FLBPluginExit() -> c_int {
    FLB_OK
}
