//! Counters in Fluent Bit's own metrics (cmetrics, served by its HTTP server at
//! `/api/v2/metrics/prometheus`), under the names our other hosts use:
//! `kinesis_output_records_total{outcome}`, `kinesis_output_requests_total`,
//! `kinesis_output_retries_total`, `kinesis_output_throttled_records_total`,
//! `kinesis_output_bytes_sent_total`, `kinesis_output_credential_refreshes_total`,
//! `kinesis_output_partition_keys_truncated_total`,
//! `kinesis_output_failed_records_total{code}`, `kinesis_output_rejected_records_total{kind}`.
//!
//! The plugin asks Fluent Bit for its output instance's `struct cmt` and finds cmetrics'
//! functions among the symbols Fluent Bit exports; where either is missing (another host of the
//! ABI, a Fluent Bit built without them), there are no counters and the plugin says so once.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::{SystemTime, UNIX_EPOCH};

use kinesis_output::front::Tally;

type CounterCreate = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
) -> *mut c_void;
type CounterAdd = unsafe extern "C" fn(*mut c_void, u64, f64, c_int, *const *const c_char) -> c_int;

/// The counters, created in one output instance's `struct cmt`.
pub struct Metrics {
    add: CounterAdd,
    records: *mut c_void,
    requests: *mut c_void,
    retries: *mut c_void,
    throttled: *mut c_void,
    bytes: *mut c_void,
    credentials: *mut c_void,
    keys_cut: *mut c_void,
    failed: *mut c_void,
    rejected: *mut c_void,
}

// SAFETY: cmetrics counters update their values atomically; the pointers stay valid while the
// output instance lives, which outlives the plugin's context.
unsafe impl Send for Metrics {}
unsafe impl Sync for Metrics {}

fn symbol(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym over the symbols already loaded in the process.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

impl Metrics {
    /// The counters in `cmt` (Fluent Bit's `output_get_cmt_instance`), or `None` without
    /// cmetrics.
    ///
    /// # Safety
    /// `cmt` is null or Fluent Bit's `struct cmt` of this output instance.
    pub unsafe fn new(cmt: *mut c_void) -> Option<Metrics> {
        let (create, add) = (symbol(c"cmt_counter_create"), symbol(c"cmt_counter_add"));
        if cmt.is_null() || create.is_null() || add.is_null() {
            return None;
        }
        let create: CounterCreate = std::mem::transmute::<*mut c_void, CounterCreate>(create);
        let counter = |name: &CStr, help: &CStr, labels: &[&CStr]| -> *mut c_void {
            let keys: Vec<*const c_char> = labels.iter().map(|l| l.as_ptr()).collect();
            create(
                cmt,
                c"kinesis".as_ptr(),
                c"output".as_ptr(),
                name.as_ptr(),
                help.as_ptr(),
                keys.len() as c_int,
                keys.as_ptr(),
            )
        };
        let metrics = Metrics {
            add: std::mem::transmute::<*mut c_void, CounterAdd>(add),
            records: counter(
                c"records_total",
                c"Records by outcome: delivered, failed, rejected.",
                &[c"outcome"],
            ),
            requests: counter(
                c"requests_total",
                c"PutRecords (service kinesis) and PutRecordBatch (service firehose) requests sent, retries included.",
                &[c"service"],
            ),
            retries: counter(
                c"retries_total",
                c"Records sent again after a retryable failure.",
                &[],
            ),
            throttled: counter(
                c"throttled_records_total",
                c"Record failures that were throttling.",
                &[],
            ),
            bytes: counter(c"bytes_sent_total", c"Request body bytes sent.", &[]),
            credentials: counter(
                c"credential_refreshes_total",
                c"Credentials fetched from their source.",
                &[],
            ),
            keys_cut: counter(
                c"partition_keys_truncated_total",
                c"Partition keys longer than 256 characters, cut to 256.",
                &[],
            ),
            failed: counter(
                c"failed_records_total",
                c"Records not stored, by the code of their last failure.",
                &[c"code"],
            ),
            rejected: counter(
                c"rejected_records_total",
                c"Records never sent, by why.",
                &[c"kind"],
            ),
        };
        let all = [
            metrics.records,
            metrics.requests,
            metrics.retries,
            metrics.throttled,
            metrics.bytes,
            metrics.credentials,
            metrics.keys_cut,
            metrics.failed,
            metrics.rejected,
        ];
        all.iter().all(|c| !c.is_null()).then_some(metrics)
    }

    /// Add one flush's counts; `service` names the service the requests went to (`kinesis`,
    /// `firehose`).
    pub fn add(&self, tally: &Tally, service: &CStr) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let add = |counter: *mut c_void, value: u64, label: Option<&CStr>| {
            if value == 0 {
                return;
            }
            let labels: Vec<*const c_char> = label.iter().map(|l| l.as_ptr()).collect();
            // SAFETY: a counter created in `new`, alive with the output instance.
            unsafe {
                (self.add)(counter, now, value as f64, labels.len() as c_int, labels.as_ptr());
            }
        };
        add(self.records, tally.delivered as u64, Some(c"delivered"));
        add(self.records, tally.failed as u64, Some(c"failed"));
        add(self.records, tally.rejected as u64, Some(c"rejected"));
        add(self.requests, tally.counters.requests, Some(service));
        add(self.retries, tally.counters.retries, None);
        add(self.throttled, tally.counters.throttled_records, None);
        add(self.bytes, tally.counters.bytes_sent, None);
        add(self.credentials, tally.counters.credential_refreshes, None);
        add(self.keys_cut, tally.counters.partition_keys_truncated, None);
        for problem in &tally.problems {
            let counter = match problem.code {
                kinesis_output::Code::Rejected(_) => self.rejected,
                _ => self.failed,
            };
            // Codes are ours or the service's (`…Exception`): no NUL inside.
            if let Ok(code) = std::ffi::CString::new(problem.code.as_str()) {
                add(counter, 1, Some(&code));
            }
        }
    }
}
