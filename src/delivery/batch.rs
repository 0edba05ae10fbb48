//! The arithmetic of delivery: how records are cut into requests, and how long to wait
//! between retry rounds.

use std::time::Duration;

/// The wait before retry round `n` (0-based): `base × 2^n`, jittered by `±5%` using `unit`
/// (in `[0, 1)`), never more than `max`.
pub fn backoff_delay(base: Duration, max: Duration, n: u32, unit: f64) -> Duration {
    let factor = 2f64.powi(n.min(62) as i32) * (1.0 + 0.05 * (2.0 * unit - 1.0));
    let secs = (base.as_secs_f64() * factor).min(max.as_secs_f64());
    Duration::from_secs_f64(secs.max(0.0))
}

/// Split records of the given sizes, in order, into contiguous batches of at most `max_count`
/// records and `max_bytes` bytes. A record larger than `max_bytes` gets a batch of its own
/// (configuration validation keeps records below the request limit).
pub fn plan_batches(
    sizes: impl IntoIterator<Item = usize>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut count, mut bytes) = (0usize, 0usize, 0usize);
    let mut end = 0usize;
    for size in sizes {
        if count > 0 && (count == max_count || bytes + size > max_bytes) {
            batches.push(start..end);
            start = end;
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += size;
        end += 1;
    }
    if count > 0 {
        batches.push(start..end);
    }
    batches
}
