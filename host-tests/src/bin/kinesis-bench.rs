//! `kinesis-bench`: `make bench`. Side by side in one run: the native core, the component in
//! wasmtime, the floor (base64 + framing + SHA-256 in wasm), kinesis-ship end to end against a
//! plain local sink, the AWS SDK for JavaScript v3 against the same sink, and Fluent Bit with
//! the kinesis_wasm plugin beside Fluent Bit with its native kinesis_streams. Prints a
//! Markdown table with ratios and writes it to `target/bench/results.md`.
//!
//! `kinesis-bench [--quick]`: `--quick` runs 10,000 records a workload once (a smoke test).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use host_tests::bench::{self, cpu_time, median, records, rss_kib, InstantKinesis, NativePlatform, Workload};
use host_tests::runtime::{
    Event, Instance, InstanceOptions, Outcome, PackedEvents, Runtime, SinkHandle, Timestamp, Upstream,
};
use kinesis_output::Sink;

/// Records handed to one `put`.
const CHUNK: usize = 1000;
/// Requests in flight, for us and the peer alike.
const CONCURRENCY: usize = 4;

struct Settings {
    records: usize,
    reps: usize,
    soak_records: usize,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("kinesis-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only cpu|e2e|order|fluent-bit|memory`: one section (sizes and instantiation always run).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let section = |name: &str| only.as_deref().is_none_or(|o| o == name);
    // `--profile-native SIZE N [gzip]`: only the native core on one workload, for callgrind.
    if let Some(w) = profile_workload(&args, "--profile-native") {
        let cpu = native_run(&w, &records(w.size, w.records))?;
        println!(
            "native: {:.2} µs CPU per record",
            cpu.as_secs_f64() / w.records as f64 * 1e6
        );
        return Ok(());
    }
    // `--profile-component SIZE N [gzip]`: only the component on one workload, for `perf record`
    // with `KINESIS_WASM_PROFILE=perfmap` (names come from an unstripped build).
    // With `--no-signal-handlers`, as inside Fluent Bit: explicit bounds checks.
    if let Some(w) = profile_workload(&args, "--profile-component") {
        if args.iter().any(|a| a == "--no-signal-handlers") {
            kinesis_ship::engine::disable_signal_handlers();
        }
        let runtime = Runtime::load(&host_tests::runtime::component_path())?;
        let (cpu, _, _) = component_run(&runtime, &w, &records(w.size, w.records)).await?;
        println!(
            "component: {:.2} µs CPU per record",
            cpu.as_secs_f64() / w.records as f64 * 1e6
        );
        return Ok(());
    }
    let settings = if quick {
        Settings {
            records: 10_000,
            reps: 1,
            soak_records: 50_000,
        }
    } else {
        Settings {
            records: 100_000,
            reps: 3,
            soak_records: 1_000_000,
        }
    };
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let mut report = String::new();
    let mut targets = Targets::default();
    let mut say = |line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };

    say(format!(
        "kinesis-bench: {} records a workload, median of {} run(s), {} requests in flight, {} records a put; CPU is user + system time of the whole process.\n",
        settings.records, settings.reps, CONCURRENCY, CHUNK
    ));

    // Sizes and instantiation.
    say("## Component\n".into());
    say("| world | bytes | KiB |".into());
    say("| --- | ---: | ---: |".into());
    for (world, file) in [
        ("sink", "kinesis_output.wasm"),
        ("proxy", "kinesis_output_proxy.wasm"),
        ("command", "kinesis_output_command.wasm"),
    ] {
        let bytes = std::fs::metadata(root().join("dist").join(file))
            .with_context(|| format!("dist/{file}: run `make component`"))?
            .len();
        say(format!("| {world} | {bytes} | {:.0} |", bytes as f64 / 1024.0));
        if world == "sink" {
            targets.check(
                "(issue 17) sink world ≤ 512 KiB after wasm-opt (KiB)".into(),
                bytes as f64 / 1024.0,
                512.0,
                "code the sink needs whatever its speed: Rust's core and alloc, serde_json, http, aws-sigv4 (README \"Sizes\")".into(),
            );
        }
    }
    let inst = instantiation().await?;
    say(format!(
        "\nInstantiation: compile (Cranelift) {:.1} ms; deserialize precompiled code {:.2} ms; instantiate from `InstancePre` {:.1} µs; `open` {:.1} µs (medians).\n",
        inst.compile.as_secs_f64() * 1e3,
        inst.deserialize.as_secs_f64() * 1e3,
        inst.instantiate.as_secs_f64() * 1e6,
        inst.open.as_secs_f64() * 1e6,
    ));

    // The core natively, the component, the floor.
    let runtime = Runtime::load(&host_tests::runtime::component_path())?;
    let floor = Floor::load()?;
    let mut workloads = Vec::new();
    for size in [200, 1024, 10 * 1024] {
        for gzip in [false, true] {
            for partition_key in [false, true] {
                workloads.push(Workload {
                    size,
                    partition_key,
                    gzip,
                    zstd: false,
                    records: settings.records,
                });
            }
        }
        if size == 200 {
            // zstd, measured beside gzip (issue 17's fourth target asks for it).
            workloads.push(Workload {
                size,
                partition_key: false,
                gzip: false,
                zstd: true,
                records: settings.records,
            });
        }
    }
    // The component's µs per record by workload, for the end-to-end bound.
    let mut component_us = std::collections::HashMap::new();
    if section("cpu") {
        say("## CPU per record: the core natively, in wasmtime, and the floor\n".into());
        say("| workload | native µs | component µs | wasm/native throughput | floor µs (host hash) | component / floor | floor µs (hash in wasm) | peak linear memory | largest request |".into());
        say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".into());
        for w in &workloads {
            let data = records(w.size, w.records);
            let native = repeat(settings.reps, w.records, || native_run(w, &data))?;
            let mut component = Vec::new();
            let mut memory = 0;
            let mut largest = 0;
            for _ in 0..settings.reps {
                let (cpu, peak, big) = component_run(&runtime, w, &data).await?;
                component.push(cpu);
                memory = memory.max(peak);
                largest = largest.max(big);
            }
            let component = per_record(&component, w.records);
            component_us.insert(w.name(), component);
            // What compression alone costs natively, with the library the component uses.
            let deflate_us = (w.gzip && !w.zstd).then(|| deflate_alone(&data));
            // The floor hashing as the sink world does (through the host), and in wasm.
            let (floor_us, wasm_floor_us) = if w.compressed() {
                (None, None)
            } else {
                let (mut host, mut wasm) = (Vec::new(), Vec::new());
                for _ in 0..settings.reps {
                    host.push(floor.run(w.size, w.records, true).await?);
                    wasm.push(floor.run(w.size, w.records, false).await?);
                }
                (
                    Some(per_record(&host, w.records)),
                    Some(per_record(&wasm, w.records)),
                )
            };
            say(format!(
                "| {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.1} MiB | {:.2} MiB |",
                w.name(),
                native,
                component,
                native / component,
                floor_us.map_or("".into(), |f| format!("{f:.2}")),
                floor_us.map_or("".into(), |f| format!("{:.2}", component / f)),
                wasm_floor_us.map_or("".into(), |f| format!("{f:.2}")),
                memory as f64 / 1048576.0,
                largest as f64 / 1048576.0,
            ));
            if w.size == 200 && !w.compressed() {
                targets.check_at_least(
                    format!("2. component wasm/native throughput, {}", w.name()),
                    native / component,
                    0.8,
                    "wasm code against the same Rust natively (Cranelift, no SIMD in the guest); inside Fluent Bit explicit bounds checks cost a sixth more (`kinesis-bench --profile-component 200 100000 --no-signal-handlers`)".into(),
                );
                if let Some(f) = floor_us {
                    targets.check(
                        format!("2. component / floor (same hashing path), {}", w.name()),
                        component / f,
                        3.0,
                        format!(
                            "the native core alone: {:.2}× the floor (formatting, keys, batching, outcomes)",
                            native / f
                        ),
                    );
                }
            }
            if w.zstd {
                targets.check(
                    format!("(issue 17) zstd µs per record (goal as gzip's), {}", w.name()),
                    component,
                    5.0,
                    format!(
                        "zstd alone (ruzstd, the component's library, level Fastest), natively: {:.2} µs",
                        zstd_alone(&data)
                    ),
                );
            }
            if w.gzip && w.size == 200 {
                targets.check(
                    format!("(issue 17) gzip ≤ 5 µs per record, {}", w.name()),
                    component,
                    5.0,
                    format!(
                        "gzip alone (level 6, Fluentd's), natively with the same library: {:.2} µs",
                        deflate_us.unwrap_or(f64::NAN)
                    ),
                );
            }
            if w.size == 10 * 1024 && !w.compressed() && w.partition_key {
                targets.check(
                    "3. peak linear memory ≤ 3× the largest request, 10 KiB".into(),
                    memory as f64 / largest.max(1) as f64,
                    3.0,
                    format!(
                        "a put's records, lifted into linear memory for the whole put: {:.2}× the largest request",
                        data.iter().take(CHUNK).map(|d| d.len()).sum::<usize>() as f64 / largest.max(1) as f64
                    ),
                );
            }
        }
    }

    if section("cpu") {
        // The two ways into the component, side by side on the smallest records (where the
        // boundary weighs most).
        let w = &workloads[0];
        let data = records(w.size, w.records);
        let config = w.config("http://kinesis.bench:4567", CONCURRENCY);
        let (mut typed, mut packed_) = (Vec::new(), Vec::new());
        for _ in 0..settings.reps {
            let (_u, mut instance, sink) = instant_sink(&runtime, &config).await?;
            typed.push(put_all_typed(&mut instance, sink, &data).await?);
            let (_u, mut instance, sink) = instant_sink(&runtime, &config).await?;
            packed_.push(put_all(&mut instance, sink, &data).await?);
        }
        let (typed, packed_) = (per_record(&typed, w.records), per_record(&packed_, w.records));
        say(format!(
            "\nThe boundary, {}: `put(list<event>)` {typed:.2} µs CPU per record, `put-packed` {packed_:.2} µs ({:.2}×).\n",
            w.name(),
            typed / packed_
        ));
    }

    // End to end against a plain local sink, and the peer.
    if section("e2e") {
        say("\n## End to end: NDJSON file → kinesis-ship → local sink, and the AWS SDK for JavaScript v3 → the same sink\n".into());
        let received = Arc::new(bench::sink::Received::default());
        let addr = bench::sink::start(received.clone()).await?;
        let endpoint = format!("http://{addr}");
        let ship = ship_path()?;
        let js = js_ready()?;
        let cold = ship_idle_cpu(&ship, &out_dir, &endpoint, false)?;
        let idle = ship_idle_cpu(&ship, &out_dir, &endpoint, true)?;
        say(format!(
            "kinesis-ship's fixed cost (start, load the component, empty input): {:.0} ms CPU with the compiled-code cache (the runs below), {:.0} ms CPU compiling with Cranelift (`KINESIS_SHIP_NO_CODE_CACHE=1`).\n",
            idle.as_secs_f64() * 1e3,
            cold.as_secs_f64() * 1e3
        ));
        say("| workload | ours records/s | ours MB/s | ours µs CPU/record | ours µs CPU/record without the fixed cost | JS SDK records/s | JS SDK µs CPU/record | records/s ours/JS | CPU/record JS/ours | sink µs CPU/record (ours, JS) | cores busy (ours, JS) | ours, 2 flush threads: records/s, µs CPU/record | records/s ours (2 threads)/JS |".into());
        say(
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
                .into(),
        );
        for w in workloads.iter().filter(|w| !w.compressed()) {
            let data = records(w.size, w.records);
            let file = out_dir.join(format!("input-{}.ndjson", w.size));
            let mut text = Vec::with_capacity(data.iter().map(|d| d.len() + 1).sum());
            for d in &data {
                text.extend_from_slice(d);
                text.push(b'\n');
            }
            std::fs::write(&file, &text)?;
            let mut ours_wall = Vec::new();
            let mut ours_cpu = Vec::new();
            let mut js_wall = Vec::new();
            let mut js_cpu = Vec::new();
            // The sink runs in this process: its CPU beside each client (the machine has 2 cores
            // for client and sink together).
            let mut ours_sink = Vec::new();
            let mut js_sink = Vec::new();
            // kinesis-ship with two flush threads (`buffer.flush_thread_count`), 2 requests in
            // flight each.
            let mut two_wall = Vec::new();
            let mut two_cpu = Vec::new();
            // kinesis-ship with `threads` flush threads, every record checked at the sink.
            let ship_counted = |threads: usize| -> Result<(Duration, Duration)> {
                let before = received.records.load(Ordering::Relaxed);
                let run = ship_run(&ship, w, &out_dir, &endpoint, &file, threads)?;
                let got = received.records.load(Ordering::Relaxed) - before;
                if got != w.records as u64 {
                    bail!(
                        "the sink received {got} of {} records from kinesis-ship with {threads} flush thread(s)",
                        w.records
                    );
                }
                Ok(run)
            };
            for _ in 0..settings.reps {
                let (wall, cpu) = ship_counted(2)?;
                two_wall.push(wall.as_secs_f64());
                two_cpu.push(cpu.as_secs_f64());
                let sink_before = cpu_time(false);
                let (wall, cpu) = ship_counted(1)?;
                ours_sink.push((cpu_time(false) - sink_before).as_secs_f64());
                ours_wall.push(wall.as_secs_f64());
                ours_cpu.push(cpu.as_secs_f64());
                if let Some(js) = &js {
                    // The peer failing is reported in its columns, not the end of the run.
                    let before = received.records.load(Ordering::Relaxed);
                    let sink_before = cpu_time(false);
                    match js_run(js, w, &endpoint, &file) {
                        Ok((wall, cpu)) => {
                            js_sink.push((cpu_time(false) - sink_before).as_secs_f64());
                            let got = received.records.load(Ordering::Relaxed) - before;
                            if got != w.records as u64 {
                                bail!("the sink received {got} of {} records from the JS SDK", w.records);
                            }
                            js_wall.push(wall.as_secs_f64());
                            js_cpu.push(cpu.as_secs_f64());
                        }
                        Err(e) => eprintln!("kinesis-bench: the JS SDK run failed: {e:#}"),
                    }
                }
            }
            let n = w.records as f64;
            let wall = median(&mut ours_wall);
            let cpu = median(&mut ours_cpu);
            let ours_rps = n / wall;
            let ours_us = cpu / n * 1e6;
            let ours_net = (cpu - idle.as_secs_f64()).max(0.0) / n * 1e6;
            let (js_rps, js_us, js_sink_us) = if js_wall.is_empty() {
                (f64::NAN, f64::NAN, f64::NAN)
            } else {
                (
                    n / median(&mut js_wall),
                    median(&mut js_cpu) / n * 1e6,
                    median(&mut js_sink) / n * 1e6,
                )
            };
            let ours_sink_us = median(&mut ours_sink) / n * 1e6;
            let two_rps = n / median(&mut two_wall);
            let two_us = median(&mut two_cpu) / n * 1e6;
            say(format!(
                "| {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2}× | {:.2}× | {:.2}, {:.2} | {:.2}, {:.2} | {:.0}, {:.2} | {:.2}× |",
                w.name(),
                ours_rps,
                text.len() as f64 / wall / 1e6,
                ours_us,
                ours_net,
                js_rps,
                js_us,
                ours_rps / js_rps,
                js_us / ours_us,
                ours_sink_us,
                js_sink_us,
                ours_rps * (ours_us + ours_sink_us) / 1e6,
                js_rps * (js_us + js_sink_us) / 1e6,
                two_rps,
                two_us,
                two_rps / js_rps,
            ));
            let goal = match w.size {
                200 => Some(3.0),
                10240 => Some(2.0),
                _ => None,
            };
            if let (Some(goal), false) = (goal, js_rps.is_nan()) {
                targets.check_at_least(
                    format!("5. kinesis-ship vs the JS SDK, records/s, {}", w.name()),
                    ours_rps / js_rps,
                    goal,
                    format!(
                        "one instance puts one chunk at a time: kinesis-ship keeps {:.2} of 2 cores busy (the sink {:.2} µs/record), {:.2} µs wall per record, of which the component's own work is {}",
                        ours_rps * ours_us / 1e6,
                        ours_sink_us,
                        1e6 / ours_rps,
                        component_us
                            .get(&w.name())
                            .map_or("not measured (run the cpu section)".to_string(), |c| format!("{c:.2} µs"))
                    ),
                );
                targets.check_at_least(
                    format!(
                        "5. … kinesis-ship with buffer.flush_thread_count 2 (4 requests in flight in all), {}",
                        w.name()
                    ),
                    two_rps / js_rps,
                    goal,
                    format!(
                        "two instances side by side: {:.2} cores busy, {:.2} µs CPU/record (one instance: {:.2})",
                        two_rps * two_us / 1e6,
                        two_us,
                        ours_us
                    ),
                );
                targets.check_at_least(
                    format!("5. … with less CPU per record (JS/ours), {}", w.name()),
                    js_us / ours_us,
                    1.0,
                    String::new(),
                );
            }
            let _ = std::fs::remove_file(&file);
        }
        if js.is_none() {
            say("\n(the JS SDK is not installed: `make bench` installs it into .tools/node)".into());
        }
    }

    // What preserve_order costs: one record of a key per request, with and without aggregation.
    if section("order") {
        say("\n## preserve_order: its cost (200 B json, 50 distinct `pod` keys, 1000-record puts, the component against an instant sink)\n".into());
        say("| aggregate | preserve_order | component µs CPU/record | requests per 1000 records | CPU/record vs without |".into());
        say("| --- | --- | ---: | ---: | ---: |".into());
        let data = records(200, settings.records);
        for aggregate in [false, true] {
            let mut base = None;
            for preserve in [false, true] {
                let mut cpu = Vec::new();
                let mut requests = 0;
                for _ in 0..settings.reps {
                    let (c, r) = order_run(&runtime, &data, aggregate, preserve).await?;
                    cpu.push(c);
                    requests = r;
                }
                let us = per_record(&cpu, data.len());
                let base_us = *base.get_or_insert(us);
                say(format!(
                    "| {aggregate} | {preserve} | {us:.2} | {:.1} | {:.2}× |",
                    requests as f64 * 1000.0 / data.len() as f64,
                    us / base_us
                ));
            }
        }
    }

    // Fluent Bit with our plugin beside Fluent Bit with its native output, same lines, same sink.
    if section("fluent-bit") {
        if let Some(fb) = fluent_bit_rows(&settings, &out_dir, &mut say).await? {
            let component = component_us
                .get("200 B, json, random key")
                .map_or("not measured (run the cpu section)".to_string(), |c| {
                    format!("{c:.2} µs")
                });
            targets.check(
                "1. Fluent Bit CPU/record, this plugin / the native output, 200 B json".into(),
                fb.cpu.0 / fb.cpu.1,
                1.0,
                format!(
                    "the plugin {:.2} µs per record, the native output {:.2}; the component's own work alone (sandboxed wasm, the records' JSON, SigV4 and the request) {component}",
                    fb.cpu.0, fb.cpu.1
                ),
            );
            targets.check_at_least(
                "1. … records/s, this plugin / the native output".into(),
                fb.rps.0 / fb.rps.1,
                1.0,
                "both outputs keep up with `tail`; a run's wall time is mostly Fluent Bit's own flush interval and start".into(),
            );
            targets.check(
                "4. Fluent Bit peak RSS, this plugin / the native output".into(),
                fb.rss.0 / fb.rss.1,
                1.5,
                format!(
                    "{:.0} MiB against {:.0} MiB: wasmtime's code and the component's compiled code, and a linear memory per worker sized by the largest chunk",
                    fb.rss.0 / 1024.0,
                    fb.rss.1 / 1024.0
                ),
            );
        }
    }

    // Host memory over a long run.
    if section("memory") {
        // In a full run the process still holds what earlier sections allocated: the growth
        // from the first 10% to the end is what tells.
        let before = rss_kib().0;
        let (first, last, peak) = soak(&runtime, settings.soak_records).await?;
        say(format!(
            "\n## Memory over {} records through one instance\n\nHost RSS before this section: {:.1} MiB; after the first 10%: {:.1} MiB; at the end: {:.1} MiB (growth {:+.1} MiB); peak: {:.1} MiB.",
            settings.soak_records,
            before as f64 / 1024.0,
            first as f64 / 1024.0,
            last as f64 / 1024.0,
            (last as f64 - first as f64) / 1024.0,
            peak as f64 / 1024.0
        ));
    }

    say(targets.table());
    std::fs::write(out_dir.join("results.md"), &report)?;
    println!("\n(written to target/bench/results.md)");
    Ok(())
}

/// One Fluent Bit run: tail `input` (`records` lines) into `output` (an `[OUTPUT]` section), until
/// the sink has them all; wall time, the Fluent Bit process's CPU time and its peak resident set
/// (KiB).
fn fluent_bit_run(
    fluent_bit: &Path,
    dir: &Path,
    input: &Path,
    output: &str,
    received: &bench::sink::Received,
    records: u64,
) -> Result<(Duration, Duration, f64)> {
    let conf = dir.join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    flush 1\n    log_level info\n[INPUT]\n    name tail\n    path {}\n    read_from_head true\n{output}",
            input.display()
        ),
    )?;
    let before = received.records.load(Ordering::Relaxed);
    let cpu_before = cpu_time(true);
    let start = Instant::now();
    let mut child = Command::new(fluent_bit)
        .arg("-e")
        .arg(root().join("dist/out_kinesis_wasm.so"))
        .arg("-c")
        .arg(&conf)
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("fluent-bit.log"))?)
        .stderr(std::fs::File::create(dir.join("fluent-bit.err"))?)
        .spawn()
        .context("starting Fluent Bit")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.records.load(Ordering::Relaxed) - before < records && Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "Fluent Bit ended ({status}) before its records arrived: see {}",
                dir.join("fluent-bit.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    // The process's high-water mark, read before it ends.
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.wait()?;
    let cpu = cpu_time(true) - cpu_before;
    let got = received.records.load(Ordering::Relaxed) - before;
    if got < records {
        bail!(
            "the sink received {got} of {records} records from Fluent Bit: see {}",
            dir.join("fluent-bit.log").display()
        );
    }
    Ok((wall, cpu, peak_rss))
}

/// The plugin's figures beside the native output's: (plugin, native).
struct FluentBitFigures {
    /// µs CPU per record.
    cpu: (f64, f64),
    /// Records per second.
    rps: (f64, f64),
    /// Peak resident set, KiB.
    rss: (f64, f64),
}

/// Fluent Bit 5.1 with `kinesis_wasm` beside Fluent Bit with its native `kinesis_streams`: the
/// same 200-byte JSON lines, the same local TLS sink (the native output speaks only TLS, and
/// checks the certificate: both trust the test CA), two workers each.
/// The figures of both, when Fluent Bit is here.
async fn fluent_bit_rows(
    settings: &Settings,
    out_dir: &Path,
    say: &mut impl FnMut(String),
) -> Result<Option<FluentBitFigures>> {
    say("\n## Fluent Bit: the kinesis_wasm plugin beside the native kinesis_streams output\n".into());
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        say(host_tests::fluent_bit::NOT_FOUND.into());
        return Ok(None);
    };
    if !root().join("dist/out_kinesis_wasm.so").is_file() {
        bail!("dist/out_kinesis_wasm.so: run `make plugin`");
    }
    let ca = host_tests::listener::TestCa::new();
    let received = Arc::new(bench::sink::Received::default());
    let addr = bench::sink::start_tls(received.clone(), ca.server_config()).await?;
    let ca_file = out_dir.join("bench-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem)?;
    let n = settings.records;
    let input = out_dir.join("fluent-bit-input.log");
    let mut text = Vec::new();
    for d in records(200, n) {
        text.extend_from_slice(&d);
        text.push(b'\n');
    }
    std::fs::write(&input, &text)?;
    let plugin = format!(
        "[OUTPUT]\n    name kinesis_wasm\n    match *\n    workers 2\n    stream_name bench\n    region us-east-1\n    endpoint https://{addr}\n    tls_ca_file {}\n    component {}\n",
        ca_file.display(),
        host_tests::runtime::component_path().display()
    );
    let native = format!(
        "[OUTPUT]\n    name kinesis_streams\n    match *\n    workers 2\n    stream bench\n    region us-east-1\n    endpoint {}\n    port {}\n    tls.ca_file {}\n",
        addr.ip(),
        addr.port(),
        ca_file.display()
    );
    say(format!(
        "{n} lines of 200-byte JSON, `tail` → the output → a local TLS sink; CPU of the Fluent Bit process (its start included), median of {} runs.\n",
        settings.reps
    ));
    say("| output | records/s | µs CPU/record | CPU/record plugin/native | peak RSS MiB |".into());
    say("| --- | ---: | ---: | ---: | ---: |".into());
    let mut rows = Vec::new();
    for (name, output) in [
        ("kinesis_wasm (this plugin)", &plugin),
        ("kinesis_streams (native)", &native),
    ] {
        let (mut walls, mut cpus, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..settings.reps {
            let (wall, cpu, peak) =
                fluent_bit_run(&fluent_bit, out_dir, &input, output, &received, n as u64)?;
            walls.push(wall.as_secs_f64());
            cpus.push(cpu.as_secs_f64());
            rss.push(peak);
        }
        rows.push((
            name,
            n as f64 / median(&mut walls),
            median(&mut cpus) / n as f64 * 1e6,
            median(&mut rss),
        ));
    }
    let native_us = rows[1].2;
    for (name, rps, us, rss) in &rows {
        say(format!(
            "| {name} | {rps:.0} | {us:.2} | {:.2}× | {:.1} |",
            us / native_us,
            rss / 1024.0
        ));
    }
    let _ = std::fs::remove_file(&input);
    Ok(Some(FluentBitFigures {
        cpu: (rows[0].2, rows[1].2),
        rps: (rows[0].1, rows[1].1),
        rss: (rows[0].3, rows[1].3),
    }))
}

/// Issue 17's targets as this run measured them, each with what bounds it, measured in the
/// same run (the floor a target not met runs into).
#[derive(Default)]
struct Targets(Vec<(String, f64, String, bool, String)>);

impl Targets {
    /// `measured` must be at most `goal`.
    fn check(&mut self, what: String, measured: f64, goal: f64, bound: String) {
        self.0
            .push((what, measured, format!("≤ {goal}"), measured <= goal, bound));
    }
    /// `measured` must be at least `goal`.
    fn check_at_least(&mut self, what: String, measured: f64, goal: f64, bound: String) {
        self.0
            .push((what, measured, format!("≥ {goal}"), measured >= goal, bound));
    }
    fn table(&self) -> String {
        let mut out = String::from(
            "\n## Targets\n\n| target | measured | goal | met | what bounds it (this run) |\n| --- | ---: | ---: | --- | --- |\n",
        );
        for (what, measured, goal, met, bound) in &self.0 {
            out.push_str(&format!(
                "| {what} | {measured:.2} | {goal} | {} | {bound} |\n",
                if *met { "yes" } else { "no" }
            ));
        }
        out
    }
}

/// Median CPU µs per record over `reps` runs of `f` (which returns the CPU time for `n` records).
/// The workload after a profiling `flag`: `SIZE N [gzip]` (200 B and 20,000 records by
/// default), random keys.
fn profile_workload(args: &[String], flag: &str) -> Option<Workload> {
    let i = args.iter().position(|a| a == flag)?;
    Some(Workload {
        size: args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(200),
        partition_key: false,
        gzip: args.get(i + 3).is_some_and(|v| v == "gzip"),
        zstd: args.get(i + 3).is_some_and(|v| v == "zstd"),
        records: args.get(i + 2).and_then(|v| v.parse().ok()).unwrap_or(20_000),
    })
}

fn repeat(reps: usize, n: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<f64> {
    let mut runs = Vec::new();
    for _ in 0..reps {
        runs.push(f()?);
    }
    Ok(per_record(&runs, n))
}

/// The median of `runs`.
fn median_duration(runs: &[Duration]) -> Duration {
    let mut v: Vec<f64> = runs.iter().map(|d| d.as_secs_f64()).collect();
    Duration::from_secs_f64(median(&mut v))
}

/// Median µs per record of CPU times for `n` records.
fn per_record(runs: &[Duration], n: usize) -> f64 {
    median_duration(runs).as_secs_f64() / n as f64 * 1e6
}

fn events(data: &[Vec<u8>]) -> Vec<Event> {
    data.iter()
        .enumerate()
        .map(|(i, d)| Event {
            tag: "kube.var.log.containers.web".to_string(),
            time: Timestamp {
                seconds: 1_700_000_000 + i as i64,
                nanoseconds: 0,
            },
            record: d.clone(),
        })
        .collect()
}

/// The core natively: CPU time for the workload.
fn native_run(w: &Workload, data: &[Vec<u8>]) -> Result<Duration> {
    let upstream = InstantKinesis::new();
    let mut platform = NativePlatform::new(upstream.clone());
    let config = w.config("http://kinesis.bench:4567", CONCURRENCY).to_string();
    let mut sink = Sink::open(&config, &mut platform).map_err(|e| anyhow!("{e}"))?;
    let started = cpu_time(false);
    for chunk in data.chunks(CHUNK) {
        let events: Vec<kinesis_output::Event<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| kinesis_output::Event {
                tag: "kube.var.log.containers.web",
                seconds: 1_700_000_000 + i as i64,
                nanoseconds: 0,
                record: d,
            })
            .collect();
        let report = sink.put(&events, &mut platform);
        check_delivered(all_delivered(&report.outcomes))?;
    }
    let cpu = cpu_time(false) - started;
    if upstream.records.load(Ordering::Relaxed) != w.records as u64 {
        bail!("native: the upstream counted a different number of records");
    }
    Ok(cpu)
}

/// µs per record of gzip alone, natively, as the core compresses each record (a new encoder at
/// the default level, Fluentd's; the same flate2 and miniz_oxide the component uses).
fn deflate_alone(data: &[Vec<u8>]) -> f64 {
    use std::io::Write as _;
    let started = cpu_time(false);
    let mut bytes = 0;
    for d in data {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).expect("writing to memory");
        e.write_all(b"\n").expect("writing to memory");
        bytes += e.finish().expect("writing to memory").len();
    }
    std::hint::black_box(bytes);
    (cpu_time(false) - started).as_secs_f64() / data.len() as f64 * 1e6
}

/// µs per record of zstd alone, natively, as the core compresses each record.
fn zstd_alone(data: &[Vec<u8>]) -> f64 {
    let started = cpu_time(false);
    let mut bytes = 0;
    for d in data {
        let mut line = d.clone();
        line.push(b'\n');
        bytes +=
            ruzstd::encoding::compress_to_vec(&line[..], ruzstd::encoding::CompressionLevel::Fastest).len();
    }
    std::hint::black_box(bytes);
    (cpu_time(false) - started).as_secs_f64() / data.len() as f64 * 1e6
}

/// Whether every outcome of a put in the core's terms is `Delivered`.
fn all_delivered(outcomes: &[kinesis_output::Outcome]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o, kinesis_output::Outcome::Delivered { .. }))
}

fn check_delivered(all: bool) -> Result<()> {
    if all {
        Ok(())
    } else {
        bail!("a benchmark record was not delivered")
    }
}

/// The component: CPU time, peak linear memory, largest request.
async fn component_run(
    runtime: &Runtime,
    w: &Workload,
    data: &[Vec<u8>],
) -> Result<(Duration, usize, usize)> {
    let config = w.config("http://kinesis.bench:4567", CONCURRENCY);
    let (upstream, mut instance, sink) = instant_sink(runtime, &config).await?;
    let cpu = put_all(&mut instance, sink, data).await?;
    if upstream.records.load(Ordering::Relaxed) != w.records as u64 {
        bail!("component: the upstream counted a different number of records");
    }
    Ok((
        cpu,
        instance.peak_memory(),
        upstream.largest_request.load(Ordering::Relaxed),
    ))
}

/// The component on `data` keyed by `pod`, with `aggregate` and `preserve_order` as given: CPU
/// time and requests.
async fn order_run(
    runtime: &Runtime,
    data: &[Vec<u8>],
    aggregate: bool,
    preserve: bool,
) -> Result<(Duration, u64)> {
    let w = Workload {
        size: 200,
        partition_key: true,
        gzip: false,
        zstd: false,
        records: data.len(),
    };
    let mut config = w.config("http://kinesis.bench:4567", CONCURRENCY);
    config["aggregate"] = aggregate.into();
    config["preserve_order"] = preserve.into();
    let (upstream, mut instance, sink) = instant_sink(runtime, &config).await?;
    let cpu = put_all(&mut instance, sink, data).await?;
    Ok((cpu, upstream.requests.load(Ordering::Relaxed)))
}

/// An instance against an instant sink, opened with `config`.
async fn instant_sink(
    runtime: &Runtime,
    config: &serde_json::Value,
) -> Result<(Arc<InstantKinesis>, Instance, SinkHandle)> {
    let upstream = InstantKinesis::new();
    let mut instance = runtime
        .instantiate_with(InstanceOptions::new(Upstream::Instant(upstream.clone())))
        .await?;
    let sink = instance
        .open(&config.to_string())
        .await?
        .map_err(|e| anyhow!("{}: {}", e.field, e.message))?;
    Ok((upstream, instance, sink))
}

/// Put `data` in 1000-record chunks through `put-packed` (as the plugin and kinesis-ship do),
/// every record delivered; the CPU time it took.
async fn put_all(instance: &mut Instance, sink: SinkHandle, data: &[Vec<u8>]) -> Result<Duration> {
    let chunks: Vec<PackedEvents> = data.chunks(CHUNK).map(packed).collect();
    let started = cpu_time(false);
    for chunk in &chunks {
        let report = instance.put_packed(sink, chunk).await?;
        check_delivered(all_delivered(&report.outcomes))?;
    }
    Ok(cpu_time(false) - started)
}

/// Put `data` as [`put_all`] does, through the typed `put(list<event>)`: the CPU time it took.
async fn put_all_typed(instance: &mut Instance, sink: SinkHandle, data: &[Vec<u8>]) -> Result<Duration> {
    // Building the events (copies into the guest's list) is the host's part of every put.
    let chunks: Vec<Vec<Event>> = data.chunks(CHUNK).map(events).collect();
    let started = cpu_time(false);
    for chunk in &chunks {
        let report = instance.put(sink, chunk).await?;
        check_delivered(report.outcomes.iter().all(|o| matches!(o, Outcome::Delivered(_))))?;
    }
    Ok(cpu_time(false) - started)
}

/// `data` as one packed chunk.
fn packed(data: &[Vec<u8>]) -> PackedEvents {
    let bytes = data.iter().map(Vec::len).sum();
    let mut p = PackedEvents::with_capacity("kube.var.log.containers.web", data.len(), bytes);
    for (i, d) in data.iter().enumerate() {
        p.push(1_700_000_000 + i as i64, 0, d);
    }
    p
}

struct Instantiation {
    compile: Duration,
    deserialize: Duration,
    instantiate: Duration,
    open: Duration,
}

#[allow(unsafe_code)]
async fn instantiation() -> Result<Instantiation> {
    let bytes = std::fs::read(host_tests::runtime::component_path())?;
    let engine = wasmtime::Engine::new(&wasmtime::Config::new()).map_err(|e| anyhow!("{e}"))?;
    let t = Instant::now();
    let compiled = engine.precompile_component(&bytes).map_err(|e| anyhow!("{e}"))?;
    let compile = t.elapsed();
    let mut deserialize = Vec::new();
    let mut component = None;
    for _ in 0..20 {
        let t = Instant::now();
        // SAFETY: the bytes were produced just above by `precompile_component` of this engine.
        let c = unsafe { wasmtime::component::Component::deserialize(&engine, &compiled) }
            .map_err(|e| anyhow!("{e}"))?;
        deserialize.push(t.elapsed());
        component = Some(c);
    }
    let runtime = Runtime::with_component(engine, &component.expect("deserialized"))?;
    let config = Workload {
        size: 200,
        partition_key: false,
        gzip: false,
        zstd: false,
        records: 0,
    }
    .config("http://kinesis.bench:4567", 1)
    .to_string();
    let mut instantiate = Vec::new();
    let mut open = Vec::new();
    for _ in 0..200 {
        let options = InstanceOptions::new(Upstream::Instant(InstantKinesis::new()));
        let t = Instant::now();
        let mut instance = runtime.instantiate_with(options).await?;
        instantiate.push(t.elapsed());
        let t = Instant::now();
        instance
            .open(&config)
            .await?
            .map_err(|e| anyhow!("{}", e.message))?;
        open.push(t.elapsed());
    }
    let med = |v: &mut Vec<Duration>| median_duration(v);
    Ok(Instantiation {
        compile,
        deserialize: med(&mut deserialize),
        instantiate: med(&mut instantiate),
        open: med(&mut open),
    })
}

/// The floor command component, run in this process's wasmtime.
struct Floor {
    engine: wasmtime::Engine,
    pre: wasmtime_wasi::p2::bindings::CommandPre<FloorCtx>,
}

struct FloorCtx {
    table: wasmtime::component::ResourceTable,
    wasi: wasmtime_wasi::WasiCtx,
}

impl wasmtime_wasi::WasiView for FloorCtx {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Floor {
    fn load() -> Result<Floor> {
        let path = root().join("dist/sigv4_floor.wasm");
        let engine = wasmtime::Engine::new(&wasmtime::Config::new()).map_err(|e| anyhow!("{e}"))?;
        let bytes = std::fs::read(&path).with_context(|| format!("{}: run `make bench`", path.display()))?;
        let component = wasmtime::component::Component::new(&engine, &bytes).map_err(|e| anyhow!("{e}"))?;
        let mut linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
        // The sink world's host interface, answered as kinesis-ship answers it.
        let mut host = linker
            .instance("kinesis:output/host@0.1.0")
            .map_err(|e| anyhow!("{e}"))?;
        host.func_wrap("payload-sha256", |_, (data,): (Vec<u8>,)| {
            Ok((kinesis_ship::sink::payload_sha256(&data),))
        })
        .map_err(|e| anyhow!("{e}"))?;
        host.func_wrap("run-credential-process", |_, (_,): (String,)| {
            Ok((Err::<String, String>("the floor runs no process".to_string()),))
        })
        .map_err(|e| anyhow!("{e}"))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| anyhow!("{e}"))?;
        let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(|e| anyhow!("{e}"))?;
        Ok(Floor { engine, pre })
    }

    /// CPU time of one run over `count` records of `size` bytes, the bodies hashed by the host
    /// (as the sink world's are) or in wasm.
    async fn run(&self, size: usize, count: usize, host_hash: bool) -> Result<Duration> {
        let stdout = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(4096);
        let hashing = if host_hash { "host" } else { "wasm" };
        let wasi = wasmtime_wasi::WasiCtx::builder()
            .args(&["sigv4-floor", &size.to_string(), &count.to_string(), hashing])
            .stdout(stdout.clone())
            .build();
        let mut store = wasmtime::Store::new(
            &self.engine,
            FloorCtx {
                table: wasmtime::component::ResourceTable::new(),
                wasi,
            },
        );
        let command = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let started = cpu_time(false);
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .await
            .map_err(|e| anyhow!("{e}"))?
            .map_err(|()| anyhow!("the floor command failed"))?;
        let cpu = cpu_time(false) - started;
        if stdout.contents().is_empty() {
            bail!("the floor command printed nothing");
        }
        Ok(cpu)
    }
}

fn ship_path() -> Result<PathBuf> {
    let path = root().join("dist/kinesis-ship");
    if !path.is_file() {
        bail!("dist/kinesis-ship: run `make host`");
    }
    Ok(path)
}

/// kinesis-ship's configuration for `w` with `threads` flush threads, sharing the requests in
/// flight between them (as many in all as the JS SDK keeps).
fn write_ship_config(w: &Workload, dir: &Path, endpoint: &str, threads: usize) -> Result<PathBuf> {
    let mut cfg = w.config(endpoint, (CONCURRENCY / threads).max(1));
    cfg["buffer"] = serde_json::json!({
        "chunk_limit_records": 5000, "chunk_limit_size": "32m", "flush_thread_count": threads,
    });
    let path = dir.join("ship-config.json");
    std::fs::write(&path, cfg.to_string())?;
    Ok(path)
}

/// Run a child to the end: wall time and its CPU time.
fn timed_child(mut cmd: Command) -> Result<(Duration, Duration, String)> {
    let cpu_before = cpu_time(true);
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("starting a child")?;
    let wall = t.elapsed();
    let cpu = cpu_time(true) - cpu_before;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((wall, cpu, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn ship_command(ship: &Path, config: &Path, input: &Path) -> Command {
    let mut cmd = Command::new(ship);
    cmd.args(["--config", config.to_str().expect("utf-8 path")])
        .args(["--input", input.to_str().expect("utf-8 path")])
        .arg("--quiet")
        .env("KINESIS_OUTPUT_WASM", host_tests::runtime::component_path());
    cmd
}

fn ship_idle_cpu(ship: &Path, dir: &Path, endpoint: &str, cached: bool) -> Result<Duration> {
    let w = Workload {
        size: 200,
        partition_key: false,
        gzip: false,
        zstd: false,
        records: 0,
    };
    let config = write_ship_config(&w, dir, endpoint, 1)?;
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, b"")?;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut cmd = ship_command(ship, &config, &empty);
        if !cached {
            cmd.env("KINESIS_SHIP_NO_CODE_CACHE", "1");
        }
        runs.push(timed_child(cmd)?.1);
    }
    Ok(median_duration(&runs))
}

fn ship_run(
    ship: &Path,
    w: &Workload,
    dir: &Path,
    endpoint: &str,
    input: &Path,
    threads: usize,
) -> Result<(Duration, Duration)> {
    let config = write_ship_config(w, dir, endpoint, threads)?;
    let (wall, cpu, _) = timed_child(ship_command(ship, &config, input))?;
    Ok((wall, cpu))
}

/// The peer's script, when its SDK is installed.
fn js_ready() -> Result<Option<PathBuf>> {
    let sdk = root().join(".tools/node/node_modules/@aws-sdk/client-kinesis/package.json");
    Ok(sdk.is_file().then(|| root().join("scripts/bench-js-sdk.mjs")))
}

fn js_run(script: &Path, w: &Workload, endpoint: &str, input: &Path) -> Result<(Duration, Duration)> {
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .args(["--file", input.to_str().expect("utf-8 path")])
        .args(["--endpoint", endpoint, "--stream", "bench"])
        .args(["--key", if w.partition_key { "pod" } else { "random" }])
        .args(["--concurrency", &CONCURRENCY.to_string()]);
    let (wall, cpu, out) = timed_child(cmd)?;
    let v: serde_json::Value = serde_json::from_str(out.trim()).context("the JS script's output")?;
    if v["records"].as_u64() != Some(w.records as u64) {
        bail!("the JS SDK reported {out}");
    }
    Ok((wall, cpu))
}

/// `records` 200-byte records through one instance: host RSS after 10%, at the end, and peak.
async fn soak(runtime: &Runtime, total: usize) -> Result<(u64, u64, u64)> {
    let w = Workload {
        size: 200,
        partition_key: true,
        gzip: false,
        zstd: false,
        records: total,
    };
    let (_upstream, mut instance, sink) =
        instant_sink(runtime, &w.config("http://kinesis.bench:4567", CONCURRENCY)).await?;
    let chunk = packed(&records(200, CHUNK));
    let mut first = 0;
    for i in 0..total / CHUNK {
        let report = instance.put_packed(sink, &chunk).await?;
        check_delivered(all_delivered(&report.outcomes))?;
        if i + 1 == total / CHUNK / 10 {
            first = rss_kib().0;
        }
    }
    let (last, peak) = rss_kib();
    Ok((first, last, peak))
}
