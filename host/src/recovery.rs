//! After a trap: which of a put's records the service stored. The host keeps the PutRecords
//! answers it saw (`InstanceOptions::track_accepted`); the native core formats each record as
//! the component did, and the records whose data the service answered as stored are told apart
//! from the rest, which can go again without a second copy.

use std::collections::HashMap;

use base64::Engine as _;
use kinesis_output::front::ledger::Attempt;
use kinesis_output::shaping::{prepare, Shape};
use kinesis_output::Event;

/// Of `items` put with `tag`, the ones the service stored according to `accepted` (the base64
/// `Data` of every record answered as stored, counted with repeats), and the rest; `event`
/// gives each item's time and record as they were put.
pub fn split_stored<T>(
    shape: &Shape,
    tag: &str,
    items: Vec<T>,
    accepted: Vec<String>,
    event: impl for<'a> Fn(&'a T) -> ((i64, u32), &'a [u8]),
) -> (Vec<T>, Vec<T>) {
    let mut left: HashMap<String, usize> = HashMap::new();
    for data in accepted {
        *left.entry(data).or_default() += 1;
    }
    let (mut stored, mut again) = (Vec::new(), Vec::new());
    for item in items {
        let ((seconds, nanoseconds), record) = event(&item);
        let event = Event {
            tag,
            seconds,
            nanoseconds,
            record,
        };
        // The key does not matter here: only the data is compared.
        let data = prepare(shape, &event, &mut |b| b.fill(0))
            .ok()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p.data));
        match data.and_then(|d| left.get_mut(&d).filter(|n| **n > 0)) {
            Some(n) => {
                *n -= 1;
                stored.push(item);
            }
            None => again.push(item),
        }
    }
    (stored, again)
}

/// After a trap: of the records put at `places` (as `events`, in the same order), the ones the
/// service answered as stored (`accepted`) that `attempt` has not heard of yet are settled as
/// stored. Without `shape` (aggregation: records packed together cannot be told apart) nothing
/// is.
pub fn settle_accepted(
    shape: Option<&Shape>,
    places: &[u32],
    events: &crate::sink::PackedEvents,
    accepted: Vec<String>,
    attempt: &mut Attempt,
) {
    let Some(shape) = shape else { return };
    let open: Vec<(u32, (i64, u32), &[u8])> = places
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, p)| !attempt.entry.settled.contains(*p))
        .map(|(i, p)| (p, events.time(i), events.record(i)))
        .collect();
    let (stored, _) = split_stored(shape, &events.tag, open, accepted, |o| (o.1, o.2));
    for (place, _, _) in stored {
        attempt.stored(place);
    }
}
