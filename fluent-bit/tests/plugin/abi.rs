//! A test host playing Fluent Bit's side of the Go-proxy ABI: register, init with properties
//! through a fake API table, flushes of both event formats, several contexts, concurrent
//! flushes, exit.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Arc;

use flb_out_kinesis_wasm::abi::{Api, OutputPlugin, ProxyContext, ProxyDef};
use host_tests::kinesalite::Kinesalite;
use serde_json::{json, Value};

use super::msgpack;

type Register = unsafe extern "C" fn(*mut ProxyDef) -> c_int;
type Init = unsafe extern "C" fn(*mut OutputPlugin) -> c_int;
type Flush = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *const c_char) -> c_int;
type Exit = unsafe extern "C" fn(*mut c_void) -> c_int;

const FLB_ERROR: c_int = 0;
const FLB_OK: c_int = 1;
const FLB_RETRY: c_int = 2;

/// One `[OUTPUT]` section's properties, which the fake `output_get_property` reads.
struct Properties(HashMap<String, CString>);

unsafe extern "C" fn get_property(key: *const c_char, o_ins: *mut c_void) -> *const c_char {
    let props = &*(o_ins as *const Properties);
    let key = CStr::from_ptr(key).to_string_lossy().to_ascii_lowercase();
    props.0.get(&key).map_or(std::ptr::null(), |v| v.as_ptr())
}

/// The plugin, loaded like Fluent Bit loads it.
struct Plugin {
    _lib: libloading::Library,
    init: Init,
    flush: Flush,
    exit: Exit,
}

/// An initialised output: its context pointer.
#[derive(Clone, Copy)]
struct Context(*mut c_void);
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Plugin {
    fn load() -> Plugin {
        // SAFETY: the plugin is our own library; its symbols have the declared signatures.
        unsafe {
            let lib = libloading::Library::new(super::plugin_library()).expect("the plugin loads");
            let register: Register = *lib.get(b"FLBPluginRegister").unwrap();
            let mut def = ProxyDef {
                kind: 0,
                proxy: 0,
                flags: 0,
                name: std::ptr::null_mut(),
                description: std::ptr::null_mut(),
                event_type: 0,
                config_map: std::ptr::null_mut(),
            };
            assert_eq!(register(&mut def), 0);
            assert_eq!((def.kind, def.proxy), (2, 11), "an output through the Go proxy");
            assert_eq!(CStr::from_ptr(def.name).to_str().unwrap(), "kinesis_wasm");
            Plugin {
                init: *lib.get(b"FLBPluginInit").unwrap(),
                flush: *lib.get(b"FLBPluginFlushCtx").unwrap(),
                exit: *lib.get(b"FLBPluginExitCtx").unwrap(),
                _lib: lib,
            }
        }
    }

    /// `FLBPluginInit` with `properties`; the context, or the code Fluent Bit got.
    fn init(&self, properties: &[(&str, String)]) -> Result<Context, c_int> {
        let props = Box::leak(Box::new(Properties(
            properties
                .iter()
                .map(|(k, v)| (k.to_string(), CString::new(v.as_str()).unwrap()))
                .collect(),
        )));
        let api = Box::leak(Box::new(Api {
            output_get_property: Some(get_property),
            input_get_property: None,
            output_get_cmt_instance: None,
            input_get_cmt_instance: None,
            log_print: None,
            input_log_check: None,
            output_log_check: None,
            custom_get_property: None,
            custom_log_check: None,
        }));
        let context = Box::leak(Box::new(ProxyContext {
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        }));
        let mut plugin = OutputPlugin {
            name: c"kinesis_wasm".as_ptr() as *mut c_char,
            api,
            o_ins: props as *mut Properties as *mut c_void,
            context,
        };
        // SAFETY: every pointer lives for the rest of the test process.
        let code = unsafe { (self.init)(&mut plugin) };
        if code == FLB_OK {
            Ok(Context(context.remote_context))
        } else {
            Err(code)
        }
    }

    fn flush(&self, ctx: Context, chunk: &[u8], tag: &str) -> c_int {
        let tag = CString::new(tag).unwrap();
        // SAFETY: a context from init, a chunk and a tag alive for the call.
        unsafe { (self.flush)(ctx.0, chunk.as_ptr() as *const c_void, chunk.len(), tag.as_ptr()) }
    }

    fn exit(&self, ctx: Context) -> c_int {
        // SAFETY: a context from init, not used again.
        unsafe { (self.exit)(ctx.0) }
    }
}

fn properties(k: &Kinesalite, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    properties_for(&k.stream, &format!("http://127.0.0.1:{}", k.port), extra)
}

/// An output's properties for `stream` at `endpoint` (keys the fakes know), `extra` over them.
fn properties_for(stream: &str, endpoint: &str, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut props: Vec<(&'static str, String)> = vec![
        ("stream_name", stream.to_string()),
        ("region", "us-east-1".into()),
        ("endpoint", endpoint.to_string()),
        ("partition_key", "pod".into()),
        ("aws_key_id", "AKIDPLUGIN".into()),
        ("aws_sec_key", "plugin-secret-value".into()),
        (
            "component",
            host_tests::runtime::component_path().display().to_string(),
        ),
    ];
    for (key, v) in extra {
        let key: &'static str = Box::leak(key.to_string().into_boxed_str());
        props.retain(|(k, _)| *k != key);
        props.push((key, v.to_string()));
    }
    props
}

fn stored_json(k: &Kinesalite) -> Vec<Value> {
    k.read()
        .into_iter()
        .map(|(data, _)| serde_json::from_slice(&data).unwrap())
        .collect()
}

#[test]
fn flushes_of_both_event_formats_are_answered_by_the_rule() {
    host_tests::transcript::secret("plugin-secret-value");
    let k = Kinesalite::start("plugin-abi");
    let dir = std::env::temp_dir().join(format!("kinesis-wasm-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead-letters.ndjson");
    let _ = std::fs::remove_file(&dead);
    let plugin = Plugin::load();
    let ctx = plugin
        .init(&properties(
            &k,
            &[
                ("dead_letter_file", dead.to_str().unwrap()),
                ("retries_on_batch_request", "0"),
            ],
        ))
        .expect("init");

    // [time, record]: every record stored.
    let mut chunk = Vec::new();
    for i in 0..3 {
        msgpack::event(
            &mut chunk,
            1_700_000_000 + i,
            false,
            &[("pod", "web-1"), ("log", &format!("line {i} é"))],
        );
    }
    assert_eq!(plugin.flush(ctx, &chunk, "kube.web"), FLB_OK);
    let stored = stored_json(&k);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0], json!({"pod": "web-1", "log": "line 0 é"}));

    // [[time, metadata], record], one without its partition key: some stored, so OK; the other
    // is dead-lettered with its code.
    let mut chunk = Vec::new();
    msgpack::event(
        &mut chunk,
        1_700_000_010,
        true,
        &[("pod", "web-2"), ("log", "kept")],
    );
    msgpack::event(&mut chunk, 1_700_000_011, true, &[("log", "no key")]);
    assert_eq!(plugin.flush(ctx, &chunk, "kube.web"), FLB_OK);
    assert_eq!(stored_json(&k).len(), 4);
    let letters: Vec<Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["code"], "NoPartitionKey");
    assert_eq!(letters[0]["outcome"], "rejected");
    assert_eq!(letters[0]["tag"], "kube.web");
    assert_eq!(letters[0]["time"], "1700000011.000000000");
    assert_eq!(letters[0]["record"], json!({"log": "no key"}));

    // Every record rejected: FLB_ERROR (a retry cannot help), all dead-lettered.
    let mut chunk = Vec::new();
    msgpack::event(&mut chunk, 1_700_000_020, false, &[("log", "a")]);
    msgpack::event(&mut chunk, 1_700_000_021, false, &[("log", "b")]);
    assert_eq!(plugin.flush(ctx, &chunk, "kube.web"), FLB_ERROR);
    assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 3);

    // A chunk that is not msgpack events: FLB_ERROR, nothing sent.
    assert_eq!(plugin.flush(ctx, &[0x92, 0xc1], "kube.web"), FLB_ERROR);
    assert_eq!(stored_json(&k).len(), 4);
    assert_eq!(plugin.exit(ctx), FLB_OK);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_stored_and_a_retryable_failure_asks_fluent_bit_to_retry() {
    let k = Kinesalite::start("plugin-retry");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plugin = Plugin::load();
    let ctx = plugin
        .init(&properties(
            &k,
            &[
                ("endpoint", &format!("http://127.0.0.1:{closed}")),
                ("retries_on_batch_request", "0"),
            ],
        ))
        .expect("init");
    let mut chunk = Vec::new();
    msgpack::event(&mut chunk, 1_700_000_000, false, &[("pod", "a"), ("log", "x")]);
    assert_eq!(
        plugin.flush(ctx, &chunk, "t"),
        FLB_RETRY,
        "a refused connection stored nothing"
    );
    assert_eq!(plugin.exit(ctx), FLB_OK);
}

#[test]
fn a_bad_configuration_refuses_init() {
    let k = Kinesalite::start("plugin-bad");
    let plugin = Plugin::load();
    assert_eq!(
        plugin.init(&properties(&k, &[("region", "nowhere 1")])).err(),
        Some(FLB_ERROR)
    );
    assert_eq!(
        plugin.init(&properties(&k, &[("format", "json")])).err(),
        Some(FLB_ERROR)
    );
}

#[test]
fn several_outputs_flush_concurrently_and_every_record_is_stored_once() {
    let a = Kinesalite::start("plugin-a");
    let b = Kinesalite::start("plugin-b");
    let plugin = Arc::new(Plugin::load());
    let ctx_a = plugin.init(&properties(&a, &[])).expect("init a");
    let ctx_b = plugin.init(&properties(&b, &[])).expect("init b");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for c in 0..5 {
                    let ctx = if (t + c) % 2 == 0 { ctx_a } else { ctx_b };
                    let mut chunk = Vec::new();
                    for i in 0..20 {
                        let log = format!("thread {t} chunk {c} record {i}");
                        msgpack::event(
                            &mut chunk,
                            1_700_000_000,
                            i % 2 == 0,
                            &[("pod", "p"), ("log", &log)],
                        );
                    }
                    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_OK);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all: Vec<String> = stored_json(&a)
        .into_iter()
        .chain(stored_json(&b))
        .map(|v| v["log"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 4 * 5 * 20);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4 * 5 * 20, "no record twice");
    assert_eq!(plugin.exit(ctx_a), FLB_OK);
    assert_eq!(plugin.exit(ctx_b), FLB_OK);
}

#[test]
fn a_trap_in_a_flush_is_answered_and_the_next_flush_gets_a_new_instance() {
    let k = Kinesalite::start("plugin-trap");
    let plugin = Plugin::load();
    let ctx = plugin
        .init(&properties(&k, &[("max_memory", "3")]))
        .expect("init");
    let mut big = Vec::new();
    let log = "x".repeat(20_000);
    for _ in 0..150 {
        msgpack::event(&mut big, 1_700_000_000, false, &[("pod", "p"), ("log", &log)]);
    }
    assert_eq!(
        plugin.flush(ctx, &big, "t"),
        FLB_RETRY,
        "nothing was stored before the trap"
    );
    let mut small = Vec::new();
    msgpack::event(
        &mut small,
        1_700_000_000,
        false,
        &[("pod", "p"), ("log", "small")],
    );
    assert_eq!(plugin.flush(ctx, &small, "t"), FLB_OK);
    assert_eq!(stored_json(&k).len(), 1);
    assert_eq!(plugin.exit(ctx), FLB_OK);
}

#[test]
fn tls_ca_file_trusts_a_private_ca_and_tls_verify_off_trusts_anything() {
    use host_tests::fake_kinesis::FakeKinesis;
    use host_tests::listener::{serve_tls, TestCa};
    let ca = TestCa::new();
    let fake = Arc::new(FakeKinesis::new(
        "plugin-tls",
        "AKIDPLUGIN",
        "plugin-secret-value",
    ));
    let listener = serve_tls(fake.clone(), "127.0.0.1:0".parse().unwrap(), &ca).unwrap();
    let dir = std::env::temp_dir().join(format!("kinesis-wasm-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.ca_pem).unwrap();
    let endpoint = format!("https://{}", listener.addr);
    let props = |extra: &[(&str, &str)]| {
        let mut extra = extra.to_vec();
        extra.push(("retries_on_batch_request", "0"));
        properties_for("plugin-tls", &endpoint, &extra)
    };
    let mut chunk = Vec::new();
    msgpack::event(
        &mut chunk,
        1_700_000_000,
        false,
        &[("pod", "a"), ("log", "over TLS")],
    );
    let plugin = Plugin::load();

    // The public CAs do not know ours: the handshake fails, nothing is stored, Fluent Bit retries.
    let ctx = plugin.init(&props(&[])).expect("init");
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_RETRY);
    assert!(fake.stored().is_empty());

    // The dotted name, which hosts of the ABI other than Fluent Bit pass on.
    let ca_file = dir.join("ca.pem").display().to_string();
    let ctx = plugin
        .init(&props(&[("tls.ca_file", &ca_file)]))
        .expect("init with the CA");
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_OK);
    assert_eq!(fake.stored().len(), 1);

    let ctx = plugin
        .init(&props(&[("tls_verify", "off")]))
        .expect("init without verification");
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_OK);
    assert_eq!(fake.stored().len(), 2);

    let bad = dir.join("not-a-ca.pem");
    std::fs::write(&bad, "no certificate here").unwrap();
    let bad = bad.display().to_string();
    assert_eq!(
        plugin.init(&props(&[("tls_ca_file", &bad)])).err(),
        Some(FLB_ERROR)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refusal_with_nothing_stored_is_retried_as_the_proxy_world_answers_it() {
    use host_tests::fake_kinesis::{FakeKinesis, Fault};
    let fake = Arc::new(FakeKinesis::new(
        "plugin-refused",
        "AKIDPLUGIN",
        "plugin-secret-value",
    ));
    let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let plugin = Plugin::load();
    let props = properties_for("plugin-refused", &format!("http://{}", listener.addr), &[]);
    let ctx = plugin.init(&props).expect("init");
    let mut chunk = Vec::new();
    msgpack::event(&mut chunk, 1_700_000_000, false, &[("pod", "a"), ("log", "x")]);
    // AccessDenied until the operator fixes the role: nothing stored, so Fluent Bit may retry.
    fake.script([Fault::AccessDenied]);
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_RETRY);
    assert!(fake.stored().is_empty());
    // Fixed: the retry stores it.
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_OK);
    assert_eq!(fake.stored().len(), 1);
    assert_eq!(plugin.exit(ctx), FLB_OK);
}

fn dead_letters(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Through a throttling storm, a chunk is answered FLB_RETRY while records of it are not
/// stored, and each retry sends only those; with `state_dir` a new output (Fluent Bit started
/// again) remembers what the old one stored. Once the storm ends every record is stored once,
/// and nothing is dead-lettered.
#[test]
fn a_retry_sends_only_what_was_not_stored_and_state_dir_remembers_it_across_a_restart() {
    use host_tests::fake_kinesis::{FakeKinesis, RandomFaults};
    let storm = RandomFaults {
        throttle_records: 0.8,
        ..RandomFaults::default()
    };
    let fake = Arc::new(
        FakeKinesis::new("plugin-storm", "AKIDPLUGIN", "plugin-secret-value").with_random_faults(storm, 11),
    );
    let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("kinesis-wasm-storm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (state, dead) = (dir.join("state"), dir.join("dead.ndjson"));
    let props = properties_for(
        "plugin-storm",
        &format!("http://{}", listener.addr),
        &[
            ("state_dir", state.to_str().unwrap()),
            ("dead_letter_file", dead.to_str().unwrap()),
            ("retries_on_batch_request", "1"),
            ("retry_base_delay", "0.01"),
        ],
    );
    const RECORDS: usize = 300;
    let mut chunk = Vec::new();
    for i in 0..RECORDS {
        msgpack::event(
            &mut chunk,
            1_700_000_000,
            i % 2 == 0,
            &[("pod", "p"), ("log", &format!("record {i}"))],
        );
    }
    let plugin = Plugin::load();
    let first = plugin.init(&props).expect("init");
    assert_eq!(plugin.flush(first, &chunk, "kube.storm"), FLB_RETRY);
    let after_first = fake.stored().len();
    assert!(after_first > 0 && after_first < RECORDS, "{after_first} stored");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        1,
        "the chunk is on disk"
    );
    assert_eq!(plugin.exit(first), FLB_OK);

    // Fluent Bit started again: a new output over the same state_dir, the same chunk.
    let second = plugin.init(&props).expect("init again");
    let sent_before = fake.seen().iter().map(|s| s.records).sum::<usize>();
    assert_eq!(plugin.flush(second, &chunk, "kube.storm"), FLB_RETRY);
    let resent: usize = fake.seen().iter().map(|s| s.records).sum::<usize>() - sent_before;
    assert!(
        resent <= 2 * (RECORDS - after_first),
        "only the records not stored went again (two rounds of at most {}): {resent}",
        RECORDS - after_first
    );
    // The storm ends.
    fake.set_random_faults(RandomFaults::default());
    let mut code = FLB_RETRY;
    for _ in 0..5 {
        code = plugin.flush(second, &chunk, "kube.storm");
        if code != FLB_RETRY {
            break;
        }
    }
    assert_eq!(code, FLB_OK);
    let stored = fake.stored();
    assert_eq!(stored.len(), RECORDS, "every record once");
    let mut data: Vec<Vec<u8>> = stored.into_iter().map(|s| s.data).collect();
    data.sort();
    data.dedup();
    assert_eq!(data.len(), RECORDS);
    assert!(dead_letters(&dead).is_empty(), "nothing given up");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "the finished chunk is forgotten"
    );
    assert_eq!(plugin.exit(second), FLB_OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The plugin bounds retries itself (Fluent Bit never says it dropped a chunk): past
/// `buffer.retry_max_times` what is left is final, dead-lettered once; with the seed's
/// `drop_failed_records_after_batch_request_retries` at once.
#[test]
fn past_the_retry_bound_records_are_dead_lettered_once() {
    use host_tests::fake_kinesis::{FakeKinesis, RandomFaults};
    let fake = Arc::new(
        FakeKinesis::new("plugin-bound", "AKIDPLUGIN", "plugin-secret-value").with_random_faults(
            RandomFaults {
                throttle_records: 1.0,
                ..RandomFaults::default()
            },
            5,
        ),
    );
    let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("kinesis-wasm-bound-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead.ndjson");
    let mut chunk = Vec::new();
    for i in 0..4 {
        msgpack::event(
            &mut chunk,
            1_700_000_000,
            false,
            &[("pod", "p"), ("log", &format!("r{i}"))],
        );
    }
    let plugin = Plugin::load();
    let endpoint = format!("http://{}", listener.addr);
    let ctx = plugin
        .init(&properties_for(
            "plugin-bound",
            &endpoint,
            &[
                ("dead_letter_file", dead.to_str().unwrap()),
                ("retries_on_batch_request", "0"),
                ("buffer", r#"{"retry_max_times": 1}"#),
            ],
        ))
        .expect("init");
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_RETRY);
    assert!(dead_letters(&dead).is_empty());
    assert_eq!(
        plugin.flush(ctx, &chunk, "t"),
        FLB_ERROR,
        "nothing stored, nothing more to try"
    );
    let letters = dead_letters(&dead);
    assert_eq!(letters.len(), 4);
    assert!(letters
        .iter()
        .all(|l| l["code"] == "ProvisionedThroughputExceededException"
            && l["message"].as_str().unwrap().contains("retry_max_times")));
    assert_eq!(plugin.exit(ctx), FLB_OK);

    let seed = plugin
        .init(&properties_for(
            "plugin-bound",
            &endpoint,
            &[
                ("dead_letter_file", dead.to_str().unwrap()),
                ("retries_on_batch_request", "0"),
                ("drop_failed_records_after_batch_request_retries", "true"),
            ],
        ))
        .expect("init");
    assert_eq!(plugin.flush(seed, &chunk, "t"), FLB_ERROR);
    assert_eq!(dead_letters(&dead).len(), 8);
    assert_eq!(plugin.exit(seed), FLB_OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hostile chunks through the ABI: map keys that are maps nested 28 deep (51 bytes that used to
/// render a key doubling per level, 4 GB in Fluent Bit), a record nested 10,000 deep, a record
/// over the size limit, group markers and a chunk that breaks off: each record gets its own
/// outcome, the good ones are stored, nothing falls over.
#[test]
fn hostile_chunks_get_an_outcome_per_record_and_the_rest_ships() {
    use host_tests::fake_kinesis::FakeKinesis;
    let fake = Arc::new(FakeKinesis::new(
        "plugin-hostile",
        "AKIDPLUGIN",
        "plugin-secret-value",
    ));
    let listener = host_tests::listener::serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("kinesis-wasm-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead.ndjson");
    let plugin = Plugin::load();
    let ctx = plugin
        .init(&properties_for(
            "plugin-hostile",
            &format!("http://{}", listener.addr),
            &[
                ("dead_letter_file", dead.to_str().unwrap()),
                ("max_record_size", "1048576"),
            ],
        ))
        .expect("init");
    let mut chunk = Vec::new();
    msgpack::event(
        &mut chunk,
        1_700_000_000,
        false,
        &[("pod", "p"), ("log", "first")],
    );
    // {"pod": "p", K: 1} with K = {K': 1} …, 28 deep.
    chunk.extend([0x92, 0x01, 0x82, 0xa3, b'p', b'o', b'd', 0xa1, b'p']);
    chunk.extend(std::iter::repeat_n(0x81, 28));
    chunk.extend([0xa1, b'a']);
    chunk.extend(std::iter::repeat_n(0x01, 29));
    // A group start marker (OpenTelemetry): not a record.
    chunk.extend([
        0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0x80,
    ]);
    // 10,000 arrays deep.
    chunk.extend([0x92, 0x01, 0x82, 0xa3, b'p', b'o', b'd', 0xa1, b'p', 0xa1, b'k']);
    chunk.extend(std::iter::repeat_n(0x91, 10_000));
    chunk.push(0x01);
    // 17 MiB of log: over the 16 MiB a record's JSON may take.
    msgpack::event(
        &mut chunk,
        1_700_000_001,
        false,
        &[("pod", "p"), ("log", &"x".repeat(17 << 20))],
    );
    msgpack::event(&mut chunk, 1_700_000_002, false, &[("pod", "p"), ("log", "last")]);
    // And the chunk breaks off inside an event.
    chunk.extend([0x92, 0xd7, 0x00, 1, 2]);
    let started = std::time::Instant::now();
    assert_eq!(plugin.flush(ctx, &chunk, "t"), FLB_OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let stored: Vec<Value> = fake
        .stored()
        .iter()
        .map(|s| serde_json::from_slice(&s.data).unwrap())
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored[0]["log"], "first");
    let key = stored[1]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| *k != "pod")
        .unwrap()
        .clone();
    assert!(
        key.len() < 200,
        "the key is linear in its size: {} bytes",
        key.len()
    );
    assert_eq!(stored[2]["log"], "last");
    let letters = dead_letters(&dead);
    let codes: Vec<&str> = letters.iter().map(|l| l["code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["NotJson", "TooLarge", "NotJson"]);
    assert!(letters[2]["chunk_bytes_base64"].is_string());
    assert_eq!(plugin.exit(ctx), FLB_OK);
    let _ = std::fs::remove_dir_all(&dir);
}
