//! Any text as what a door remembers of a chunk (a state file, the header serve hands the proxy
//! world): read, or refused with a reason; an entry read writes back to the same text's entry,
//! and an attempt over it never sends a settled place.
#![no_main]

use kinesis_output::front::ledger::{Attempt, Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entry) = Entry::parse(text) else {
        return;
    };
    assert_eq!(Entry::parse(&entry.to_text()).as_ref(), Ok(&entry));
    if entry.records > 100_000 {
        return;
    }
    let attempt = Attempt::begin(Some(entry.clone()), entry.records, 0);
    let sent = attempt.to_send();
    assert_eq!(sent.len() + entry.settled.len(), entry.records as usize);
    assert!(sent.iter().all(|p| !entry.settled.contains(*p)));
});
