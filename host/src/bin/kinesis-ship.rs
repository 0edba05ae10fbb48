//! `kinesis-ship`: ship NDJSON log lines to Kinesis through the kinesis-output component, serve
//! its proxy world over HTTP, or print a configuration as environment variables.
//! See `kinesis-ship --help`.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Compiled code is cached in ~/.cache/wasmtime unless KINESIS_SHIP_NO_CODE_CACHE is set.
    if std::env::var_os("KINESIS_SHIP_NO_CODE_CACHE").is_none() {
        kinesis_ship::engine::enable_code_cache();
    }
    std::process::exit(kinesis_ship::cli::main(std::env::args_os()).await);
}
