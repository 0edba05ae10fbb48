use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use super::body::*;
use super::ledger::{Attempt, Entry, Rule};
use super::lines::*;
use super::reply::*;
use super::time::*;
use crate::config::front::{DEFAULT_TIME_KEYS, PROXY_PUT_DEADLINE};
use crate::config::{ConfigError, FrontSettings, Settings};
use crate::kinesis::{Code, Counters, Outcome, Rejected, RejectionKind};

fn settings() -> FrontSettings {
    FrontSettings::default()
}

/// A valid configuration with `extra` settings merged in.
fn document(extra: Value) -> String {
    let mut doc = json!({"stream_name": "s", "region": "us-east-1", "aws_key_id": "a", "aws_sec_key": "b"});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc.to_string()
}

fn front(extra: Value) -> Result<FrontSettings, ConfigError> {
    Settings::from_json(&document(extra), &mut |_: &str| None).map(|s| s.front)
}

fn records<'a>(body: &'a [u8], items: &[Item]) -> Vec<&'a str> {
    items
        .iter()
        .map(|i| std::str::from_utf8(&body[i.start..i.end]).unwrap())
        .collect()
}

#[test]
fn content_types_choose_the_framing() {
    assert_eq!(framing(Some("application/x-ndjson")).unwrap(), Framing::Lines);
    assert_eq!(
        framing(Some("Application/JSON; charset=utf-8")).unwrap(),
        Framing::Json
    );
    assert_eq!(framing(None).unwrap(), Framing::Json);
    let e = framing(Some("application/msgpack")).unwrap_err();
    assert_eq!(e.status, 415);
    assert!(e.message.contains("application/msgpack"), "{}", e.message);
}

#[test]
fn ndjson_lines_keep_their_numbers_and_skip_blanks() {
    let body = b"{\"a\":1}\r\n\n  {\"b\":2}  \n\n{\"c\":3}";
    let items = split(Framing::Lines, body, &settings()).unwrap();
    assert_eq!(
        records(body, &items),
        vec![r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]
    );
    assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), vec![1, 3, 5]);
}

#[test]
fn a_line_that_is_not_json_is_a_400_naming_it() {
    let body = b"{\"a\":1}\n{\"b\":\n{\"c\":3}\n";
    let e = split(Framing::Lines, body, &settings()).unwrap_err();
    assert_eq!((e.status, e.line), (400, Some(2)));
    assert!(e.message.contains("line 2"), "{}", e.message);
}

#[test]
fn deep_nesting_is_rejected_as_a_record_not_a_crash() {
    // 100,000 levels: a recursive reader without a limit would overflow the stack. Splitting
    // skips values without recursing; the record is then refused by serde_json's depth limit.
    let deep = format!("{{\"deep\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"ok\":1}}\n{deep}\n");
    let items = split(Framing::Lines, body.as_bytes(), &settings()).unwrap();
    assert_eq!(items.len(), 2);
    let mut env = |_: &str| None;
    let config = crate::Config::from_json(&document(json!({})), &mut env).unwrap();
    let record = &body.as_bytes()[items[1].start..items[1].end];
    let event = crate::Event {
        tag: "t",
        seconds: 0,
        nanoseconds: 0,
        record,
    };
    let rejected = crate::shaping::prepare(&config.shape, &event, &mut |b| b.fill(7)).unwrap_err();
    assert_eq!(rejected.kind, crate::RejectionKind::NotJson);
    assert!(
        rejected.message.contains("recursion limit"),
        "{}",
        rejected.message
    );
}

#[test]
fn json_bodies_are_arrays_objects_or_lines() {
    let body = b"[ {\"a\":1},\n {\"b\":[1,2]} ]";
    let items = split(Framing::Json, body, &settings()).unwrap();
    assert_eq!(records(body, &items), vec![r#"{"a":1}"#, r#"{"b":[1,2]}"#]);
    assert_eq!(items[1].line, 2);

    let body = b"{\n  \"pretty\": true\n}\n";
    let items = split(Framing::Json, body, &settings()).unwrap();
    assert_eq!(records(body, &items), vec!["{\n  \"pretty\": true\n}"]);

    // Fluent Bit's json_lines arrives as application/json.
    let body = b"{\"date\":1.5,\"log\":\"x\"}\n{\"date\":2.5,\"log\":\"y\"}\n";
    let items = split(Framing::Json, body, &settings()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].time, Some((2, 500_000_000)));

    let e = split(Framing::Json, b"[{\"a\":1},", &settings()).unwrap_err();
    assert_eq!(e.status, 400);
    assert!(split(Framing::Json, b"  \n", &settings()).unwrap().is_empty());
}

/// A large array is split in one pass: counting each element's line from the start of the body
/// made a 1 MiB array take a minute (quadratic). 100,000 elements over 2 MB: the old way scans
/// about 100 GB; one pass scans 2 MB.
#[test]
fn a_large_array_splits_in_linear_time() {
    let mut body = b"[".to_vec();
    for i in 0..100_000 {
        if i > 0 {
            body.extend_from_slice(if i % 10 == 0 { b",\n" } else { b"," });
        }
        body.extend_from_slice(format!("{{\"n\":\"{i:09}\"}}").as_bytes());
    }
    body.push(b']');
    let started = std::time::Instant::now();
    let items = split(Framing::Json, &body, &settings()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(items.len(), 100_000);
    assert_eq!(items[99_999].line, 10_000);
    assert_eq!(items[10].line, 2);
}

#[test]
fn too_many_records_is_a_413() {
    let s = FrontSettings {
        max_records: 2,
        ..settings()
    };
    let e = split(Framing::Lines, b"{}\n{}\n{}\n", &s).unwrap_err();
    assert_eq!(e.status, 413);
    let e = split(Framing::Json, b"[{},{},{}]", &s).unwrap_err();
    assert_eq!(e.status, 413);
    assert_eq!(split(Framing::Lines, b"{}\n{}\n", &s).unwrap().len(), 2);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn bodies_are_decoded_within_the_limit() {
    let text = b"{\"log\":\"hello\"}\n".repeat(100);
    assert_eq!(decode(Some("gzip"), gzip(&text), 1 << 20).unwrap(), text);
    let zstd = ruzstd::encoding::compress_to_vec(&text[..], ruzstd::encoding::CompressionLevel::Fastest);
    assert_eq!(decode(Some("zstd"), zstd, 1 << 20).unwrap(), text);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&text).unwrap();
    assert_eq!(
        decode(Some("deflate"), z.finish().unwrap(), 1 << 20).unwrap(),
        text
    );
    assert_eq!(decode(None, text.clone(), 1 << 20).unwrap(), text);

    // A small gzip that inflates past the limit (a zip bomb) stops at the limit.
    let bomb = gzip(&vec![b'a'; 4 << 20]);
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(decode(Some("gzip"), bomb, 1 << 20).unwrap_err().status, 413);
    assert_eq!(decode(None, vec![b' '; 11], 10).unwrap_err().status, 413);

    let e = decode(Some("gzip"), b"not gzip".to_vec(), 1 << 20).unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("gzip"), "{}", e.message);
    assert_eq!(decode(Some("br"), text, 1 << 20).unwrap_err().status, 415);
}

#[test]
fn times_in_the_formats_agents_send() {
    let t = |v: Value| parse_time(&v);
    // Fluent Bit json_date_format: double (default), epoch, epoch_ms, iso8601, java_sql_timestamp.
    assert_eq!(t(json!(1700000000.123456)), Some((1_700_000_000, 123_456_000)));
    assert_eq!(t(json!(1700000000)), Some((1_700_000_000, 0)));
    assert_eq!(t(json!(1700000000123u64)), Some((1_700_000_000, 123_000_000)));
    assert_eq!(
        t(json!("2023-11-14T22:13:20.123456Z")),
        Some((1_700_000_000, 123_456_000))
    );
    assert_eq!(
        t(json!("2023-11-14 22:13:20.123456")),
        Some((1_700_000_000, 123_456_000))
    );
    // Vector: RFC 3339 with nanoseconds, unix_us, unix_ns; offsets.
    assert_eq!(
        t(json!("2023-11-14T22:13:20.123456789Z")),
        Some((1_700_000_000, 123_456_789))
    );
    assert_eq!(t(json!(1700000000123456u64)), Some((1_700_000_000, 123_456_000)));
    assert_eq!(
        t(json!(1700000000123456789u64)),
        Some((1_700_000_000, 123_456_789))
    );
    assert_eq!(t(json!("2023-11-15T00:13:20+02:00")), Some((1_700_000_000, 0)));
    assert_eq!(t(json!("1700000000.5")), Some((1_700_000_000, 500_000_000)));
    assert_eq!(t(json!(1.7e9)), Some((1_700_000_000, 0)));
    for bad in [json!("yesterday"), json!(-5), json!(null), json!({}), json!(true)] {
        assert_eq!(t(bad.clone()), None, "{bad}");
    }
}

#[test]
fn the_first_listed_time_key_wins_and_unreadable_ones_are_skipped() {
    let keys: Vec<String> = DEFAULT_TIME_KEYS.iter().map(|k| k.to_string()).collect();
    let scan = |s: &str| scan_time(s.as_bytes(), &keys).unwrap();
    assert_eq!(
        scan(r#"{"time":"2023-11-14T22:13:20Z","date":1.0}"#),
        Some((1, 0))
    );
    assert_eq!(
        scan(r#"{"date":"n/a","time":"2023-11-14T22:13:20Z"}"#),
        Some((1_700_000_000, 0))
    );
    assert_eq!(scan(r#"{"log":"x","nested":{"date":5}}"#), None);
    assert_eq!(scan(r#"[1,2]"#), None);
    assert!(scan_time(br#"{"a":1} {"b":2}"#, &keys).is_err());
}

#[test]
fn proxy_settings_are_read_and_checked() {
    let s =
        front(json!({"proxy": {"max_records": "50", "tag_header": "FLUENT-TAG", "time_keys": "ts, date"}}))
            .unwrap();
    assert_eq!(s.max_records, 50);
    assert_eq!(s.tag_header, "fluent-tag");
    assert_eq!(s.time_keys, vec!["ts", "date"]);
    assert_eq!(front(json!({})).unwrap(), settings());
    for (extra, field) in [
        (json!({"proxy": {"max_records": 0}}), "proxy.max_records"),
        (json!({"proxy": {"tag_header": "a b"}}), "proxy.tag_header"),
        (json!({"proxy": {"time_keys": 5}}), "proxy.time_keys"),
        (json!({"proxy": {"colour": "red"}}), "proxy.colour"),
        (json!({"proxy": []}), "proxy"),
        (json!({"time_keys": {"a": 1}}), "time_keys"),
        (
            json!({"time_keys": ["t"], "proxy": {"time_keys": ["u"]}}),
            "proxy.time_keys",
        ),
    ] {
        assert_eq!(front(extra.clone()).unwrap_err().field, field, "{extra}");
    }
}

#[test]
fn time_keys_is_a_top_level_setting_for_every_door() {
    assert_eq!(
        front(json!({"time_keys": ["ts", "when"]})).unwrap().time_keys,
        vec!["ts", "when"]
    );
    assert_eq!(
        front(json!({"time_keys": "ts,,when"})).unwrap().time_keys,
        vec!["ts", "when"]
    );
}

#[test]
fn the_proxy_deadline_defaults_below_agent_timeouts() {
    let mut env = |_: &str| None;
    let proxy = Settings::for_proxy(&document(json!({})), &mut env).unwrap();
    assert_eq!(proxy.sink.put_deadline, PROXY_PUT_DEADLINE);
    assert!(PROXY_PUT_DEADLINE < Duration::from_secs(60));
    let set = Settings::for_proxy(&document(json!({"put_deadline": 5})), &mut env).unwrap();
    assert_eq!(set.sink.put_deadline, Duration::from_secs(5));
    let sink = Settings::from_json(&document(json!({})), &mut env).unwrap();
    assert_eq!(sink.sink.put_deadline, Duration::from_secs(300));
}

#[test]
fn an_event_time_comes_from_the_record_else_its_arrival() {
    let keys: Vec<String> = DEFAULT_TIME_KEYS.iter().map(|k| k.to_string()).collect();
    let now = arrival(std::time::UNIX_EPOCH + Duration::new(1_800_000_000, 7));
    assert_eq!(now, (1_800_000_000, 7));
    assert_eq!(
        event_time(br#"{"time":"2023-11-14T22:13:20Z","log":"x"}"#, &keys, now),
        (1_700_000_000, 0)
    );
    assert_eq!(event_time(br#"{"log":"x"}"#, &keys, now), now);
    assert_eq!(event_time(br#"{"message":"not json"#, &keys, now), now);
}

fn item(line: usize) -> Item {
    Item {
        line,
        start: 0,
        end: 0,
        time: None,
    }
}

fn delivered() -> Outcome {
    Outcome::Delivered {
        shard_id: "shardId-000000000000".into(),
        sequence_number: "1".into(),
    }
}

fn failed(code: &str) -> Outcome {
    Outcome::Failed {
        code: Code::parse(code),
        message: "slow down".into(),
        attempts: 9,
    }
}

fn rejected() -> Outcome {
    Outcome::Rejected(Rejected {
        kind: RejectionKind::NoPartitionKey,
        message: "no user_id".into(),
    })
}

fn counters() -> Counters {
    Counters {
        requests: 2,
        retries: 1,
        throttled_records: 1,
        bytes_sent: 900,
        credential_refreshes: 1,
        partition_keys_truncated: 3,
    }
}

/// The answer to a first attempt at a body whose records came to `outcomes`.
fn answer(outcomes: Vec<Outcome>) -> (u16, Value, Option<String>) {
    let (reply, _) = attempt(None, outcomes, false);
    decode_reply(&reply)
}

fn decode_reply(reply: &Reply) -> (u16, Value, Option<String>) {
    let retry = reply
        .headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| v.clone());
    (reply.status, serde_json::from_slice(&reply.body).unwrap(), retry)
}

/// One attempt at a body of `outcomes.len()` records remembered as `previous`: the records not
/// settled get `outcomes` in order.
fn attempt(previous: Option<Entry>, outcomes: Vec<Outcome>, all: bool) -> (Reply, Entry) {
    let n = previous.as_ref().map_or(outcomes.len(), |e| e.records as usize);
    let items: Vec<Item> = (1..=n).map(item).collect();
    let mut a = Attempt::begin(previous, n as u32, 0);
    let sent = a.to_send();
    let settlement = a.settle(&sent, outcomes, &Rule::default(), 0);
    // The put's counters come with every answer, for a host's metrics.
    let detail = Detail {
        all_problems: all,
        ledger: false,
    };
    let reply = settled_reply(&items, &settlement, &a.entry, &counters(), detail);
    (reply, a.entry)
}

#[test]
fn all_delivered_is_200() {
    let (status, body, retry) = answer(vec![delivered(), delivered()]);
    assert_eq!((status, retry), (200, None));
    assert_eq!(
        body,
        json!({"delivered": 2, "failed": 0, "rejected": 0, "counters": {
            "requests": 2, "retries": 1, "throttled_records": 1, "bytes_sent": 900, "credential_refreshes": 1,
            "partition_keys_truncated": 3
        }})
    );
    assert_eq!(answer(vec![]).0, 200);
}

#[test]
fn every_record_settled_with_some_final_is_a_2xx_agents_do_not_resend() {
    let (status, body, retry) = answer(vec![delivered(), failed("ValidationException"), rejected()]);
    // Inside Fluent Bit's 200-205 and Vector's 2xx success range: no agent re-sends it.
    assert_eq!((status, retry), (202, None));
    assert_eq!(body["delivered"], 1);
    let lines = body["problems"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["outcome"], "failed");
    assert_eq!(lines[0]["code"], "ValidationException");
    assert_eq!(lines[1]["outcome"], "rejected");
    assert_eq!(lines[1]["code"], "NoPartitionKey");
}

/// Records that may still be stored make a 503, even when others were stored: the body's
/// memory keeps what was stored, and the re-sent body ships only the rest, answered 200 then.
#[test]
fn records_not_yet_stored_are_a_503_and_the_resent_body_ships_only_them() {
    let (reply, entry) = attempt(
        None,
        vec![
            delivered(),
            failed("ProvisionedThroughputExceededException"),
            rejected(),
        ],
        false,
    );
    let (status, body, retry) = decode_reply(&reply);
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(
        (body["delivered"].clone(), body["pending"].clone()),
        (json!(1), json!(1))
    );
    assert!(body["note"].as_str().unwrap().contains("not sent twice"));
    assert_eq!(body["problems"][1]["outcome"], "retrying");
    // The re-sent body: only record 2 goes.
    let (reply, entry) = attempt(Some(entry), vec![delivered()], false);
    let (status, body, _) = decode_reply(&reply);
    assert_eq!(status, 202, "record 3 was rejected: {body}");
    assert_eq!(
        (body["delivered"].clone(), body["stored_before"].clone()),
        (json!(1), json!(1))
    );
    assert!(entry.complete());
    let (status, _, retry) = answer(vec![failed("NetworkError")]);
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
}

#[test]
fn only_rejections_is_a_422() {
    let (status, body, retry) = answer(vec![rejected(), rejected()]);
    assert_eq!((status, retry), (422, None));
    assert_eq!(body["rejected"], 2);
}

/// Fluent Bit's HTTP client reads at most 4 KB of an answer, and fails (and re-sends) a flush
/// whose answer is larger: thousands of problems are counted, a few shown, each cut short.
#[test]
fn answers_stay_under_four_kilobytes_unless_every_problem_is_asked_for() {
    let long = |i: usize| Outcome::Failed {
        code: Code::parse("ValidationException"),
        message: format!("{i} {}", "é".repeat(5000)),
        attempts: 1,
    };
    let outcomes: Vec<Outcome> = (0..20_000).map(long).collect();
    let (reply, _) = attempt(None, outcomes.clone(), false);
    assert!(reply.body.len() < 4096, "{} bytes", reply.body.len());
    let (_, body, _) = decode_reply(&reply);
    assert_eq!(body["problems"].as_array().unwrap().len(), PROBLEMS_SHOWN);
    assert_eq!(body["problems_total"], 20_000);
    assert_eq!(body["failed"], 20_000);
    let (reply, _) = attempt(None, outcomes, true);
    let (_, body, _) = decode_reply(&reply);
    assert_eq!(body["problems"].as_array().unwrap().len(), 20_000);
}

#[test]
fn lines_become_records() {
    assert_eq!(line_to_record(r#"{"a":1}"#), br#"{"a":1}"#.to_vec());
    assert_eq!(
        line_to_record("plain text"),
        br#"{"message":"plain text"}"#.to_vec()
    );
    assert_eq!(line_to_record("[1]"), br#"{"message":"[1]"}"#.to_vec());
    assert_eq!(
        line_to_record(r#"{"broken":"#),
        br#"{"message":"{\"broken\":"}"#.to_vec()
    );
}

#[test]
fn input_lines_keep_their_numbers_skip_blanks_and_survive_bad_bytes() {
    let input: &[u8] = b"{\"a\":1}\r\n\n   \nplain \xff text\n{\"b\":2}";
    let lines: Vec<Line> = Lines::new(input).map(Result::unwrap).collect();
    assert_eq!(
        lines,
        vec![
            Line {
                number: 1,
                record: br#"{"a":1}"#.to_vec()
            },
            Line {
                number: 4,
                record: "{\"message\":\"plain \u{fffd} text\"}".as_bytes().to_vec()
            },
            Line {
                number: 5,
                record: br#"{"b":2}"#.to_vec()
            },
        ]
    );
}
