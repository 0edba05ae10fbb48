//! Events packed in one buffer (the sink world's `put-packed`): one tag, a time per event, the
//! records back to back with where each ends. One buffer crosses into the component instead of
//! two allocations an event; the report back lists only what was not delivered.

use super::{Event, Outcome, PutReport, Rejected, RejectionKind};

/// The events of a packed chunk, borrowing the buffer: record `i` is
/// `records[ends[i-1]..ends[i]]` (from 0 for the first). An event whose bounds fall outside
/// `records` (an end before the one before it, or either past the buffer) or that has no time gets an
/// empty record here, and its rejection in the second list: the caller puts every event (so
/// indices stay those of `ends`) and then gives those their own outcome ([`settle_unpacked`]).
pub fn unpack<'a>(
    tag: &'a str,
    time: impl Fn(usize) -> Option<(i64, u32)>,
    records: &'a [u8],
    ends: &[u32],
) -> (Vec<Event<'a>>, Vec<(usize, Rejected)>) {
    let mut events = Vec::with_capacity(ends.len());
    let mut refused = Vec::new();
    for (i, &end) in ends.iter().enumerate() {
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        let end = end as usize;
        let span = (start <= end && end <= records.len()).then(|| &records[start..end]);
        let (record, (seconds, nanoseconds)) = match (span, time(i)) {
            (Some(record), Some(t)) => (record, t),
            (None, _) => {
                refused.push((
                    i,
                    rejected(format!(
                        "the event's record spans bytes {start}..{end}, outside the records given (0..{})",
                        records.len()
                    )),
                ));
                (&[][..], (0, 0))
            }
            (Some(_), None) => {
                refused.push((i, rejected("the event has no time".to_string())));
                (&[][..], (0, 0))
            }
        };
        events.push(Event {
            tag,
            seconds,
            nanoseconds,
            record,
        });
    }
    (events, refused)
}

fn rejected(message: String) -> Rejected {
    Rejected {
        kind: RejectionKind::NotJson,
        message,
    }
}

/// The outcomes of a put of unpacked events, with the events [`unpack`] refused given their own.
pub fn settle_unpacked(report: &mut PutReport, refused: Vec<(usize, Rejected)>) {
    for (i, r) in refused {
        if let Some(o) = report.outcomes.get_mut(i) {
            *o = Outcome::Rejected(r);
        }
    }
}

/// A put's outcomes as `put-packed` reports them: how many were delivered, and each of the
/// others with its index, in index order.
pub fn problems(outcomes: Vec<Outcome>) -> (u32, Vec<(u32, Outcome)>) {
    let mut delivered = 0u32;
    let mut problems = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Outcome::Delivered { .. } => delivered += 1,
            other => problems.push((i as u32, other)),
        }
    }
    (delivered, problems)
}

/// The outcomes of `count` events from a packed report: each listed problem at its index,
/// every other event delivered (with no shard or sequence number: the packed report does not
/// carry them). A problem whose index is out of range is ignored; `None` when the counts do not
/// add up (a component that reports otherwise than it should).
pub fn outcomes(count: usize, delivered: u32, problems: Vec<(u32, Outcome)>) -> Option<Vec<Outcome>> {
    if delivered as usize + problems.len() != count {
        return None;
    }
    let mut all: Vec<Outcome> = (0..count)
        .map(|_| Outcome::Delivered {
            shard_id: String::new(),
            sequence_number: String::new(),
        })
        .collect();
    for (i, o) in problems {
        let slot = all.get_mut(i as usize)?;
        if !matches!(slot, Outcome::Delivered { .. }) || matches!(o, Outcome::Delivered { .. }) {
            return None;
        }
        *slot = o;
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(n: usize) -> impl Fn(usize) -> Option<(i64, u32)> {
        move |i| (i < n).then_some((i as i64, 7))
    }

    #[test]
    fn records_are_the_spans_between_ends() {
        let buf = br#"{"a":1}{"b":2}{}"#;
        let (events, refused) = unpack("t", times(3), buf, &[7, 14, 16]);
        assert!(refused.is_empty());
        let records: Vec<&[u8]> = events.iter().map(|e| e.record).collect();
        assert_eq!(records, [&br#"{"a":1}"#[..], br#"{"b":2}"#, b"{}"]);
        assert_eq!(
            (events[2].seconds, events[2].nanoseconds, events[2].tag),
            (2, 7, "t")
        );
    }

    #[test]
    fn bounds_outside_the_buffer_and_missing_times_are_refused_one_by_one() {
        let buf = br#"{"a":1}{"b":2}"#;
        // An end past the buffer (so the next starts past it), an end before the one before it
        // (bounds are each record's own), then one without a time.
        let (events, refused) = unpack("t", times(4), buf, &[7, 99, 3, 14, 14]);
        let places: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(places, [1, 2, 4]);
        assert!(refused[0].1.message.contains("7..99"), "{}", refused[0].1.message);
        assert!(refused[1].1.message.contains("99..3"), "{}", refused[1].1.message);
        assert!(refused[2].1.message.contains("no time"));
        assert_eq!(events.len(), 5);
        assert_eq!(events[3].record, br#"":1}{"b":2}"#);
        assert!(events[1].record.is_empty() && events[2].record.is_empty());
    }

    #[test]
    fn a_report_packs_and_unpacks_to_the_same_verdicts() {
        let delivered = || Outcome::Delivered {
            shard_id: "s".into(),
            sequence_number: "1".into(),
        };
        let bad = Outcome::Rejected(rejected("x".into()));
        let (n, problems) = problems(vec![delivered(), bad.clone(), delivered()]);
        assert_eq!((n, problems.clone()), (2, vec![(1, bad.clone())]));
        let back = outcomes(3, n, problems).unwrap();
        assert!(matches!(back[0], Outcome::Delivered { .. }) && back[1] == bad);
        // Counts that do not add up, an index twice, an index out of range.
        assert!(outcomes(4, 2, vec![(1, bad.clone())]).is_none());
        assert!(outcomes(2, 0, vec![(1, bad.clone()), (1, bad.clone())]).is_none());
        assert!(outcomes(1, 0, vec![(5, bad)]).is_none());
    }
}
