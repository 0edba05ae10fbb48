//! gzip per record natively: a new encoder per record (as the component does), and one
//! `Compress` reset between records, at level 6 (zlib's default, what Fluentd uses) and 1, on
//! 100,000 Kubernetes-style records of about 160 bytes. Prints µs per record.

use std::io::Write;
use std::time::Instant;

fn record(i: usize) -> Vec<u8> {
    format!(
        r#"{{"time":"2026-11-28T07:00:{:02}.123456Z","stream":"stdout","log":"GET /api/v1/items/{} HTTP/1.1 200 {} bytes in {} ms","kubernetes":{{"pod":"web-{}","ns":"default"}}}}"#,
        i % 60,
        i,
        i * 7 % 5000,
        i % 100,
        i % 50
    )
    .into_bytes()
}

fn main() {
    let n = 100_000;
    let data: Vec<Vec<u8>> = (0..n).map(record).collect();
    let backend = if cfg!(feature = "zlib") {
        "system zlib"
    } else if cfg!(feature = "zlib-rs") {
        "zlib-rs"
    } else {
        "miniz_oxide"
    };
    println!("{backend}, {n} records of about {} bytes", data[0].len());
    let started = Instant::now();
    for d in &data {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        std::hint::black_box(e.finish().unwrap());
    }
    println!(
        "gzip, level 6, a new encoder per record: {:.2} µs",
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    for level in [6u32, 1] {
        let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
        let started = Instant::now();
        for d in &data {
            c.reset();
            let mut out = Vec::with_capacity(d.len() + 32);
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
            c.compress_vec(d, &mut out, flate2::FlushCompress::Finish).unwrap();
            let mut crc = flate2::Crc::new();
            crc.update(d);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(d.len() as u32).to_le_bytes());
            std::hint::black_box(out);
        }
        println!(
            "gzip, level {level}, one state reset per record: {:.2} µs",
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
