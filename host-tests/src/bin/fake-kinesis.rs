//! `fake-kinesis`: the harness's fake Kinesis on a real port, with its own SigV4 check and fault
//! switches, for hosts and agents we do not embed. Prints `listening on http://ADDR`; serves
//! until stopped. `GET /_fake/stored` and `/_fake/seen` report what it did.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use host_tests::fake_kinesis::{FakeKinesis, Fault, RandomFaults};

#[derive(Parser)]
#[command(name = "fake-kinesis", about = "The test harness's fake Kinesis over HTTP")]
struct Args {
    /// Where to listen (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long)]
    stream: String,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    /// Fraction of records answered ProvisionedThroughputExceededException.
    #[arg(long, default_value_t = 0.0)]
    throttle_records: f64,
    /// Fraction of requests that fail whole (500, dropped connection, broken body after
    /// storing, throttled request).
    #[arg(long, default_value_t = 0.0)]
    request_faults: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    let args = Args::parse();
    let fake = FakeKinesis::new(&args.stream, &args.access_key, &args.secret_key).with_random_faults(
        RandomFaults {
            throttle_records: args.throttle_records,
            fail_records: 0.0,
            request_fault_rate: args.request_faults,
            request_faults: vec![
                Fault::ServerError,
                Fault::DropConnection,
                Fault::BrokenBody,
                Fault::Throttled,
            ],
        },
        args.seed,
    );
    let listener = host_tests::listener::serve(Arc::new(fake), args.listen).unwrap_or_else(|e| {
        eprintln!("fake-kinesis: listening on {}: {e}", args.listen);
        std::process::exit(2)
    });
    println!("listening on http://{}", listener.addr);
    loop {
        std::thread::park();
    }
}
