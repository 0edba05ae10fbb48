//! `kinesis-ship`: ship NDJSON log lines to Kinesis through the kinesis-output component, serve
//! its proxy world over HTTP, or print a configuration as environment variables.
//! See `kinesis-ship --help`.

use std::path::PathBuf;

use host_tests::serve::{self, SERVE_USAGE};
use host_tests::ship::{self, UsageError, EXIT_NOT_DELIVERED, EXIT_OK, EXIT_USAGE, USAGE};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Compiled code is cached in ~/.cache/wasmtime unless KINESIS_SHIP_NO_CODE_CACHE is set.
    if std::env::var_os("KINESIS_SHIP_NO_CODE_CACHE").is_none() {
        host_tests::runtime::enable_code_cache();
    }
    let code = match args.first().map(String::as_str) {
        Some("serve") => serve_main(args[1..].to_vec()).await,
        Some("env") => env_main(args[1..].to_vec()),
        _ => ship_main(args).await,
    };
    std::process::exit(code);
}

async fn serve_main(args: Vec<String>) -> i32 {
    let opts = match serve::parse_serve_args(args) {
        Ok(o) => o,
        Err(e) if e.to_string() == "help" => {
            println!("{SERVE_USAGE}");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("kinesis-ship serve: {e}\n\n{SERVE_USAGE}");
            return EXIT_USAGE;
        }
    };
    let served = serve::serve(&opts, |addr| {
        // Tests and scripts read the port from this line.
        println!("listening on http://{addr}");
    })
    .await;
    match served {
        Ok(()) => EXIT_OK,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("kinesis-ship serve: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("kinesis-ship serve: {e:#}");
            EXIT_NOT_DELIVERED
        }
    }
}

const ENV_USAGE: &str = "usage: kinesis-ship env --config FILE [--single] [--shell]

Prints the environment variables that configure the proxy and command worlds like FILE (JSON or
YAML, a logging-operator Output included): one KINESIS_OUTPUT_<SETTING> a line, or with --single
the whole configuration as KINESIS_OUTPUT_CONFIG. --shell prints `export` lines for a POSIX shell.";

fn env_main(args: Vec<String>) -> i32 {
    let mut config = None;
    let (mut single, mut shell) = (false, false);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => config = it.next().map(PathBuf::from),
            "--single" => single = true,
            "--shell" => shell = true,
            "-h" | "--help" => {
                println!("{ENV_USAGE}");
                return EXIT_OK;
            }
            other => {
                eprintln!("kinesis-ship env: unknown argument {other:?}\n\n{ENV_USAGE}");
                return EXIT_USAGE;
            }
        }
    }
    let Some(path) = config else {
        eprintln!("kinesis-ship env: --config is required\n\n{ENV_USAGE}");
        return EXIT_USAGE;
    };
    match ship::read_config(&path).and_then(|c| ship::env_lines(&c, single, shell)) {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("kinesis-ship env: {e:#}");
            EXIT_USAGE
        }
    }
}

async fn ship_main(args: Vec<String>) -> i32 {
    let opts = match ship::parse_args(args) {
        Ok(o) => o,
        Err(e) if e.to_string() == "help" => {
            println!("{USAGE}\n\nkinesis-ship serve --help: host the proxy world over HTTP.\nkinesis-ship env --help: print a configuration as environment variables.");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("kinesis-ship: {e}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let summary = match ship::run(&opts).await {
        Ok(s) => s,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("kinesis-ship: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("kinesis-ship: {e:#}");
            return EXIT_NOT_DELIVERED;
        }
    };
    if let Some(path) = &opts.report {
        let text = serde_json::to_string_pretty(&summary.to_report()).expect("a report serialises");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("kinesis-ship: writing the report {}: {e}", path.display());
            return EXIT_NOT_DELIVERED;
        }
    }
    if summary.delivered == summary.lines {
        EXIT_OK
    } else {
        EXIT_NOT_DELIVERED
    }
}
