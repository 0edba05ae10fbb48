//! The release archive of `make dist` as a user gets it: unpacked into an empty folder, its
//! checksums and layout; kinesis-ship alone (no component beside it, an empty HOME, nothing in
//! a code cache) shipping to kinesalite; the Dockerfile's steps carried out on the unpacked
//! archive and the real Fluent Bit loading the plugin alone through the plugins file, with the
//! Kubernetes ConfigMap's configuration, shipping to kinesalite; the Helm values' Fluent Bit
//! configuration checked by Fluent Bit itself; the manifests validated against the Kubernetes
//! schemas; sizes and linked libraries; `make install`; the edge bundle served from the archive.
//!
//! The Makefile names the archive in `KINESIS_DIST_ARCHIVE` (`make test` builds it first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host_tests::kinesalite::{root, Kinesalite};
use serde_yaml::Value as Yaml;

const SECRET: &str = "dist-secret-value-4711";

/// The stripped programs' bounds, in bytes. kinesis-ship: issue 26's target, 30 MB (it measures
/// 26.0 MB). The plugin: its target was 15 MB, but with wasmtime and Cranelift in the process it
/// measures 23.8 MB, of which our own code is 0.4 MB (docs/install.md, "Sizes"); the bound
/// keeps it from growing.
const PLUGIN_MAX: u64 = 25_000_000;
const SHIP_MAX: u64 = 30_000_000;

fn archive() -> PathBuf {
    let path = std::env::var_os("KINESIS_DIST_ARCHIVE")
        .map(PathBuf::from)
        .expect("KINESIS_DIST_ARCHIVE names the archive: run these tests through `make test`");
    assert!(path.is_file(), "{} is missing: run `make dist`", path.display());
    path
}

/// An empty folder of the test's own, removed when the test ends (an unpacked archive is
/// tens of MB).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("kinesis-dist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// The archive unpacked into an empty folder: the folder, and the archive's one top folder in it.
fn unpacked(name: &str) -> (Scratch, PathBuf) {
    let dir = temp_dir(name);
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive())
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "tar -xzf failed");
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one top folder: {entries:?}");
    let top = entries[0].clone();
    let expected = archive()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_string();
    assert_eq!(top.file_name().unwrap().to_string_lossy(), expected);
    (dir, top)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sha256(path: &Path) -> String {
    let (ok, out) = run(Command::new("sha256sum").arg(path));
    assert!(ok, "{out}");
    out.split_whitespace().next().unwrap().to_string()
}

/// Every file the layout promises is there, and SHA256SUMS lists and matches every file.
#[test]
fn the_archive_unpacks_to_the_layout_with_matching_checksums() {
    let (_unpacked, top) = unpacked("layout");
    for file in [
        "bin/kinesis-ship",
        "lib/fluent-bit/out_kinesis_wasm.so",
        "share/kinesis-output/kinesis_output.wasm",
        "share/kinesis-output/kinesis_output_proxy.wasm",
        "share/kinesis-output/kinesis_output_command.wasm",
        "share/kinesis-output/examples/aws.json",
        "share/kinesis-output/examples/fluent-bit/in-process.yaml",
        "share/kinesis-output/deploy/Dockerfile",
        "share/kinesis-output/deploy/plugins.conf",
        "share/kinesis-output/deploy/kubernetes/fluent-bit-kinesis.yaml",
        "share/kinesis-output/deploy/helm/fluent-bit-values.yaml",
        "share/kinesis-output/edge/worker.js",
        "share/kinesis-output/edge/kinesis.core.wasm",
        "share/kinesis-output/edge/wrangler.toml",
        "share/kinesis-output/edge/workerd.capnp",
        "share/kinesis-output/edge/deno.js",
        "share/kinesis-output/edge/serve",
        "share/kinesis-output/edge/serve.mjs",
        "share/kinesis-output/edge/NOTICES",
        "share/doc/kinesis-output/README.md",
        "share/doc/kinesis-output/LICENSE",
        "share/doc/kinesis-output/THIRD-PARTY-NOTICES",
        "SHA256SUMS",
    ] {
        assert!(top.join(file).is_file(), "{file} is missing from the archive");
    }
    assert!(
        !top.join("share/kinesis-output/examples/logs/kubernetes.ndjson")
            .exists(),
        "the generated log file stays out"
    );
    // The notices name what the programs are built from, with licence texts.
    let notices = std::fs::read_to_string(top.join("share/doc/kinesis-output/THIRD-PARTY-NOTICES")).unwrap();
    for crate_name in ["\nwasmtime ", "\naws-sigv4 ", "\ntokio ", "\nring "] {
        assert!(notices.contains(crate_name), "{crate_name:?} not in the notices");
    }
    assert!(notices.contains("Apache License") && notices.contains("Permission is hereby granted"));

    let (ok, out) = run(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&top));
    assert!(ok, "sha256sum --check: {out}");
    let listed: std::collections::BTreeSet<String> = std::fs::read_to_string(top.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| l.split_once("  ").unwrap().1.to_string())
        .collect();
    let mut files = std::collections::BTreeSet::new();
    let mut todo = vec![top.clone()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.file_name().unwrap() != "SHA256SUMS" {
                files.insert(path.strip_prefix(&top).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(listed, files, "SHA256SUMS lists every file and nothing else");

    // The checksum file beside the archive, as published.
    let beside = std::fs::read_to_string(format!("{}.sha256", archive().display())).unwrap();
    assert_eq!(beside.split_whitespace().next().unwrap(), sha256(&archive()));
}

/// The programs are stripped, name their debug files (in the -debug archive), stay within the
/// size bounds and need nothing beyond glibc and the GCC runtime every glibc system has.
#[test]
fn the_programs_are_small_stripped_and_need_only_glibc() {
    let (_unpacked, top) = unpacked("sizes");
    let debug_archive = PathBuf::from(archive().to_string_lossy().replace(".tar.gz", "-debug.tar.gz"));
    let (ok, listing) = run(Command::new("tar").arg("-tzf").arg(&debug_archive));
    assert!(ok, "{listing}");
    for (file, max) in [
        ("bin/kinesis-ship", SHIP_MAX),
        ("lib/fluent-bit/out_kinesis_wasm.so", PLUGIN_MAX),
    ] {
        let path = top.join(file);
        let size = std::fs::metadata(&path).unwrap().len();
        println!("{file}: {size} bytes");
        assert!(size <= max, "{file} is {size} bytes, over {max}");

        let (ok, sections) = run(Command::new("readelf").arg("-S").arg(&path));
        assert!(ok, "{sections}");
        assert!(!sections.contains(".symtab"), "{file} is not stripped");
        assert!(!sections.contains(".debug_info"), "{file} carries debug info");
        let (ok, link) = run(Command::new("readelf")
            .args(["--string-dump=.gnu_debuglink"])
            .arg(&path));
        assert!(ok, "{link}");
        let debug_name = format!("{}.debug", path.file_name().unwrap().to_string_lossy());
        assert!(link.contains(&debug_name), "{file} names no {debug_name}: {link}");
        assert!(
            listing.contains(&debug_name),
            "{debug_name} is not in the debug archive"
        );

        // The newest glibc symbol version asked for: what docs/install.md says it needs.
        let (ok, dynamic) = run(Command::new("objdump").arg("-T").arg(&path));
        assert!(ok, "{dynamic}");
        let newest = dynamic
            .split("GLIBC_")
            .skip(1)
            .filter_map(|rest| {
                let version: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
                Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
            })
            .max()
            .unwrap();
        assert!(
            newest <= (2, 34),
            "{file} needs glibc {newest:?}, the docs say 2.34"
        );

        let (ok, libraries) = run(Command::new("ldd").arg(&path));
        assert!(ok, "ldd {file}: {libraries}");
        for line in libraries.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let allowed = [
                "linux-vdso.so",
                "libc.so",
                "libm.so",
                "libgcc_s.so",
                "ld-linux",
                "libpthread.so",
                "libdl.so",
                "librt.so",
            ];
            assert!(
                allowed.iter().any(|a| name.contains(a)) && !line.contains("not found"),
                "{file} needs {line}"
            );
        }
    }
}

/// The archive's edge bundle as a user runs it: its `serve` starts Deno and workerd on the
/// unpacked folder, and each ships every line to kinesalite; its NOTICES name the bundled shim.
#[test]
fn the_archives_edge_bundle_serves_on_deno_and_workerd() {
    let (_unpacked, top) = unpacked("edge");
    let edge = top.join("share/kinesis-output/edge");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(edge.join("serve")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o111, 0o111, "serve is executable: {mode:o}");
    let notices = std::fs::read_to_string(edge.join("NOTICES")).unwrap();
    assert!(
        notices.contains("@bytecodealliance/preview2-shim") && notices.contains("Apache"),
        "{notices}"
    );

    let k = Kinesalite::start("it-dist-edge");
    let dir = temp_dir("edge-config");
    std::fs::write(dir.join("config.json"), ship_config(&k)).unwrap();
    let tools = root().join(".tools/node/node_modules/.bin");
    let mut expected = 0;
    for runtime in ["deno", "workerd"] {
        let port = host_tests::listener::free_port();
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(edge.join("serve"))
                .args([
                    runtime,
                    "--config",
                    dir.join("config.json").to_str().unwrap(),
                    "--port",
                    &port.to_string(),
                ])
                .env("WORKERD", tools.join("workerd"))
                .env("DENO", tools.join("deno"))
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut healthy = false;
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                if let Ok((200, _, _)) =
                    host_tests::listener::exchange(&mut s, &addr, "GET", "/health", &[], b"")
                {
                    healthy = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let body: String = (0..30)
            .map(|i| {
                format!(
                    "{}\n",
                    serde_json::json!({"pod": format!("p{i}"), "runtime": runtime})
                )
            })
            .collect();
        let answer = healthy.then(|| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            host_tests::listener::exchange(
                &mut s,
                &addr,
                "POST",
                "/",
                &[("Content-Type", "application/x-ndjson")],
                body.as_bytes(),
            )
        });
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
        assert!(healthy, "{runtime}: /health did not answer 200 within 60 s");
        let (status, _, answer) = answer.unwrap().unwrap();
        assert_eq!(status, 200, "{runtime}: {answer}");
        expected += 30;
        assert_eq!(k.read().len(), expected, "{runtime}");
    }
}

fn ship_config(k: &Kinesalite) -> String {
    serde_json::json!({
        "stream_name": k.stream,
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", k.port),
        "partition_key": "$.pod",
        "aws_key_id": "AKIDDIST",
        "aws_sec_key": SECRET,
    })
    .to_string()
}

/// kinesis-ship copied alone into an empty folder, with an empty HOME and an environment of
/// nothing else: it runs the component built into it (its `--version` names it, with the
/// digest of the archive's kinesis_output.wasm) and ships every line to kinesalite.
#[test]
fn kinesis_ship_alone_ships_to_kinesalite() {
    let (_unpacked, top) = unpacked("ship");
    let alone = temp_dir("ship-alone");
    let home = temp_dir("ship-home");
    let ship = alone.join("kinesis-ship");
    std::fs::copy(top.join("bin/kinesis-ship"), &ship).unwrap();
    let bare = |cmd: &mut Command| {
        cmd.env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(&alone);
    };

    let mut version = Command::new(&ship);
    bare(&mut version);
    let (ok, out) = run(version.arg("--version"));
    assert!(ok, "{out}");
    let sink_digest = sha256(&top.join("share/kinesis-output/kinesis_output.wasm"));
    let proxy_digest = sha256(&top.join("share/kinesis-output/kinesis_output_proxy.wasm"));
    assert!(
        out.starts_with(&format!("kinesis-ship {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(
        out.contains(&format!("sink component (ship): built in, sha256:{sink_digest}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "proxy component (serve): built in, sha256:{proxy_digest}"
        )),
        "{out}"
    );
    assert!(out.contains("wasmtime 48."), "{out}");

    host_tests::transcript::secret(SECRET);
    let k = Kinesalite::start("dist-ship");
    std::fs::write(alone.join("config.json"), ship_config(&k)).unwrap();
    let lines: String = (0..500)
        .map(|i| format!("{{\"pod\":\"p{}\",\"n\":{i}}}\n", i % 7))
        .collect();
    std::fs::write(alone.join("input.ndjson"), &lines).unwrap();
    let mut ship_cmd = Command::new(&ship);
    bare(&mut ship_cmd);
    let (ok, out) = run(ship_cmd.args([
        "--config",
        "config.json",
        "--input",
        "input.ndjson",
        "--quiet",
        "--report",
        "report.json",
    ]));
    host_tests::transcript::record("kinesis-ship alone", &out);
    assert!(ok, "{out}");
    let report = std::fs::read_to_string(alone.join("report.json")).unwrap();
    host_tests::transcript::record("kinesis-ship alone report", &report);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["delivered"], 500, "{report}");
    let mut stored: Vec<u64> = k
        .read()
        .iter()
        .map(|(data, _)| {
            serde_json::from_slice::<serde_json::Value>(data).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    stored.sort_unstable();
    assert_eq!(stored, (0..500).collect::<Vec<u64>>(), "every line once");
    // A component named by --component or $KINESIS_OUTPUT_WASM wins over the built-in one.
    for named in [true, false] {
        let mut cmd = Command::new(&ship);
        bare(&mut cmd);
        cmd.args(["--config", "config.json", "--input", "input.ndjson", "--quiet"]);
        if named {
            cmd.args(["--component", "/no/such/named.wasm"]);
        } else {
            cmd.env("KINESIS_OUTPUT_WASM", "/no/such/named.wasm");
        }
        let (ok, out) = run(&mut cmd);
        assert!(!ok && out.contains("/no/such/named.wasm"), "{out}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&alone)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    assert!(leftovers.is_empty(), "no component beside it: {leftovers:?}");
}

/// The Dockerfile's instructions, carried out on the unpacked archive (its build context) into
/// `root`: `ARG` and `FROM` are noted, `COPY src dest` copies as Docker does; any other
/// instruction fails the test (the official image has no shell, so there must be none).
fn build_image_root(context: &Path, root: &Path) -> String {
    let dockerfile = std::fs::read_to_string(context.join("share/kinesis-output/deploy/Dockerfile")).unwrap();
    let mut base = String::new();
    let mut args = std::collections::HashMap::new();
    for line in dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (instruction, rest) = line.split_once(' ').unwrap();
        match instruction {
            "ARG" => {
                let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
                args.insert(name.to_string(), value.to_string());
            }
            "FROM" => {
                base = rest.to_string();
                for (name, value) in &args {
                    base = base.replace(&format!("${{{name}}}"), value);
                }
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(parts.len(), 2, "COPY src dest: {line}");
                let (from, to) = (
                    context.join(parts[0]),
                    root.join(parts[1].trim_start_matches('/')),
                );
                if from.is_dir() {
                    std::fs::create_dir_all(&to).unwrap();
                    let (ok, out) = run(Command::new("cp")
                        .arg("-r")
                        .arg(format!("{}/.", from.display()))
                        .arg(&to));
                    assert!(ok, "{line}: {out}");
                } else {
                    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                    std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{line}: {e}"));
                }
            }
            other => panic!("the Dockerfile has {other}, which the official image cannot run: {line}"),
        }
    }
    assert!(
        base.contains("fluent-bit"),
        "FROM the official Fluent Bit image: {base}"
    );
    base
}

/// The archive unpacked (the folder, its top folder) and the Dockerfile's steps carried out on
/// it into an image root (the third): one file in the image's plugin folder, and a plugins file
/// naming it by the image's path, rewritten to the same path under the root for this test.
fn image(name: &str) -> (Scratch, PathBuf, Scratch) {
    let (unpacked, top) = unpacked(name);
    let image = temp_dir(&format!("{name}-root"));
    build_image_root(&top, &image);
    let in_lib: Vec<_> = std::fs::read_dir(image.join("fluent-bit/lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        in_lib,
        vec![std::ffi::OsString::from("out_kinesis_wasm.so")],
        "one file"
    );
    let plugins_file = image.join("fluent-bit/etc/plugins.conf");
    let plugins = std::fs::read_to_string(&plugins_file).unwrap();
    assert!(
        plugins.contains("Path /fluent-bit/lib/out_kinesis_wasm.so"),
        "{plugins}"
    );
    let rooted = plugins.replace("/fluent-bit/", &format!("{}/fluent-bit/", image.display()));
    std::fs::write(&plugins_file, rooted).unwrap();
    (unpacked, top, image)
}

/// A path of the image, inside `root`.
fn in_root(root: &Path, path: &str) -> String {
    root.join(path.trim_start_matches('/')).display().to_string()
}

/// The Kubernetes manifests from the archive: every document validated against the Kubernetes
/// schemas (strictly: an unknown field fails), and the validator is seen to catch a misspelt one.
#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let (_unpacked, top) = unpacked("kube");
    let validator = root().join(".tools/kubernetes/bin/kubernetes-validate");
    assert!(
        validator.is_file(),
        "kubernetes-validate is not installed: run `make tools`"
    );
    let manifests = top.join("share/kinesis-output/deploy/kubernetes/fluent-bit-kinesis.yaml");
    let validate = |file: &Path| {
        run(Command::new("python3")
            .arg(&validator)
            .args(["--strict", "--quiet"])
            .arg(file)
            .env("PYTHONPATH", root().join(".tools/kubernetes")))
    };
    let (ok, out) = validate(&manifests);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&manifests).unwrap();
    let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            Yaml::deserialize(d).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for kind in ["ServiceAccount", "ClusterRole", "ConfigMap", "DaemonSet"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
    }
    let scratch = temp_dir("kube-misspelt");
    let misspelt = scratch.join("bad.yaml");
    std::fs::write(
        &misspelt,
        text.replace("readOnlyRootFilesystem", "readOnlyRootFilesytem"),
    )
    .unwrap();
    let (ok, out) = validate(&misspelt);
    assert!(!ok && out.contains("readOnlyRootFilesytem"), "{out}");
}

use serde::Deserialize as _;

/// The ConfigMap's files, by name.
fn config_map(top: &Path) -> std::collections::HashMap<String, String> {
    let text =
        std::fs::read_to_string(top.join("share/kinesis-output/deploy/kubernetes/fluent-bit-kinesis.yaml"))
            .unwrap();
    let map = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Yaml::deserialize(d).unwrap())
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    serde_yaml::from_value(map["data"].clone()).unwrap()
}

/// The Dockerfile's steps make an image root from the unpacked archive; the real Fluent Bit
/// runs from it with the ConfigMap's configuration (its paths in that root, the tail input on
/// a test file instead of the node's logs and no kubernetes filter, kinesalite's endpoint and
/// test keys added to kinesis.json): the plugin, alone in the root, loaded through the plugins
/// file, names the component built into it and ships every line.
#[test]
fn the_image_steps_and_the_configmap_run_the_plugin_alone_in_fluent_bit() {
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        println!("{}", host_tests::fluent_bit::NOT_FOUND);
        return;
    };
    let (_unpacked, top, image) = image("image");

    host_tests::transcript::secret(SECRET);
    let k = Kinesalite::start("dist-agent");
    let files = config_map(&top);
    let conf_dir = image.join("fluent-bit/etc/conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let mut kinesis: serde_json::Value = serde_json::from_str(&files["kinesis.json"]).unwrap();
    kinesis["stream_name"] = k.stream.clone().into();
    kinesis["endpoint"] = format!("http://127.0.0.1:{}", k.port).into();
    // Without the kubernetes filter the records have no pod name: random keys.
    kinesis.as_object_mut().unwrap().remove("partition_key");
    kinesis["aws_key_id"] = "AKIDDIST".into();
    kinesis["aws_sec_key"] = SECRET.into();
    std::fs::write(conf_dir.join("kinesis.json"), kinesis.to_string()).unwrap();

    let var = temp_dir("image-var");
    let input = var.join("app.log");
    let lines: String = (0..2000)
        .map(|i| format!("{{\"pod\":\"p{}\",\"n\":{i}}}\n", i % 5))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let mut config: Yaml = serde_yaml::from_str(&files["fluent-bit.yaml"]).unwrap();
    let rooted = |v: &Yaml| -> Yaml { in_root_or_var(&image, &var, v.as_str().unwrap()).into() };
    let port = host_tests::listener::free_port();
    let service = config["service"].as_mapping_mut().unwrap();
    // The image's parsers file belongs to the image, not to this test's Fluent Bit.
    service.remove("parsers_file");
    service.insert("http_listen".into(), "127.0.0.1".into());
    service.insert("http_port".into(), port.to_string().into());
    for key in ["plugins_file", "storage.path"] {
        let value = rooted(&service[key]);
        service[key] = value;
    }
    config["pipeline"]["inputs"] = serde_yaml::from_str(&format!(
        "- {{name: tail, path: {}, tag: kube.app, read_from_head: true, storage.type: filesystem}}",
        input.display()
    ))
    .unwrap();
    config["pipeline"].as_mapping_mut().unwrap().remove("filters");
    let output = &mut config["pipeline"]["outputs"][0];
    assert_eq!(output["name"], "kinesis_wasm");
    for key in ["config", "state_dir", "dead_letter_file"] {
        let value = rooted(&output[key]);
        output[key] = value;
    }
    let conf = var.join("fluent-bit.yaml");
    std::fs::write(&conf, serde_yaml::to_string(&config).unwrap()).unwrap();
    let log = var.join("fluent-bit.log");
    let mut child = host_tests::fluent_bit::command(&fluent_bit, &conf, &log)
        .unwrap()
        .env_remove("KINESIS_OUTPUT_WASM")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .spawn()
        .expect("Fluent Bit starts");
    let until = Instant::now() + Duration::from_secs(90);
    let mut stored = 0;
    while Instant::now() < until {
        stored = k.read().len();
        if stored >= 2000 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The metrics the pod annotations point Prometheus at.
    let wanted = "kinesis_output_records_total{outcome=\"delivered\"} 2000";
    let metrics = host_tests::fluent_bit::metrics_showing(port, wanted);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    host_tests::transcript::record("fluent-bit log (dist)", &text);
    let digest = sha256(&top.join("share/kinesis-output/kinesis_output.wasm"));
    assert!(
        text.contains(&format!("component built in, sha256:{digest}; wasmtime 48.")),
        "the start-up line names the built-in component: {text}"
    );
    let mut ns: Vec<u64> = k
        .read()
        .iter()
        .map(|(data, _)| {
            let record: serde_json::Value = serde_json::from_slice(data).unwrap();
            let line: serde_json::Value = serde_json::from_str(record["log"].as_str().unwrap()).unwrap();
            line["n"].as_u64().unwrap_or_else(|| panic!("{record}"))
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns.len(), 2000, "stored {stored}; log: {text}");
    assert_eq!(ns, (0..2000).collect::<Vec<u64>>(), "every line once");
    let dead = std::fs::read_to_string(var.join("kinesis-dead-letters.ndjson")).unwrap_or_default();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead}");
    assert!(
        metrics.contains(wanted),
        "the plugin's metrics are served: {metrics}"
    );
}

/// `/fluent-bit/…` in the image root, `/var/fluent-bit/…` (the node's hostPath) in `var`.
fn in_root_or_var(root: &Path, var: &Path, path: &str) -> String {
    match path.strip_prefix("/var/fluent-bit/") {
        Some(rest) => var.join(rest).display().to_string(),
        None => in_root(root, path),
    }
}

/// The Helm values' Fluent Bit configuration, rendered as the chart does (its four sections
/// one after another, `{{ .Values.x }}` from the values), with the image's paths in the image
/// root: Fluent Bit's own `--dry-run` accepts it, plugin and `kinesis_wasm` output included.
#[test]
fn the_helm_values_render_a_configuration_fluent_bit_accepts() {
    let Some(fluent_bit) = host_tests::fluent_bit::find() else {
        println!("{}", host_tests::fluent_bit::NOT_FOUND);
        return;
    };
    let (_unpacked, top, image) = image("helm");

    let values: Yaml = serde_yaml::from_str(
        &std::fs::read_to_string(top.join("share/kinesis-output/deploy/helm/fluent-bit-values.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(values["kind"], "DaemonSet");
    assert!(values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].is_string());
    let var = temp_dir("helm-var");
    let config = &values["config"];
    let mut rendered = String::new();
    for section in ["service", "inputs", "filters", "outputs"] {
        rendered.push_str(config[section].as_str().unwrap());
        rendered.push('\n');
    }
    for key in ["flush", "logLevel", "metricsPort"] {
        let value = match &values[key] {
            Yaml::String(s) => s.clone(),
            other => serde_yaml::to_string(other).unwrap().trim().to_string(),
        };
        rendered = rendered.replace(&format!("{{{{ .Values.{key} }}}}"), &value);
    }
    assert!(!rendered.contains("{{"), "unrendered: {rendered}");
    // The chart's ConfigMap, which it mounts at /fluent-bit/etc/conf itself (a `volumeMounts`
    // value is not read by the chart): kinesis.json from extraFiles, the custom parsers.
    assert!(
        values.get("volumeMounts").is_none(),
        "{:?}",
        values.get("volumeMounts")
    );
    let etc = image.join("fluent-bit/etc");
    std::fs::create_dir_all(etc.join("conf")).unwrap();
    std::fs::write(
        etc.join("conf/kinesis.json"),
        config["extraFiles"]["kinesis.json"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        etc.join("conf/custom_parsers.conf"),
        config["customParsers"].as_str().unwrap(),
    )
    .unwrap();
    // The image's own parsers file, which this test's Fluent Bit does not have.
    std::fs::write(etc.join("parsers.conf"), "").unwrap();
    // Every file the configuration names is in the image or the ConfigMap (a dry run reads
    // the parsers and plugins files but not the plugin's `Config`).
    for line in rendered.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(path)) = (words.next(), words.next()) else {
            continue;
        };
        if ["parsers_file", "plugins_file", "config"].contains(&key.to_ascii_lowercase().as_str()) {
            assert!(
                Path::new(&in_root(&image, path)).is_file(),
                "{key} {path} is in neither"
            );
        }
    }
    let rendered = rendered
        .replace("/var/fluent-bit/", &format!("{}/", var.display()))
        .replace("/fluent-bit/", &format!("{}/fluent-bit/", image.display()));
    let conf = var.join("fluent-bit.conf");
    std::fs::write(&conf, &rendered).unwrap();
    let (ok, out) = run(Command::new(&fluent_bit)
        .arg("--dry-run")
        .arg("-c")
        .arg(&conf)
        .env_remove("KINESIS_OUTPUT_WASM"));
    assert!(
        ok && out.contains("configuration test is successful"),
        "{out}\n{rendered}"
    );

    // The check can fail: an output the plugins file does not provide is refused.
    std::fs::write(&conf, rendered.replace("Name kinesis_wasm", "Name kinesis_wsam")).unwrap();
    let (ok, out) = run(Command::new(&fluent_bit).arg("--dry-run").arg("-c").arg(&conf));
    assert!(!ok, "{out}");
}

/// `make install PREFIX=…` puts the archive's layout under PREFIX, and what it installed runs.
#[test]
fn make_install_puts_the_layout_under_the_prefix() {
    let prefix = temp_dir("prefix");
    let (ok, out) = run(Command::new("make")
        .args(["-s", "install"])
        .arg(format!("PREFIX={}", prefix.display()))
        .current_dir(root()));
    assert!(ok, "{out}");
    for file in [
        "bin/kinesis-ship",
        "lib/fluent-bit/out_kinesis_wasm.so",
        "share/kinesis-output/kinesis_output.wasm",
        "share/doc/kinesis-output/THIRD-PARTY-NOTICES",
    ] {
        assert!(prefix.join(file).is_file(), "{file} not installed");
    }
    assert!(!prefix.join("SHA256SUMS").exists());
    let (ok, out) = run(Command::new(prefix.join("bin/kinesis-ship")).arg("--version"));
    assert!(ok && out.contains("built in"), "{out}");
}
