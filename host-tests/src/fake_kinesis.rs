//! An in-process fake of Kinesis Data Streams' PutRecords and Firehose's PutRecordBatch, reached
//! through the harness's `send_request` hook. It checks signatures independently ([`crate::sigv4`]), enforces the real
//! limits, stores what it accepts, and injects faults on demand.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::sigv4::{self, RawRequest};

/// `X-Amz-Target` of Firehose's PutRecordBatch, which the fake answers too.
pub const PUT_RECORD_BATCH: &str = "Firehose_20150804.PutRecordBatch";
/// PutRecordBatch's limits.
pub const FIREHOSE_MAX_RECORDS: usize = 500;
pub const FIREHOSE_MAX_CALL_BYTES: usize = 4 * 1024 * 1024;
pub const FIREHOSE_MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// PutRecords limits the fake enforces, as the service does.
pub const MAX_RECORDS: usize = 500;
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
pub const MAX_KEY_CHARS: usize = 256;
const SHARDS: u64 = 4;

/// A request's headers as text pairs, as the fake reads them.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// One fault applied to a whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 InternalFailure, nothing stored.
    ServerError,
    /// The connection drops before the request is processed: nothing stored.
    DropConnection,
    /// The records are stored, then the response body is cut short (unreadable JSON).
    TruncatedBody,
    /// The records are stored, then the body stream breaks mid-way.
    BrokenBody,
    /// 200 with a body that is not a PutRecords response; nothing stored.
    MalformedBody,
    /// 400 AccessDeniedException.
    AccessDenied,
    /// 400 LimitExceededException (request throttled), nothing stored.
    Throttled,
    /// 400 ExpiredTokenException, nothing stored.
    ExpiredToken,
    /// The request is processed normally after this delay; if the client's first-byte timeout
    /// is shorter, it is never processed and the client times out.
    Slow(Duration),
    /// Nothing ever comes back, whatever timeouts the client asked for (a host that cannot
    /// set them, facing a hung endpoint); nothing stored.
    Hang,
    /// The records are stored, then the response body stops half-way and never goes on.
    StallBody,
}

/// An answer the fake gives.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Send only the first bytes of `body`, then break the stream (or stall it).
    pub break_after: Option<usize>,
    /// At `break_after`, wait forever instead of breaking.
    pub stall: bool,
    pub delay: Duration,
}

impl Answer {
    /// The answer's body as a transport sends it: whole, or its first part followed by
    /// `broken()` (or nothing ever, when it stalls).
    pub fn into_body<E>(self, broken: fn() -> E) -> BrokenBody<E> {
        let body = bytes::Bytes::from(self.body);
        match self.break_after {
            None => BrokenBody {
                first: Some(body),
                then: None,
                broken,
            },
            Some(cut) => BrokenBody {
                first: Some(body.slice(..cut)),
                then: Some(self.stall),
                broken,
            },
        }
    }
}

/// A response body: its bytes, then, for a damaged answer, a broken stream or a stall.
pub struct BrokenBody<E> {
    first: Option<bytes::Bytes>,
    /// After the first bytes: `None` the end, `Some(false)` an error, `Some(true)` a stall.
    then: Option<bool>,
    broken: fn() -> E,
}

impl<E> http_body::Body for BrokenBody<E> {
    type Data = bytes::Bytes;
    type Error = E;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, E>>> {
        use std::task::Poll;
        match (self.first.take(), self.then) {
            (Some(data), _) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            (None, None) => Poll::Ready(None),
            (None, Some(true)) => Poll::Pending,
            (None, Some(false)) => Poll::Ready(Some(Err((self.broken)()))),
        }
    }
}

/// What the fake wants the transport to do.
#[derive(Debug)]
pub enum Reply {
    Response(Answer),
    /// Fail the request as a connection error.
    ConnectionError,
    /// Nothing arrives within the client's first-byte timeout: fail after waiting that long.
    Timeout(Duration),
    /// Nothing arrives, ever.
    Hang,
}

/// A record the fake stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub shard_id: String,
    pub sequence_number: String,
    /// The request (0-based) that stored it.
    pub request: usize,
}

/// A request the fake saw, with what it did about it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub records: usize,
    pub status: u16,
    pub fault: Option<Fault>,
    pub headers: Vec<(String, String)>,
    /// Whether the response the client got lost information about stored records.
    pub response_damaged_after_store: bool,
}

#[derive(Default)]
struct State {
    stored: Vec<Stored>,
    seen: Vec<Seen>,
    scripted: VecDeque<Fault>,
    rng: u64,
    next_sequence: u64,
}

/// Fault settings applied at random (deterministically seeded).
#[derive(Debug, Clone, Default)]
pub struct RandomFaults {
    /// Fraction of records answered `ProvisionedThroughputExceededException`.
    pub throttle_records: f64,
    /// Fraction of records answered `InternalFailure`.
    pub fail_records: f64,
    /// Fraction of requests that get one of `request_faults`, chosen at random.
    pub request_fault_rate: f64,
    pub request_faults: Vec<Fault>,
}

/// The account the fake's streams belong to.
pub const ACCOUNT: &str = "111111111111";

pub struct FakeKinesis {
    pub region: String,
    pub streams: Vec<String>,
    credentials: HashMap<String, String>,
    random: Mutex<RandomFaults>,
    state: Mutex<State>,
}

impl FakeKinesis {
    /// A fake with one stream and one access key.
    pub fn new(stream: &str, access_key: &str, secret: &str) -> Self {
        FakeKinesis {
            region: "us-east-1".to_string(),
            streams: vec![stream.to_string()],
            credentials: HashMap::from([(access_key.to_string(), secret.to_string())]),
            random: Mutex::new(RandomFaults::default()),
            state: Mutex::new(State {
                rng: 0x9E37_79B9_7F4A_7C15,
                ..State::default()
            }),
        }
    }

    pub fn with_random_faults(self, faults: RandomFaults, seed: u64) -> Self {
        *self.random.lock().unwrap() = faults;
        self.state.lock().unwrap().rng = seed | 1;
        self
    }

    /// From the next request on, these faults (a storm that starts, or ends).
    pub fn set_random_faults(&self, faults: RandomFaults) {
        *self.random.lock().unwrap() = faults;
    }

    /// The next requests get these faults, one each, before random faults apply.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().scripted.extend(faults);
    }

    pub fn stored(&self) -> Vec<Stored> {
        self.state.lock().unwrap().stored.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Answer one request. `first_byte_timeout` is the client's, if it set one.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
        first_byte_timeout: Option<Duration>,
    ) -> Reply {
        let random = self.random.lock().unwrap().clone();
        let mut state = self.state.lock().unwrap();
        let request = state.seen.len();
        let fault = match state.scripted.pop_front() {
            Some(f) => Some(f),
            None if random.request_fault_rate > 0.0
                && !random.request_faults.is_empty()
                && next_unit(&mut state.rng) < random.request_fault_rate =>
            {
                let i = (next_u64(&mut state.rng) % random.request_faults.len() as u64) as usize;
                Some(random.request_faults[i].clone())
            }
            None => None,
        };
        let delay = match fault {
            Some(Fault::Slow(d)) => d,
            _ => Duration::ZERO,
        };
        let mut seen = Seen {
            records: 0,
            status: 0,
            fault: fault.clone(),
            headers: headers.to_vec(),
            response_damaged_after_store: false,
        };

        if fault == Some(Fault::Hang) {
            state.seen.push(seen);
            return Reply::Hang;
        }
        if let Some(limit) = first_byte_timeout.filter(|limit| delay > *limit) {
            state.seen.push(seen);
            return Reply::Timeout(limit);
        }
        let outcome = self.process(
            &mut state,
            &random,
            request,
            method,
            path,
            query,
            headers,
            body,
            fault.as_ref(),
        );
        let reply = match outcome {
            Processed::Connection => Reply::ConnectionError,
            Processed::Answer {
                status,
                body: resp,
                records,
            } => {
                seen.records = records;
                seen.status = status;
                let stored_any = status == 200 && records > 0;
                match fault {
                    Some(Fault::TruncatedBody) if status == 200 => {
                        seen.response_damaged_after_store = stored_any;
                        let cut = resp.len() / 2;
                        Reply::Response(Answer {
                            status,
                            body: resp[..cut].to_vec(),
                            break_after: None,
                            stall: false,
                            delay,
                        })
                    }
                    Some(f @ (Fault::BrokenBody | Fault::StallBody)) if status == 200 => {
                        seen.response_damaged_after_store = stored_any;
                        let cut = resp.len() / 2;
                        Reply::Response(Answer {
                            status,
                            body: resp,
                            break_after: Some(cut),
                            stall: f == Fault::StallBody,
                            delay,
                        })
                    }
                    _ => Reply::Response(Answer {
                        status,
                        body: resp,
                        break_after: None,
                        stall: false,
                        delay,
                    }),
                }
            }
        };
        state.seen.push(seen);
        reply
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        state: &mut State,
        random: &RandomFaults,
        request: usize,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
        fault: Option<&Fault>,
    ) -> Processed {
        match fault {
            Some(Fault::DropConnection) => return Processed::Connection,
            Some(Fault::ServerError) => return error(500, "InternalFailure", "Internal service failure."),
            _ => {}
        }
        let raw = RawRequest {
            method,
            path,
            query,
            headers,
            body,
        };
        let target = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .map(|(_, v)| v.as_str());
        // Firehose's calls are signed for `firehose`, Kinesis's for `kinesis`.
        let firehose = target == Some(PUT_RECORD_BATCH);
        let signing_name = if firehose { "firehose" } else { "kinesis" };
        if let Err(e) = sigv4::verify(
            &raw,
            |k| self.credentials.get(k).cloned(),
            &self.region,
            signing_name,
        ) {
            let status = if e.code == "MissingAuthenticationTokenException" {
                403
            } else {
                400
            };
            return error(status, e.code, &e.message);
        }
        if method != "POST" || path != "/" {
            return error(404, "UnknownOperationException", "");
        }
        if firehose {
            return self.put_record_batch(state, random, request, body, fault);
        }
        if target != Some("Kinesis_20131202.PutRecords") {
            return error(400, "UnknownOperationException", "");
        }
        if let Some(answer) = call_fault(
            fault,
            "kinesis:PutRecords",
            ("LimitExceededException", "Rate exceeded for stream"),
        ) {
            return answer;
        }

        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return error(400, "SerializationException", "body is not JSON");
        };
        // A stream by name, or by ARN in the fake's region and account (never both).
        let by_arn = |arn: &str| {
            let prefix = format!("arn:aws:kinesis:{}:{ACCOUNT}:stream/", self.region);
            arn.strip_prefix(&prefix).map(str::to_string)
        };
        let stream = match (parsed["StreamName"].as_str(), parsed["StreamARN"].as_str()) {
            (Some(name), None) => name.to_string(),
            (None, Some(arn)) => match by_arn(arn) {
                Some(name) => name,
                None => {
                    return error(
                        400,
                        "AccessDeniedException",
                        &format!("{arn} is not a stream of account {ACCOUNT} in {}", self.region),
                    )
                }
            },
            (Some(_), Some(_)) => {
                return error(
                    400,
                    "ValidationException",
                    "give StreamName or StreamARN, not both",
                )
            }
            (None, None) => return error(400, "ValidationException", "StreamName is required"),
        };
        let stream = stream.as_str();
        if !self.streams.iter().any(|s| s == stream) {
            return error(
                400,
                "ResourceNotFoundException",
                &format!("Stream {stream} under account {ACCOUNT} not found."),
            );
        }
        let Some(records) = parsed["Records"].as_array() else {
            return error(400, "ValidationException", "Records is required");
        };
        if records.is_empty() || records.len() > MAX_RECORDS {
            return error(
                400,
                "ValidationException",
                &format!("1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to {MAX_RECORDS} (got {})", records.len()),
            );
        }
        let mut decoded = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for r in records {
            let (Some(data), Some(key)) = (r["Data"].as_str(), r["PartitionKey"].as_str()) else {
                return error(400, "ValidationException", "Data and PartitionKey are required");
            };
            let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data) else {
                return error(400, "SerializationException", "Data is not base64");
            };
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_KEY_CHARS {
                return error(
                    400,
                    "ValidationException",
                    &format!("Member must have length less than or equal to {MAX_KEY_CHARS} (partition key of {chars})"),
                );
            }
            let size = data.len() + key.len();
            if size > MAX_RECORD_BYTES {
                return error(
                    400,
                    "ValidationException",
                    &format!("record of {size} bytes exceeds {MAX_RECORD_BYTES}"),
                );
            }
            total += size;
            decoded.push((data, key.to_string()));
        }
        if total > MAX_REQUEST_BYTES {
            return error(
                400,
                "InvalidArgumentException",
                &format!("Records size exceeds {MAX_REQUEST_BYTES} bytes limit"),
            );
        }

        let mut entries = Vec::with_capacity(decoded.len());
        let mut failed = 0;
        for (data, key) in decoded {
            let roll = if random.throttle_records + random.fail_records > 0.0 {
                next_unit(&mut state.rng)
            } else {
                1.0
            };
            if roll < random.throttle_records {
                failed += 1;
                entries.push(json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": format!("Rate exceeded for shard in stream {stream} under account 111111111111.")}));
                continue;
            }
            if roll < random.throttle_records + random.fail_records {
                failed += 1;
                entries.push(
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}),
                );
                continue;
            }
            state.next_sequence += 1;
            let shard = key
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                % SHARDS;
            let shard_id = format!("shardId-{shard:012}");
            let sequence_number = format!(
                "4954346307654800757710509270303956035997522851{:010}",
                state.next_sequence
            );
            entries.push(json!({"SequenceNumber": sequence_number, "ShardId": shard_id}));
            state.stored.push(Stored {
                data,
                partition_key: key,
                shard_id,
                sequence_number,
                request,
            });
        }
        Processed::Answer {
            status: 200,
            body: serde_json::to_vec(&json!({"FailedRecordCount": failed, "Records": entries})).unwrap(),
            records: records.len(),
        }
    }
}

impl FakeKinesis {
    /// Firehose's PutRecordBatch: the delivery stream by name, records without keys, its
    /// limits (500 records, 4 MiB a call, 1,000 KiB a record), `ServiceUnavailableException` for
    /// throttling (a record's or the call's), `RecordId`s for what it stores.
    fn put_record_batch(
        &self,
        state: &mut State,
        random: &RandomFaults,
        request: usize,
        body: &[u8],
        fault: Option<&Fault>,
    ) -> Processed {
        if let Some(answer) = call_fault(
            fault,
            "firehose:PutRecordBatch",
            ("ServiceUnavailableException", "Slow down."),
        ) {
            return answer;
        }
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return error(400, "SerializationException", "body is not JSON");
        };
        let Some(stream) = parsed["DeliveryStreamName"].as_str() else {
            return error(400, "ValidationException", "DeliveryStreamName is required");
        };
        if !self.streams.iter().any(|s| s == stream) {
            return error(
                400,
                "ResourceNotFoundException",
                &format!("Firehose {stream} under account {ACCOUNT} not found."),
            );
        }
        let Some(records) = parsed["Records"].as_array() else {
            return error(400, "ValidationException", "Records is required");
        };
        if records.is_empty() || records.len() > FIREHOSE_MAX_RECORDS {
            return error(
                400,
                "InvalidArgumentException",
                &format!(
                    "Records has {} entries; 1 to {FIREHOSE_MAX_RECORDS} are allowed",
                    records.len()
                ),
            );
        }
        let mut decoded = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for r in records {
            if r.get("PartitionKey").is_some() {
                return error(
                    400,
                    "SerializationException",
                    "Records have no PartitionKey in Firehose",
                );
            }
            let Some(Ok(data)) = r["Data"]
                .as_str()
                .map(|d| base64::engine::general_purpose::STANDARD.decode(d))
            else {
                return error(400, "SerializationException", "Data is required, in base64");
            };
            if data.len() > FIREHOSE_MAX_RECORD_BYTES {
                return error(
                    400,
                    "InvalidArgumentException",
                    &format!(
                        "a record of {} bytes exceeds {FIREHOSE_MAX_RECORD_BYTES}",
                        data.len()
                    ),
                );
            }
            total += data.len();
            decoded.push(data);
        }
        if total > FIREHOSE_MAX_CALL_BYTES {
            return error(
                400,
                "InvalidArgumentException",
                &format!("records of {total} bytes exceed {FIREHOSE_MAX_CALL_BYTES}"),
            );
        }
        let mut entries = Vec::with_capacity(decoded.len());
        let mut failed = 0;
        for data in decoded {
            let roll = if random.throttle_records + random.fail_records > 0.0 {
                next_unit(&mut state.rng)
            } else {
                1.0
            };
            if roll < random.throttle_records {
                failed += 1;
                entries
                    .push(json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}));
                continue;
            }
            if roll < random.throttle_records + random.fail_records {
                failed += 1;
                entries.push(
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}),
                );
                continue;
            }
            state.next_sequence += 1;
            let record_id = format!("{:032x}{:040}", request, state.next_sequence);
            entries.push(json!({"RecordId": record_id}));
            state.stored.push(Stored {
                data,
                partition_key: String::new(),
                shard_id: String::new(),
                sequence_number: record_id,
                request,
            });
        }
        Processed::Answer {
            status: 200,
            body: serde_json::to_vec(
                &json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": entries}),
            )
            .unwrap(),
            records: records.len(),
        }
    }
}

enum Processed {
    Connection,
    Answer {
        status: u16,
        body: Vec<u8>,
        records: usize,
    },
}

/// What a call-wide fault answers, the same for both services but for the action a refusal
/// names and how the service says it throttles the call; `None` for the faults that do not end
/// the call here.
fn call_fault(fault: Option<&Fault>, action: &str, throttled: (&str, &str)) -> Option<Processed> {
    match fault? {
        Fault::AccessDenied => Some(error(
            400,
            "AccessDeniedException",
            &format!("User: arn:aws:iam::{ACCOUNT}:user/x is not authorized to perform: {action}"),
        )),
        Fault::Throttled => Some(error(400, throttled.0, throttled.1)),
        Fault::ExpiredToken => Some(error(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )),
        Fault::MalformedBody => Some(Processed::Answer {
            status: 200,
            body: b"<html>gateway says hello</html>".to_vec(),
            records: 0,
        }),
        _ => None,
    }
}

fn error(status: u16, code: &str, message: &str) -> Processed {
    Processed::Answer {
        status,
        body: serde_json::to_vec(&json!({"__type": code, "message": message})).unwrap(),
        records: 0,
    }
}

fn next_u64(state: &mut u64) -> u64 {
    // xorshift64*: deterministic, good enough to spread faults.
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn next_unit(state: &mut u64) -> f64 {
    (next_u64(state) >> 11) as f64 / (1u64 << 53) as f64
}
