//! `secret-scan DIR`: after the harness suite ran with `KINESIS_TEST_TRANSCRIPTS=DIR`, look for
//! every secret value the tests used in everything the component and our programs said (see
//! `host_tests::transcript`). Exit 1 on any hit, printing the line with the secret masked.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: secret-scan DIR");
        std::process::exit(2);
    };
    let scan = match host_tests::transcript::scan(std::path::Path::new(&dir)) {
        Ok(scan) => scan,
        Err(e) => {
            eprintln!("secret-scan: reading {dir}: {e}");
            std::process::exit(2);
        }
    };
    if scan.transcripts == 0 || scan.secrets == 0 {
        eprintln!("secret-scan: nothing was recorded in {dir} (was KINESIS_TEST_TRANSCRIPTS set?)");
        std::process::exit(2);
    }
    for (path, line) in &scan.hits {
        eprintln!("secret-scan: a secret in {}: {line}", path.display());
    }
    println!(
        "secret scan: {} secret values, {} transcripts, {:.1} MB of reports, errors and logs: {} hits",
        scan.secrets,
        scan.transcripts,
        scan.bytes as f64 / 1e6,
        scan.hits.len()
    );
    if !scan.hits.is_empty() {
        std::process::exit(1);
    }
}
