//! What a door remembers of a chunk (or an HTTP body) between its sender's attempts, and the
//! delivery rule every door answers by.
//!
//! ## The rule
//! A record that is not stored yet and may still be (throttled, 5xx, the network, expired or
//! missing credentials, a refusal the operator can fix, a deadline) is never given up while the
//! sender can keep it: the door asks for a retry (Fluent Bit's `FLB_RETRY`, HTTP 503 +
//! `Retry-After`) and remembers which records of the chunk were settled (stored, or failed in a
//! way no retry can fix), so the retry sends only the others. A record is final when it is
//! rejected, when its failure is about the record itself ([`Code::is_final`]), when
//! `drop_failed_records_after_batch_request_retries` is on, or when the retry bound
//! (`buffer.retry_forever`, `retry_max_times`, `retry_timeout`) is spent.
//!
//! ## What is remembered
//! An [`Entry`] per chunk: how many records it holds, the settled ones ([`Ranges`] of their
//! places), how many were stored, the attempts so far and when the first was. Entries are keyed
//! by the chunk's identity (a SHA-256 the host computes: tag and bytes for Fluent Bit, the
//! sender and the body for HTTP), kept in a bounded [`Ledger`] and, by the hosts that can, on
//! disk (their text form, [`Entry::to_text`]). This module does no I/O.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::config::buffer::RetryBound;
use crate::kinesis::{Code, Outcome};

/// A set of record places (0-based), as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    pub fn new() -> Ranges {
        Ranges(Vec::new())
    }

    pub fn contains(&self, i: u32) -> bool {
        let at = self.0.partition_point(|&(_, end)| end <= i);
        self.0.get(at).is_some_and(|&(start, _)| start <= i)
    }

    /// Add `i`; adding what is there already changes nothing.
    pub fn insert(&mut self, i: u32) {
        let at = self.0.partition_point(|&(_, end)| end < i);
        match self.0.get(at).copied() {
            Some((start, end)) if start <= i && i < end => {}
            // Right after the range at `at` (its end is i): extend it, maybe into the next.
            Some((start, end)) if end == i => {
                let next = self.0.get(at + 1).copied();
                match next {
                    Some((ns, ne)) if ns == i + 1 => {
                        self.0[at] = (start, ne);
                        self.0.remove(at + 1);
                    }
                    _ => self.0[at] = (start, end + 1),
                }
            }
            // Right before the range at `at`.
            Some((start, end)) if start == i + 1 => self.0[at] = (i, end),
            _ => self.0.insert(at, (i, i + 1)),
        }
    }

    /// How many places the set holds.
    pub fn len(&self) -> usize {
        self.0.iter().map(|&(s, e)| (e - s) as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every place of `0..n` not in the set, in order.
    pub fn missing(&self, n: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity((n as usize).saturating_sub(self.len()));
        let mut next = 0;
        for &(start, end) in &self.0 {
            if start >= n {
                break;
            }
            out.extend(next..start);
            next = end;
        }
        if next < n {
            out.extend(next..n);
        }
        out
    }

    /// The text form: `0-4,7,9-12` (inclusive bounds); empty for the empty set.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (k, &(start, end)) in self.0.iter().enumerate() {
            if k > 0 {
                text.push(',');
            }
            if end - start == 1 {
                text.push_str(&start.to_string());
            } else {
                text.push_str(&format!("{start}-{}", end - 1));
            }
        }
        text
    }

    /// Read [`Ranges::to_text`]'s form; every place must be below `n`. Ranges may come in any
    /// order and overlap.
    pub fn parse(text: &str, n: u32) -> Result<Ranges, String> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let number = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{part:?} is not a place or a range of places"))
            };
            let (start, last) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(part)?, number(part)?),
            };
            if start > last || last >= n {
                return Err(format!("{part:?} is not a range of places below {n}"));
            }
            pairs.push((start, last + 1));
        }
        pairs.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
        for (start, end) in pairs {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Ok(Ranges(merged))
    }
}

/// What a door remembers of one chunk between its sender's attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Records in the chunk.
    pub records: u32,
    /// Places of the records settled: stored, or final.
    pub settled: Ranges,
    /// How many of them were stored.
    pub stored: u32,
    /// Attempts begun so far.
    pub attempts: u32,
    /// Attempts in a row that ended in a trap of the component with nothing stored.
    pub traps: u32,
    /// When the first attempt began, in seconds since the Unix epoch.
    pub first_attempt: u64,
}

/// The request header by which a host that remembers bodies itself (`kinesis-ship serve`) hands
/// the proxy world a body's entry (its text form; empty for a body it has not seen). The answer
/// then carries the entry after the attempt as `ledger`, and every problem.
pub const LEDGER_HEADER: &str = "kinesis-output-ledger";

/// The first line of an entry's text form.
const ENTRY_MAGIC: &str = "kinesis-output-ledger 1";

impl Entry {
    /// A chunk seen for the first time.
    pub fn new(records: u32, now: u64) -> Entry {
        Entry {
            records,
            settled: Ranges::new(),
            stored: 0,
            attempts: 0,
            traps: 0,
            first_attempt: now,
        }
    }

    /// Every record settled.
    pub fn complete(&self) -> bool {
        self.settled.len() as u64 >= u64::from(self.records)
    }

    /// The text form, one line (for an HTTP header) or a small file.
    pub fn to_text(&self) -> String {
        format!(
            "{ENTRY_MAGIC};records={};stored={};attempts={};traps={};first={};settled={}",
            self.records,
            self.stored,
            self.attempts,
            self.traps,
            self.first_attempt,
            self.settled.to_text()
        )
    }

    /// Read [`Entry::to_text`]'s form.
    pub fn parse(text: &str) -> Result<Entry, String> {
        let mut parts = text.trim().split(';');
        if parts.next() != Some(ENTRY_MAGIC) {
            return Err(format!("not a ledger entry (it must start with {ENTRY_MAGIC:?})"));
        }
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not name=value"))?;
            fields.insert(k, v);
        }
        let number = |name: &str| -> Result<u64, String> {
            fields
                .get(name)
                .ok_or_else(|| format!("{name} is missing"))?
                .parse::<u64>()
                .map_err(|_| format!("{name} is not a whole number"))
        };
        let small = |name: &str| -> Result<u32, String> {
            u32::try_from(number(name)?).map_err(|_| format!("{name} is too large"))
        };
        let records = small("records")?;
        let settled = Ranges::parse(fields.get("settled").copied().unwrap_or(""), records)?;
        let stored = small("stored")?;
        if stored as usize > settled.len() {
            return Err("more records stored than settled".to_string());
        }
        Ok(Entry {
            records,
            settled,
            stored,
            attempts: small("attempts")?,
            traps: small("traps")?,
            first_attempt: number("first")?,
        })
    }
}

/// How a door treats the failures a put leaves: the retry bound and the seed's give-up switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rule {
    pub bound: RetryBound,
    /// `drop_failed_records_after_batch_request_retries`: every failure is final.
    pub drop_failed: bool,
}

/// The wait before a door that keeps its records itself (`kinesis-ship`, the command world)
/// makes attempt `attempts + 1`: Fluentd's `retry_wait` of 1 s doubling, at most
/// [`MAX_DOOR_WAIT`].
pub fn door_backoff(attempts: u32) -> Duration {
    let doubled = 1u64 << attempts.saturating_sub(1).min(16);
    Duration::from_secs(doubled).min(MAX_DOOR_WAIT)
}

/// The longest wait between a door's attempts.
pub const MAX_DOOR_WAIT: Duration = Duration::from_secs(300);

/// Attempts in a row ending in a trap with nothing stored, after which the records still not
/// stored are final (`ComponentTrap`): a chunk that traps the component again and again is
/// poison, not bad luck.
pub const MAX_TRAPS: u32 = 2;

/// What became of one record of the chunk in an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Stored,
    /// Not stored, and never will be: report it (dead letter, problems) once.
    Final,
    /// Not stored yet; the sender's retry may store it.
    Held,
}

impl Disposition {
    /// An outcome's disposition under `rule` (before the retry bound is applied).
    pub fn of(outcome: &Outcome, rule: &Rule) -> Disposition {
        match outcome {
            Outcome::Delivered { .. } => Disposition::Stored,
            Outcome::Rejected(_) => Disposition::Final,
            Outcome::Failed { code, .. } if rule.drop_failed || code.is_final() => Disposition::Final,
            Outcome::Failed { .. } => Disposition::Held,
        }
    }
}

/// What the sender is told once an attempt has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every record of the chunk stored.
    Done,
    /// Every record settled: some stored, the others final.
    Partial,
    /// Every record settled, none stored: re-sending cannot help.
    GiveUp,
    /// Records may still be stored: send the chunk again; only they go out.
    Retry,
}

/// One attempt at a chunk: the places to send and, once outcomes come, what to tell.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub entry: Entry,
    /// Records stored before this attempt began.
    stored_before: u32,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub verdict: Verdict,
    /// Places that became final in this attempt, each with its outcome (a held failure given up
    /// carries the bound's reason in its message): the ones to report, exactly once.
    pub finals: Vec<(u32, Outcome)>,
    /// Places still held (when the verdict is [`Verdict::Retry`]).
    pub held: Vec<u32>,
    /// The outcome of the first place held in this attempt: why the sender is asked to retry.
    pub why_held: Option<Outcome>,
    /// Records stored by this attempt (as its answers came, and in its outcomes).
    pub stored_now: u32,
}

impl Attempt {
    /// Begin an attempt at a chunk of `records` records, remembered as `previous` (if at all):
    /// a previous entry of another size is not this chunk's and is ignored.
    pub fn begin(previous: Option<Entry>, records: u32, now: u64) -> Attempt {
        let mut entry = previous
            .filter(|e| e.records == records)
            .unwrap_or_else(|| Entry::new(records, now));
        entry.attempts = entry.attempts.saturating_add(1);
        Attempt {
            stored_before: entry.stored,
            entry,
        }
    }

    /// Begin the next attempt at the same chunk (a door that retries itself, holding the
    /// records: `kinesis-ship`, the command world).
    pub fn next(&mut self) {
        self.entry.attempts = self.entry.attempts.saturating_add(1);
        self.stored_before = self.entry.stored;
    }

    /// The places to send this time: every one not settled.
    pub fn to_send(&self) -> Vec<u32> {
        self.entry.settled.missing(self.entry.records)
    }

    /// The record at `place` was stored (a host hears it as each answer comes).
    pub fn stored(&mut self, place: u32) {
        if place < self.entry.records && !self.entry.settled.contains(place) {
            self.entry.settled.insert(place);
            self.entry.stored += 1;
        }
    }

    /// The attempt ended in a trap: the records stored before it are known (see
    /// [`Attempt::stored`]); the others stay held, unless the chunk has trapped
    /// [`MAX_TRAPS`] times in a row with nothing stored.
    pub fn trapped(&mut self, message: &str, rule: &Rule, now: u64) -> Settlement {
        self.entry.traps = if self.entry.stored > self.stored_before {
            0
        } else {
            self.entry.traps.saturating_add(1)
        };
        let outcomes: Vec<(u32, Outcome)> = self
            .to_send()
            .into_iter()
            .map(|place| {
                (
                    place,
                    Outcome::Failed {
                        code: Code::ComponentTrap,
                        message: message.to_string(),
                        attempts: 0,
                    },
                )
            })
            .collect();
        let poison = self.entry.traps >= MAX_TRAPS;
        self.settle_with(outcomes, rule, now, poison)
    }

    /// Take in the outcomes of the places sent (`outcomes[k]` is `sent[k]`'s) and decide.
    /// Places stored during the attempt may have been taken in already ([`Attempt::stored`]).
    pub fn settle(&mut self, sent: &[u32], outcomes: Vec<Outcome>, rule: &Rule, now: u64) -> Settlement {
        let pairs = sent.iter().copied().zip(outcomes).collect();
        self.settle_with(pairs, rule, now, false)
    }

    /// `poison`: the chunk trapped the component [`MAX_TRAPS`] times; nothing more is held.
    fn settle_with(
        &mut self,
        outcomes: Vec<(u32, Outcome)>,
        rule: &Rule,
        now: u64,
        poison: bool,
    ) -> Settlement {
        let since_first = Duration::from_secs(now.saturating_sub(self.entry.first_attempt));
        let may_retry = !poison && rule.bound.allows(self.entry.attempts, since_first);
        let why_final = if poison {
            format!("the chunk trapped the component {} times", self.entry.traps)
        } else {
            rule.bound.exhausted_reason(self.entry.attempts)
        };
        let mut finals = Vec::new();
        let mut held = Vec::new();
        let mut why_held = None;
        for (place, outcome) in outcomes {
            if place >= self.entry.records || self.entry.settled.contains(place) {
                continue;
            }
            match Disposition::of(&outcome, rule) {
                Disposition::Stored => {
                    self.entry.settled.insert(place);
                    self.entry.stored += 1;
                }
                Disposition::Final => {
                    self.entry.settled.insert(place);
                    finals.push((place, outcome));
                }
                Disposition::Held if may_retry => {
                    held.push(place);
                    if why_held.is_none() {
                        why_held = Some(outcome);
                    }
                }
                Disposition::Held => {
                    self.entry.settled.insert(place);
                    let outcome = match outcome {
                        Outcome::Failed {
                            code,
                            message,
                            attempts,
                        } => Outcome::Failed {
                            code,
                            message: format!("{message} ({why_final})"),
                            attempts,
                        },
                        other => other,
                    };
                    finals.push((place, outcome));
                }
            }
        }
        let verdict = if !held.is_empty() {
            Verdict::Retry
        } else if !self.entry.complete() {
            // Places neither sent nor settled (a host that sent only part): they are held.
            held = self.to_send();
            Verdict::Retry
        } else if self.entry.stored == self.entry.records {
            Verdict::Done
        } else if self.entry.stored > 0 {
            Verdict::Partial
        } else {
            Verdict::GiveUp
        };
        Settlement {
            verdict,
            finals,
            held,
            why_held,
            stored_now: self.entry.stored - self.stored_before,
        }
    }
}

/// A chunk's identity: a SHA-256 its host computes over what identifies it.
pub type Key = [u8; 32];

/// The SHA-256 of `parts`, each preceded by its length (so that no two different lists of parts
/// hash alike): a chunk's or a body's key.
pub fn key_of(parts: &[&[u8]]) -> Key {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The key as 64 lowercase hex characters (file names, logs).
pub fn key_hex(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Entries of chunks not yet complete, at most `capacity` of them and about `max_bytes` in all
/// (an entry weighs [`Entry::weight`]): past either, the ones touched longest ago are evicted
/// (and counted).
#[derive(Debug)]
pub struct Ledger {
    entries: HashMap<Key, (Entry, u64)>,
    /// Keys by the time they were last touched, oldest first.
    order: std::collections::BTreeMap<u64, Key>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    clock: u64,
    /// Entries evicted to stay within the bounds.
    pub evicted: u64,
}

/// The default bound on the chunks a ledger remembers.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// The default bound on the bytes a ledger holds.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

impl Entry {
    /// About the bytes the entry takes in memory: a settled set of alternating places weighs
    /// more than a chunk's worth of whole ranges.
    pub fn weight(&self) -> usize {
        64 + self.settled.0.len() * 8
    }
}

impl Ledger {
    pub fn new(capacity: usize, max_bytes: usize) -> Ledger {
        Ledger {
            entries: HashMap::new(),
            order: std::collections::BTreeMap::new(),
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            clock: 0,
            evicted: 0,
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key).map(|(e, _)| e)
    }

    /// Keep `entry` for `key`; returns the keys evicted to make room (never `key` itself).
    pub fn put(&mut self, key: Key, entry: Entry) -> Vec<Key> {
        self.clock += 1;
        self.bytes += entry.weight();
        if let Some((old, touched)) = self.entries.insert(key, (entry, self.clock)) {
            self.bytes -= old.weight();
            self.order.remove(&touched);
        }
        self.order.insert(self.clock, key);
        let mut evicted = Vec::new();
        while self.entries.len() > self.capacity || (self.bytes > self.max_bytes && self.entries.len() > 1) {
            let (_, oldest) = self.order.pop_first().expect("not empty");
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.bytes -= old.weight();
            }
            self.evicted += 1;
            evicted.push(oldest);
        }
        evicted
    }

    pub fn remove(&mut self, key: &Key) -> Option<Entry> {
        let (entry, touched) = self.entries.remove(key)?;
        self.order.remove(&touched);
        self.bytes -= entry.weight();
        Some(entry)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Done => "done",
            Verdict::Partial => "partial",
            Verdict::GiveUp => "give up",
            Verdict::Retry => "retry",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::{Rejected, RejectionKind};
    use proptest::prelude::*;

    fn delivered() -> Outcome {
        Outcome::Delivered {
            shard_id: "shardId-0".into(),
            sequence_number: "1".into(),
        }
    }

    fn failed(code: &str) -> Outcome {
        Outcome::Failed {
            code: Code::parse(code),
            message: "m".into(),
            attempts: 9,
        }
    }

    fn rejected() -> Outcome {
        Outcome::Rejected(Rejected {
            kind: RejectionKind::NoPartitionKey,
            message: "no key".into(),
        })
    }

    proptest! {
        /// Ranges hold exactly what was inserted, in any order, and read back from their text.
        #[test]
        fn ranges_are_a_set(places in proptest::collection::vec(0u32..200, 0..120)) {
            let mut r = Ranges::new();
            let mut set = std::collections::BTreeSet::new();
            for p in &places {
                r.insert(*p);
                set.insert(*p);
            }
            for i in 0..210 {
                prop_assert_eq!(r.contains(i), set.contains(&i), "{}", i);
            }
            prop_assert_eq!(r.len(), set.len());
            let missing: Vec<u32> = (0..200).filter(|i| !set.contains(i)).collect();
            prop_assert_eq!(r.missing(200), missing);
            prop_assert_eq!(Ranges::parse(&r.to_text(), 200).unwrap(), r.clone());
            // Adjacent places join: no two ranges touch.
            prop_assert!(r.0.windows(2).all(|w| w[0].1 < w[1].0));
        }
    }

    #[test]
    fn ranges_text_is_checked() {
        assert_eq!(Ranges::parse("5,0-2, 1-3", 10).unwrap().to_text(), "0-3,5");
        assert!(Ranges::parse("3-1", 10).is_err());
        assert!(Ranges::parse("10", 10).is_err());
        assert!(Ranges::parse("x", 10).is_err());
        assert_eq!(Ranges::parse("", 0).unwrap(), Ranges::new());
    }

    #[test]
    fn an_entry_reads_back_from_its_text_and_bad_text_is_refused() {
        let mut e = Entry::new(10, 1_700_000_000);
        e.settled.insert(3);
        e.settled.insert(4);
        e.stored = 2;
        e.attempts = 3;
        e.traps = 1;
        assert_eq!(Entry::parse(&e.to_text()).unwrap(), e);
        for bad in [
            "",
            "kinesis-output-ledger 2;records=1",
            "kinesis-output-ledger 1;records=2;stored=3;attempts=1;traps=0;first=0;settled=0-1",
            "kinesis-output-ledger 1;records=2;stored=0;attempts=1;traps=0;first=0;settled=5",
            "kinesis-output-ledger 1;records=x",
        ] {
            assert!(Entry::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Held records are asked for again and only they are sent; stored and final ones never.
    #[test]
    fn a_retry_sends_only_what_was_not_settled() {
        let rule = Rule::default();
        let mut a = Attempt::begin(None, 5, 100);
        assert_eq!(a.to_send(), vec![0, 1, 2, 3, 4]);
        // Place 1 stored as its answer came, before the put ended.
        a.stored(1);
        let s = a.settle(
            &[0, 1, 2, 3, 4],
            vec![
                failed("ProvisionedThroughputExceededException"),
                delivered(),
                rejected(),
                failed("ValidationException"),
                failed("NetworkError"),
            ],
            &rule,
            101,
        );
        assert_eq!(s.verdict, Verdict::Retry);
        assert_eq!(s.held, vec![0, 4]);
        assert_eq!(s.finals.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(s.stored_now, 1);
        let text = a.entry.to_text();
        let mut b = Attempt::begin(Some(Entry::parse(&text).unwrap()), 5, 130);
        assert_eq!(b.to_send(), vec![0, 4]);
        assert_eq!(b.entry.attempts, 2);
        let s = b.settle(&[0, 4], vec![delivered(), delivered()], &rule, 131);
        assert_eq!(s.verdict, Verdict::Partial);
        assert!(s.finals.is_empty(), "finals are reported once");
        assert_eq!(s.stored_now, 2);
        assert!(b.entry.complete());
        // A chunk of another size under the same key is not this one.
        assert_eq!(Attempt::begin(Some(b.entry.clone()), 6, 0).to_send().len(), 6);
    }

    #[test]
    fn the_bound_and_the_seed_switch_make_held_records_final() {
        let once = Rule {
            bound: RetryBound {
                max_times: Some(1),
                ..RetryBound::default()
            },
            drop_failed: false,
        };
        let throttled = || failed("ProvisionedThroughputExceededException");
        let mut a = Attempt::begin(None, 2, 0);
        assert_eq!(
            a.settle(&[0, 1], vec![throttled(), delivered()], &once, 0)
                .verdict,
            Verdict::Retry
        );
        let mut a = Attempt::begin(Some(a.entry), 2, 10);
        let s = a.settle(&[0], vec![throttled()], &once, 10);
        assert_eq!(s.verdict, Verdict::Partial);
        match &s.finals[..] {
            [(0, Outcome::Failed { message, .. })] => {
                assert!(message.contains("retry_max_times"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let timeout = Rule {
            bound: RetryBound {
                timeout: Duration::from_secs(60),
                ..RetryBound::default()
            },
            drop_failed: false,
        };
        let mut a = Attempt::begin(Some(Entry::new(1, 0)), 1, 61);
        assert_eq!(
            a.settle(&[0], vec![throttled()], &timeout, 61).verdict,
            Verdict::GiveUp
        );
        let seed = Rule {
            drop_failed: true,
            ..Rule::default()
        };
        let mut a = Attempt::begin(None, 1, 0);
        assert_eq!(
            a.settle(&[0], vec![throttled()], &seed, 0).verdict,
            Verdict::GiveUp
        );
        let mut a = Attempt::begin(None, 1, 0);
        assert_eq!(a.settle(&[0], vec![delivered()], &seed, 0).verdict, Verdict::Done);
    }

    #[test]
    fn a_chunk_that_traps_twice_in_a_row_with_nothing_stored_is_given_up() {
        let rule = Rule::default();
        let mut a = Attempt::begin(None, 3, 0);
        a.stored(0);
        let s = a.trapped("out of memory", &rule, 0);
        assert_eq!((s.verdict, s.held.clone()), (Verdict::Retry, vec![1, 2]));
        assert_eq!(a.entry.traps, 0, "something was stored: not poison");
        let mut a = Attempt::begin(Some(a.entry), 3, 5);
        let s = a.trapped("out of memory", &rule, 5);
        assert_eq!(s.verdict, Verdict::Retry);
        let mut a = Attempt::begin(Some(a.entry), 3, 6);
        let s = a.trapped("out of memory", &rule, 6);
        assert_eq!(s.verdict, Verdict::Partial);
        assert_eq!(s.finals.len(), 2);
        match &s.finals[0].1 {
            Outcome::Failed { code, message, .. } => {
                assert_eq!(*code, Code::ComponentTrap);
                assert!(message.contains("trapped the component 2 times"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_door_waits_longer_after_each_attempt_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|a| door_backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(door_backoff(u32::MAX), MAX_DOOR_WAIT);
    }

    #[test]
    fn the_ledger_is_bounded_and_evicts_the_oldest() {
        let mut l = Ledger::new(2, DEFAULT_MAX_BYTES);
        let key = |b: u8| [b; 32];
        assert!(l.put(key(1), Entry::new(1, 0)).is_empty());
        assert!(l.put(key(2), Entry::new(1, 0)).is_empty());
        // Touching 1 again makes 2 the oldest.
        assert!(l.put(key(1), Entry::new(1, 0)).is_empty());
        assert_eq!(l.put(key(3), Entry::new(1, 0)), vec![key(2)]);
        assert_eq!((l.len(), l.evicted), (2, 1));
        assert!(l.get(&key(2)).is_none() && l.get(&key(1)).is_some());
        // By bytes: an entry of many ranges (a body of alternating settled places) pushes the
        // others out, never itself.
        let mut heavy = Entry::new(20_000, 0);
        for p in (0..20_000).step_by(2) {
            heavy.settled.insert(p);
        }
        let mut l = Ledger::new(100, 1000);
        l.put(key(1), Entry::new(1, 0));
        l.put(key(2), Entry::new(1, 0));
        assert_eq!(l.put(key(9), heavy.clone()), vec![key(1), key(2)]);
        assert_eq!(l.len(), 1);
        assert_eq!(l.remove(&key(9)), Some(heavy));
        assert!(l.is_empty());
        assert_eq!(key_hex(&key(0xab))[..4], *"abab");
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
        // SHA-256 of the length-prefixed parts: hosts compute the same key their own way.
        assert_eq!(
            key_hex(&key_of(&[b""])),
            "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc"
        );
    }
}
