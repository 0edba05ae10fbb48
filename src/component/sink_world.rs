//! The `sink` world: the typed `kinesis:output/shipper` interface for embedders.

use std::cell::RefCell;

use super::bindings;
use super::Wasi;
use crate::delivery::Sink;
use crate::kinesis::{packed, Event, Outcome, RejectionKind};
use bindings::exports::kinesis::output::shipper as api;

/// The exported `sink` resource.
struct SinkResource {
    inner: RefCell<Sink>,
}

struct Component;

impl api::Guest for Component {
    type Sink = SinkResource;
}

impl api::GuestSink for SinkResource {
    fn open(config: String) -> Result<api::Sink, api::ConfigError> {
        Sink::open(&config, &mut Wasi)
            .map(|sink| {
                api::Sink::new(SinkResource {
                    inner: RefCell::new(sink),
                })
            })
            .map_err(|e| api::ConfigError {
                field: e.field,
                message: e.message,
            })
    }

    fn put(&self, events: Vec<api::Event>) -> api::PutReport {
        let events: Vec<Event<'_>> = events
            .iter()
            .map(|e| Event {
                tag: &e.tag,
                seconds: e.time.seconds,
                nanoseconds: e.time.nanoseconds,
                record: &e.record,
            })
            .collect();
        let report = self.inner.borrow_mut().put(&events, &mut Wasi);
        api::PutReport {
            outcomes: report.outcomes.into_iter().map(outcome).collect(),
            counters: counters(&report.counters),
            credential_source: report.credential_source,
            first_key_cut: report.first_key_cut.map(|i| i as u32),
        }
    }

    fn put_packed(&self, packed: api::PackedEvents) -> api::PackedReport {
        let times = &packed.times;
        let (events, refused) = packed::unpack(
            &packed.tag,
            |i| times.get(i).map(|t| (t.seconds, t.nanoseconds)),
            &packed.records,
            &packed.ends,
        );
        let mut report = self.inner.borrow_mut().put(&events, &mut Wasi);
        packed::settle_unpacked(&mut report, refused);
        let (delivered, problems) = packed::problems(report.outcomes);
        api::PackedReport {
            delivered,
            problems: problems.into_iter().map(|(i, o)| (i, outcome(o))).collect(),
            counters: counters(&report.counters),
            credential_source: report.credential_source,
            first_key_cut: report.first_key_cut.map(|i| i as u32),
        }
    }
}

fn counters(c: &crate::kinesis::Counters) -> api::Counters {
    api::Counters {
        requests: c.requests,
        retries: c.retries,
        throttled_records: c.throttled_records,
        bytes_sent: c.bytes_sent,
        credential_refreshes: c.credential_refreshes,
        partition_keys_truncated: c.partition_keys_truncated,
    }
}

fn outcome(o: Outcome) -> api::Outcome {
    match o {
        Outcome::Delivered {
            shard_id,
            sequence_number,
        } => api::Outcome::Delivered(api::Delivered {
            shard_id,
            sequence_number,
        }),
        Outcome::Failed {
            code,
            message,
            attempts,
        } => api::Outcome::Failed(api::Failed {
            code: code.as_str().to_string(),
            message,
            attempts,
        }),
        Outcome::Rejected(r) => api::Outcome::Rejected(api::Rejected {
            kind: rejection_kind(r.kind),
            message: r.message,
        }),
    }
}

/// The WIT enum of a rejection: the one place the core's kinds map to it (hosts map back with
/// the same names; `kinesis::code` spells them).
fn rejection_kind(kind: RejectionKind) -> api::RejectionKind {
    match kind {
        RejectionKind::NotJson => api::RejectionKind::NotJson,
        RejectionKind::NotAnObject => api::RejectionKind::NotAnObject,
        RejectionKind::NoPartitionKey => api::RejectionKind::NoPartitionKey,
        RejectionKind::TooLarge => api::RejectionKind::TooLarge,
        RejectionKind::NoDataKey => api::RejectionKind::NoDataKey,
        RejectionKind::NoStreamName => api::RejectionKind::NoStreamName,
    }
}

bindings::export!(Component with_types_in bindings);
