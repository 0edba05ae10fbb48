//! `kinesis-ship`: ship NDJSON log lines to Kinesis through the kinesis-output component.
//! See `kinesis-ship --help`.

use host_tests::ship::{self, UsageError, EXIT_NOT_DELIVERED, EXIT_OK, EXIT_USAGE, USAGE};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    std::process::exit(real_main().await);
}

async fn real_main() -> i32 {
    let opts = match ship::parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.to_string() == "help" => {
            println!("{USAGE}");
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
