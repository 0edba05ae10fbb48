//! The delivery loop: from a chunk of events to one outcome per event.
//!
//! Each round packs the records still pending into PutRecords requests (greedily, in input
//! order), sends them, and reads back which records the service stored. Only the records that
//! failed with a retryable error stay pending for the next round; a stored record is never sent
//! again. Between rounds the loop waits `2^n × retry_base_delay` (±5% jitter, at most
//! `retry_max_delay`), where `n` goes back to 0 after a round in which the service stored at
//! least half of what was sent when `reset_backoff_if_success` is on. Rounds stop when nothing is pending, or when the next wait
//! would pass `put_deadline`; a record fails once it has had `retries_on_batch_request` retries.
//!
//! Under `preserve_order` a round sends only the first pending record of each stream and key,
//! so that a record sent again is never stored after a later record of its key; a round in which
//! all of them were stored is progress, followed at once by the next.

use std::collections::{HashMap, HashSet};

use super::batch::{backoff_delay, plan_batches};
use crate::auth::{Provider, Signer};
use crate::config::{resolve, Config, ConfigError};
use crate::kinesis::aggregate;
use crate::kinesis::code::{classify_error_response, Code, Verdict};
use crate::kinesis::wire::{EntryResult, CONTENT_TYPE};
use crate::kinesis::Service;
use crate::kinesis::{Counters, Event, Outcome, PreparedRecord, PutReport, Rejected, RejectionKind};
use crate::platform::{
    Bounded, Environment, HttpRequest, HttpResponse, Platform, TransportCode, TransportError,
};
use crate::shaping::record::{prepare, random_key};

/// An open sink: a validated configuration and its credentials provider.
#[derive(Debug)]
pub struct Sink {
    config: Config,
    credentials: Provider,
    url: String,
}

/// Records aggregate together when they share a stream and a partition key.
type GroupId = (String, String);

/// A Kinesis record on its way: the events it carries (one, or many when aggregated), its
/// bytes, and its history.
struct Pending {
    events: Vec<usize>,
    record: PreparedRecord,
    attempts: u32,
    /// Its place in the sending order (kept by [`split_heads`]).
    position: usize,
    /// Rounds it was in: the first try and its retries (`retries_on_batch_request` bounds them).
    rounds: u32,
    /// Why its last attempt did not store it; `None` before the first.
    last_error: Option<LastError>,
}

/// Split `pending` (in sending order) into the first record of each stream and partition key,
/// and the rest; each half keeps the order, and every record its position for
/// [`merge_in_order`].
fn split_heads(pending: Vec<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    let first: Vec<bool> = {
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        pending
            .iter()
            .map(|p| seen.insert((p.record.stream.as_str(), p.record.partition_key.as_str())))
            .collect()
    };
    let mut heads = Vec::new();
    let mut rest = Vec::new();
    for ((position, mut p), first) in pending.into_iter().enumerate().zip(first) {
        p.position = position;
        if first {
            heads.push(p);
        } else {
            rest.push(p);
        }
    }
    (heads, rest)
}

/// The records of two halves of [`split_heads`] back in their sending order.
fn merge_in_order(heads: Vec<Pending>, rest: &mut Vec<Pending>) -> Vec<Pending> {
    if rest.is_empty() {
        return heads;
    }
    let mut out = Vec::with_capacity(heads.len() + rest.len());
    let mut rest = std::mem::take(rest).into_iter().peekable();
    for head in heads {
        while rest.peek().is_some_and(|r| r.position < head.position) {
            out.extend(rest.next());
        }
        out.push(head);
    }
    out.extend(rest);
    out
}

/// Why a pending record's last attempt did not store it.
struct LastError {
    code: Code,
    message: String,
}

impl LastError {
    fn new(code: Code, message: impl Into<String>) -> Option<LastError> {
        Some(LastError {
            code,
            message: message.into(),
        })
    }
}

/// What one round of requests came to.
#[derive(Debug, Clone, Copy, Default)]
struct RoundResult {
    /// Records (Kinesis records: aggregates count once) the service stored, and sent.
    stored_records: usize,
    sent_records: usize,
    /// An answer said the credentials had expired: refresh them before the next round.
    credentials_expired: bool,
}

impl Sink {
    /// Validate the JSON configuration and open a sink. Environment variables come from `platform`.
    pub fn open(config_json: &str, platform: &mut dyn Platform) -> Result<Sink, ConfigError> {
        let config = Config::from_json(config_json, platform)?;
        Sink::new_resolved(config, platform)
    }

    /// Open a sink for a configuration already read, resolving its credential source from `env`.
    pub fn new_resolved(config: Config, env: &mut dyn Environment) -> Result<Sink, ConfigError> {
        let credentials = resolve(&config, env)?;
        Ok(Sink::new(config, credentials))
    }

    pub fn new(config: Config, credentials: Provider) -> Sink {
        let url = format!("{}/", config.endpoint);
        Sink {
            config,
            credentials,
            url,
        }
    }

    /// Where this sink's credentials come from, without secrets.
    pub fn credential_source(&self) -> String {
        self.credentials.source.describe()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Ship `events`; returns when each has an outcome, in input order.
    ///
    /// `put_deadline` is a hard bound: every request, credential fetch and wait inside is cut to
    /// the time left ([`Bounded`]), so a put returns within `put_deadline` plus the time to
    /// prepare, sign and answer (milliseconds), whatever the endpoints do.
    pub fn put(&mut self, events: &[Event<'_>], platform: &mut dyn Platform) -> PutReport {
        let started = platform.monotonic();
        let mut bounded = Bounded::new(
            platform,
            started + self.config.put_deadline,
            format!("put_deadline of {:?}", self.config.put_deadline),
        );
        let platform: &mut dyn Platform = &mut bounded;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut counters = Counters::default();
        let refreshes_before = self.credentials.refreshes();

        let mut prepared = Vec::with_capacity(events.len());
        // Random keys draw from one block of random bytes, not one host call per record.
        let mut pool = RandomPool::default();
        let mut first_key_cut = None;
        for (index, event) in events.iter().enumerate() {
            match prepare(&self.config.shape, event, &mut |buf| pool.fill(buf, platform)) {
                Ok(record) => {
                    if record.key_cut {
                        counters.partition_keys_truncated += 1;
                        first_key_cut.get_or_insert(index);
                    }
                    prepared.push((index, record))
                }
                Err(rejected) => outcomes[index] = Some(Outcome::Rejected(rejected)),
            }
        }
        let mut pending: Vec<Pending> = if self.config.shape.joins_records() {
            self.join(prepared, &mut outcomes)
        } else if self.config.shape.aggregate {
            self.aggregate(prepared, &mut outcomes, platform)
        } else {
            prepared
                .into_iter()
                .map(|(index, record)| Pending::new(vec![index], record))
                .collect()
        };

        // Group records by stream, keeping input order within each (a no-op for one stream).
        if !self.config.shape.stream_name.is_fixed() {
            pending.sort_by(|a, b| a.record.stream.cmp(&b.record.stream));
        }

        let mut backoff_exponent = 0u32;
        let mut refresh = false;
        while !pending.is_empty() {
            // Under preserve_order a round sends only the first pending record of each stream
            // and key; the others wait until it is stored.
            let (mut sending, mut waiting) = if self.config.preserve_order {
                split_heads(pending)
            } else {
                (pending, Vec::new())
            };
            let sent = sending.len();
            for p in sending.iter_mut() {
                p.rounds += 1;
            }
            let round = match self.credentials.get(platform, refresh) {
                Ok(credentials) => {
                    let signer = Signer::with_service(
                        &credentials,
                        &self.config.region,
                        self.config.service.signing_name(),
                    );
                    let result =
                        self.send_round(&signer, &mut sending, &mut outcomes, &mut counters, platform);
                    // An expired token forces one refresh before the next round.
                    refresh = result.credentials_expired;
                    result
                }
                Err(e) => {
                    for p in sending.iter_mut() {
                        p.last_error = LastError::new(Code::CredentialsUnavailable, e.message.clone());
                    }
                    RoundResult::default()
                }
            };
            sending.retain(|p| outcomes[p.events[0]].is_none());
            let all_stored = sending.is_empty() && sent > 0;
            // A record never sent waits behind its key's first one: it carries that one's error.
            if !waiting.is_empty() && !sending.is_empty() {
                let blocked: HashMap<(&str, &str), &LastError> = sending
                    .iter()
                    .filter_map(|p| {
                        let key = (p.record.stream.as_str(), p.record.partition_key.as_str());
                        p.last_error.as_ref().map(|e| (key, e))
                    })
                    .collect();
                for w in waiting.iter_mut().filter(|w| w.attempts == 0) {
                    let key = (w.record.stream.as_str(), w.record.partition_key.as_str());
                    if let Some(e) = blocked.get(&key) {
                        w.last_error = LastError::new(
                            e.code.clone(),
                            format!(
                                "not sent: an earlier record of its partition key was not stored (preserve_order): {}",
                                e.message
                            ),
                        );
                    }
                }
            }
            pending = merge_in_order(sending, &mut waiting);
            if pending.is_empty() {
                break;
            }
            if all_stored {
                // Progress, not a failure: the next records of each key go at once.
                continue;
            }
            // A record that has had its rounds fails; the others go on (under preserve_order the
            // next record of its key gets rounds of its own).
            let tries = self.config.retries_on_batch_request.saturating_add(1);
            if pending.iter().any(|p| p.rounds >= tries) {
                let (mut spent, rest): (Vec<Pending>, Vec<Pending>) =
                    pending.into_iter().partition(|p| p.rounds >= tries);
                let why = format!(
                    "not stored after {} retries in this put (retries_on_batch_request)",
                    self.config.retries_on_batch_request
                );
                fail_all(&mut spent, &mut outcomes, &why);
                pending = rest;
                if pending.is_empty() {
                    break;
                }
            }
            // A round in which the service stored most of what was sent is progress: the next
            // wait starts again from the base delay. A storm that lets a few records through is
            // not; resetting then would send into it at the base rate.
            if self.config.reset_backoff_if_success
                && round.stored_records > 0
                && round.stored_records * 2 >= round.sent_records
            {
                backoff_exponent = 0;
            }
            let mut unit = [0u8; 8];
            platform.fill_random(&mut unit);
            let unit = u64::from_le_bytes(unit) as f64 / (u64::MAX as f64 + 1.0);
            let wait = backoff_delay(
                self.config.retry_base_delay,
                self.config.retry_max_delay,
                backoff_exponent,
                unit,
            );
            backoff_exponent += 1;
            let elapsed = platform.monotonic().saturating_sub(started);
            if elapsed + wait >= self.config.put_deadline {
                let why = format!(
                    "not stored: the next retry would pass the put_deadline of {:?}",
                    self.config.put_deadline
                );
                fail_all(&mut pending, &mut outcomes, &why);
                break;
            }
            platform.sleep(wait);
        }

        counters.credential_refreshes = self.credentials.refreshes() - refreshes_before;
        PutReport {
            credential_source: self.credential_source(),
            outcomes: outcomes
                .into_iter()
                .map(|o| o.expect("every event gets an outcome"))
                .collect(),
            counters,
            first_key_cut,
        }
    }

    /// Firehose: join consecutive records of a stream into one, newline-separated, up to
    /// `max_record_size` (with compression, less a margin for its overhead, compressed once
    /// joined); each keeps its own outcome through the record it went into. A record larger
    /// than that goes alone, and is rejected only if it is over `max_record_size` as sent
    /// (compressed, if so), as without `aggregate`.
    fn join(&self, prepared: Vec<(usize, PreparedRecord)>, outcomes: &mut [Option<Outcome>]) -> Vec<Pending> {
        let compression = self.config.shape.compression;
        let max = self.config.shape.max_record_size;
        // Compression can grow incompressible bytes a little: room for it in a joined record.
        // A record larger than that goes alone, judged by its compressed size, as without
        // aggregate.
        let limit = match compression {
            Some(_) => max.saturating_sub(max / 100 + 64),
            None => max,
        };
        // Records in order of their stream's first appearance, each stream in input order.
        let mut order: Vec<String> = Vec::new();
        let mut by_stream: HashMap<String, Vec<(usize, PreparedRecord)>> = HashMap::new();
        for (index, record) in prepared {
            let members = by_stream.entry(record.stream.clone()).or_insert_with(|| {
                order.push(record.stream.clone());
                Vec::new()
            });
            members.push((index, record));
        }
        let joined = |events: Vec<usize>, data: Vec<u8>, stream: &str| {
            Pending::new(
                events,
                PreparedRecord {
                    data,
                    partition_key: String::new(),
                    stream: stream.to_string(),
                    key_cut: false,
                },
            )
        };
        let compress = |data: Vec<u8>| match compression {
            Some(c) => crate::shaping::record::compress(c, &data),
            None => data,
        };
        let mut out = Vec::new();
        for stream in order {
            let mut events: Vec<usize> = Vec::new();
            let mut data: Vec<u8> = Vec::new();
            for (index, record) in by_stream.remove(&stream).unwrap_or_default() {
                if record.data.len() > limit {
                    let alone = compress(record.data);
                    if alone.len() > max {
                        let compressed = if compression.is_some() { " compressed" } else { "" };
                        outcomes[index] = Some(Outcome::Rejected(Rejected {
                            kind: RejectionKind::TooLarge,
                            message: format!(
                                "record is {} bytes{compressed}, over the max_record_size limit of {max}",
                                alone.len()
                            ),
                        }));
                    } else {
                        // In input order: what was joined so far goes first.
                        if !events.is_empty() {
                            let before = compress(std::mem::take(&mut data));
                            out.push(joined(std::mem::take(&mut events), before, &stream));
                        }
                        out.push(joined(vec![index], alone, &stream));
                    }
                    continue;
                }
                // A newline between two records when the first does not end in one
                // (append_new_line off).
                let separator = |data: &[u8]| usize::from(!data.is_empty() && !data.ends_with(b"\n"));
                if !events.is_empty() && data.len() + separator(&data) + record.data.len() > limit {
                    out.push(joined(
                        std::mem::take(&mut events),
                        compress(std::mem::take(&mut data)),
                        &stream,
                    ));
                }
                if separator(&data) == 1 {
                    data.push(b'\n');
                }
                data.extend_from_slice(&record.data);
                events.push(index);
            }
            if !events.is_empty() {
                out.push(joined(events, compress(data), &stream));
            }
        }
        out
    }

    /// Pack user records into KPL aggregates: per stream and partition key, in input order, as
    /// many as fit in `max_record_size`. Records without a key share a random key per aggregate.
    fn aggregate(
        &self,
        prepared: Vec<(usize, PreparedRecord)>,
        outcomes: &mut [Option<Outcome>],
        platform: &mut dyn Platform,
    ) -> Vec<Pending> {
        let limit = self.config.shape.max_record_size;
        // Groups in order of first appearance.
        let mut groups: Vec<(GroupId, Vec<(usize, PreparedRecord)>)> = Vec::new();
        let mut group_of: HashMap<GroupId, usize> = HashMap::new();
        for (index, record) in prepared {
            let id = (record.stream.clone(), record.partition_key.clone());
            match group_of.get(&id) {
                Some(&g) => groups[g].1.push((index, record)),
                None => {
                    group_of.insert(id.clone(), groups.len());
                    groups.push((id, vec![(index, record)]));
                }
            }
        }
        let mut out = Vec::new();
        for ((stream, key), members) in groups {
            let random = key.is_empty();
            // A random key is 32 characters; size with a placeholder of that length.
            let sizing_key = if random { "0".repeat(32) } else { key.clone() };
            let base = aggregate::base_size(&sizing_key) + sizing_key.len();
            let mut current: Vec<(usize, PreparedRecord)> = Vec::new();
            let mut size = base;
            let mut flush = |current: &mut Vec<(usize, PreparedRecord)>, platform: &mut dyn Platform| {
                if current.is_empty() {
                    return;
                }
                let key = if random {
                    random_key(&mut |buf| platform.fill_random(buf))
                } else {
                    key.clone()
                };
                let data = aggregate::encode(&key, current.iter().map(|(_, r)| r.data.as_slice()));
                let events = current.iter().map(|(i, _)| *i).collect();
                out.push(Pending::new(
                    events,
                    PreparedRecord {
                        data,
                        partition_key: key,
                        stream: stream.clone(),
                        key_cut: false,
                    },
                ));
                current.clear();
            };
            for (index, record) in members {
                let entry = aggregate::entry_size(record.data.len());
                if base + entry > limit {
                    outcomes[index] = Some(Outcome::Rejected(Rejected {
                        kind: RejectionKind::TooLarge,
                        message: format!(
                            "record of {} bytes does not fit in an aggregate of at most {limit} bytes (max_record_size)",
                            record.data.len()
                        ),
                    }));
                    continue;
                }
                if size + entry > limit {
                    flush(&mut current, platform);
                    size = base;
                }
                size += entry;
                current.push((index, record));
            }
            flush(&mut current, platform);
        }
        out
    }

    /// Send every pending record once, in requests of at most the batch limits, at most
    /// `max_concurrent_requests` at a time.
    fn send_round(
        &self,
        signer: &Signer,
        pending: &mut [Pending],
        outcomes: &mut [Option<Outcome>],
        counters: &mut Counters,
        platform: &mut dyn Platform,
    ) -> RoundResult {
        // Records are grouped by stream (see `put`); each stream gets its own requests.
        let mut batches = Vec::new();
        let mut start = 0;
        while start < pending.len() {
            let stream = &pending[start].record.stream;
            let end = start
                + pending[start..]
                    .iter()
                    .take_while(|p| &p.record.stream == stream)
                    .count();
            batches.extend(
                plan_batches(
                    pending[start..end]
                        .iter()
                        .map(|p| self.config.service.size(&p.record)),
                    self.config.batch_request_max_count,
                    self.config.batch_request_max_size,
                )
                .into_iter()
                .map(|r| r.start + start..r.end + start),
            );
            start = end;
        }
        let mut result = RoundResult::default();
        for wave in batches.chunks(self.config.max_concurrent_requests) {
            let mut requests = Vec::with_capacity(wave.len());
            let mut sendable = Vec::with_capacity(wave.len());
            for range in wave {
                let batch = &mut pending[range.clone()];
                match self.build_request(signer, batch, platform) {
                    Ok(request) => {
                        counters.requests += 1;
                        counters.bytes_sent += request.body.len() as u64;
                        for p in batch.iter_mut() {
                            if p.attempts > 0 {
                                counters.retries += p.events.len() as u64;
                            }
                            p.attempts += 1;
                        }
                        requests.push(request);
                        sendable.push(range.clone());
                    }
                    Err(message) => {
                        // Nothing can sign these records: no retry will help.
                        for p in batch.iter_mut() {
                            set(
                                outcomes,
                                p,
                                Outcome::Failed {
                                    code: Code::SigningError,
                                    message: message.clone(),
                                    attempts: p.attempts,
                                },
                            );
                        }
                    }
                }
            }
            if requests.is_empty() {
                continue;
            }
            let responses = platform.send_all(requests);
            debug_assert_eq!(responses.len(), sendable.len());
            let mut stored = Vec::new();
            for (range, response) in sendable.into_iter().zip(responses) {
                let answer = apply_response(
                    self.config.service,
                    &mut pending[range],
                    response,
                    outcomes,
                    counters,
                    &mut stored,
                );
                result.stored_records += answer.stored_records;
                result.sent_records += answer.sent_records;
                result.credentials_expired |= answer.credentials_expired;
            }
            if !stored.is_empty() {
                platform.stored(&stored);
            }
        }
        result
    }

    fn build_request(
        &self,
        signer: &Signer,
        batch: &[Pending],
        platform: &mut dyn Platform,
    ) -> Result<HttpRequest, String> {
        // Base64 grows data by 4/3; keys and JSON framing add a little per record.
        let capacity = batch.iter().map(|p| p.record.size() * 4 / 3 + 64).sum::<usize>() + 64;
        let mut body = Vec::with_capacity(capacity);
        self.config.service.encode(
            self.config
                .stream_arn
                .as_deref()
                .unwrap_or(&batch[0].record.stream),
            batch.iter().map(|p| &p.record),
            &mut body,
        );
        let mut headers = vec![
            ("content-type".to_string(), CONTENT_TYPE.to_string()),
            (
                "x-amz-target".to_string(),
                self.config.service.target().to_string(),
            ),
        ];
        // The host hashes the body where it can (the sink world's `payload-sha256`).
        let body_sha256 = platform.sha256_hex(&body);
        let signed = signer.sign(
            "POST",
            &self.url,
            &headers,
            &body,
            body_sha256,
            platform.wall_clock(),
        )?;
        headers.extend(signed);
        Ok(HttpRequest {
            method: "POST",
            url: self.url.clone(),
            headers,
            body,
            timeout: self.config.request_timeout,
            within: HttpRequest::unbounded_within(self.config.request_timeout),
        })
    }
}

/// Random bytes fetched a block at a time.
#[derive(Default)]
struct RandomPool {
    block: Vec<u8>,
    used: usize,
}

impl RandomPool {
    const BLOCK: usize = 4096;

    fn fill(&mut self, out: &mut [u8], platform: &mut dyn Platform) {
        if out.len() > Self::BLOCK {
            platform.fill_random(out);
            return;
        }
        if self.block.len() - self.used < out.len() {
            self.block.resize(Self::BLOCK, 0);
            platform.fill_random(&mut self.block);
            self.used = 0;
        }
        out.copy_from_slice(&self.block[self.used..self.used + out.len()]);
        self.used += out.len();
    }
}

/// Record what one response says about its batch; the events it stored are added to `stored`.
fn apply_response(
    service: Service,
    batch: &mut [Pending],
    response: Result<HttpResponse, TransportError>,
    outcomes: &mut [Option<Outcome>],
    counters: &mut Counters,
    stored: &mut Vec<u32>,
) -> RoundResult {
    let sent = RoundResult {
        sent_records: batch.len(),
        ..RoundResult::default()
    };
    let response = match response {
        Ok(r) => r,
        // The host's egress policy refused the address: no retry can change that.
        Err(TransportError {
            code: TransportCode::Denied,
            message,
        }) => {
            for p in batch.iter_mut() {
                let attempts = p.attempts;
                set(
                    outcomes,
                    p,
                    Outcome::Failed {
                        code: Code::EgressDenied,
                        message: message.clone(),
                        attempts,
                    },
                );
            }
            return sent;
        }
        Err(e) => {
            let message = format!("{}: {}", e.code, e.message);
            for p in batch.iter_mut() {
                p.last_error = LastError::new(Code::Network, message.clone());
            }
            return sent;
        }
    };
    if response.status != 200 {
        let error = classify_error_response(response.status, &response.body);
        if error.verdict == Verdict::Throttled {
            counters.throttled_records += batch.iter().map(|p| p.events.len() as u64).sum::<u64>();
        }
        for p in batch.iter_mut() {
            if error.verdict.is_retryable() {
                p.last_error = LastError::new(error.code.clone(), error.message.clone());
            } else {
                let attempts = p.attempts;
                set(
                    outcomes,
                    p,
                    Outcome::Failed {
                        code: error.code.clone(),
                        message: error.message.clone(),
                        attempts,
                    },
                );
            }
        }
        return RoundResult {
            credentials_expired: error.verdict == Verdict::RefreshCredentials,
            ..sent
        };
    }
    let entries = match service.parse(&response.body, batch.len()) {
        Ok(entries) => entries,
        Err(message) => {
            for p in batch.iter_mut() {
                p.last_error = LastError::new(Code::MalformedResponse, message.clone());
            }
            return sent;
        }
    };
    let mut result = sent;
    for (p, entry) in batch.iter_mut().zip(entries) {
        match entry {
            EntryResult::Stored {
                shard_id,
                sequence_number,
            } => {
                result.stored_records += 1;
                stored.extend(p.events.iter().map(|&i| i as u32));
                set(
                    outcomes,
                    p,
                    Outcome::Delivered {
                        shard_id,
                        sequence_number,
                    },
                );
            }
            EntryResult::Error { code, message } => {
                let code = Code::Service(code);
                let verdict = code.record_verdict();
                if verdict == Verdict::Throttled {
                    counters.throttled_records += p.events.len() as u64;
                }
                if verdict.is_retryable() {
                    p.last_error = LastError::new(code, message);
                } else {
                    let attempts = p.attempts;
                    set(
                        outcomes,
                        p,
                        Outcome::Failed {
                            code,
                            message,
                            attempts,
                        },
                    );
                }
            }
        }
    }
    result
}

impl Pending {
    fn new(events: Vec<usize>, record: PreparedRecord) -> Pending {
        Pending {
            events,
            record,
            attempts: 0,
            position: 0,
            rounds: 0,
            last_error: None,
        }
    }
}

/// Give every event of `p` the same outcome.
fn set(outcomes: &mut [Option<Outcome>], p: &Pending, outcome: Outcome) {
    for i in &p.events {
        outcomes[*i] = Some(outcome.clone());
    }
}

fn fail_all(pending: &mut [Pending], outcomes: &mut [Option<Outcome>], why: &str) {
    for p in pending {
        // A record is pending only after a retryable error, so it has one.
        let last = p.last_error.take().unwrap_or(LastError {
            code: Code::Network,
            message: "never answered".to_string(),
        });
        set(
            outcomes,
            p,
            Outcome::Failed {
                code: last.code,
                message: format!("{} ({why})", last.message),
                attempts: p.attempts,
            },
        );
    }
}

#[cfg(test)]
mod tests;
