use super::*;
use proptest::prelude::*;

/// A msgpack writer for the tests.
fn str8(s: &str) -> Vec<u8> {
    let mut v = vec![0xd9, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn event_time(seconds: u32, nanos: u32) -> Vec<u8> {
    let mut v = vec![0xd7, 0x00];
    v.extend_from_slice(&seconds.to_be_bytes());
    v.extend_from_slice(&nanos.to_be_bytes());
    v
}

/// `[[EventTime, {}], {"log": text}]`.
fn log_event(seconds: u32, text: &str) -> Vec<u8> {
    let mut v = vec![0x92, 0x92];
    v.extend(event_time(seconds, 0));
    v.extend([0x80, 0x81]);
    v.extend(str8("log"));
    v.extend(str8(text));
    v
}

fn records(d: &Decoded) -> Vec<Result<String, RejectionKind>> {
    d.events
        .iter()
        .map(|e| match &e.record {
            Ok(r) => Ok(String::from_utf8(r.clone()).unwrap()),
            Err(r) => Err(r.kind),
        })
        .collect()
}

const MIB: usize = 1 << 20;

#[test]
fn floats_read_as_fluent_bit_writes_them() {
    // Every case checked against Fluent Bit 5.1's json_lines.
    for (f, text) in [
        (1.5, "1.5"),
        (100.0, "100.0"),
        (1e20, "1e+20"),
        (0.000001, "1e-06"),
        (-0.5, "-0.5"),
        (123456789012345678.0, "123456789012345680.0"),
        (0.3333333333333333, "0.3333333333333333"),
        (0.0, "0.0"),
        (1795833890.276789, "1795833890.276789"),
        (f64::NAN, "null"),
        (f64::INFINITY, "null"),
    ] {
        assert_eq!(float(f), text, "{f}");
    }
}

#[test]
fn strings_escape_as_fluent_bit_escapes_them() {
    let mut out = Vec::new();
    string(&mut out, "é\u{1}\"\\/\t😀\u{8}\u{c}\n\r\u{7f}\u{80} ~");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#""\u00e9\u0001\"\\/\t\ud83d\ude00\b\f\n\r\u007f\u0080 ~""#
    );
}

#[test]
fn both_event_formats_and_every_time_form() {
    let mut chunk = Vec::new();
    // [EventTime, {"log": "a"}]
    chunk.extend([0x92]);
    chunk.extend(event_time(1_700_000_000, 5));
    chunk.extend([0x81]);
    chunk.extend(str8("log"));
    chunk.extend(str8("a"));
    // [[EventTime, {}], {"n": -3, "f": 2.5, "b": true, "z": nil, "a": [1]}]
    chunk.extend([0x92, 0x92]);
    chunk.extend(event_time(1_700_000_001, 0));
    chunk.extend([0x80, 0x85]);
    chunk.extend(str8("n"));
    chunk.push(0xfd);
    chunk.extend(str8("f"));
    chunk.push(0xcb);
    chunk.extend(2.5f64.to_bits().to_be_bytes());
    chunk.extend(str8("b"));
    chunk.push(0xc3);
    chunk.extend(str8("z"));
    chunk.push(0xc0);
    chunk.extend(str8("a"));
    chunk.extend([0x91, 0x01]);
    // [1700000002 (integer), {1: bin "x"}], then [1700000003.25 (float), {"e": ext}]
    chunk.extend([0x92, 0xce]);
    chunk.extend(1_700_000_002u32.to_be_bytes());
    chunk.extend([0x81, 0x01, 0xc4, 0x01, b'x']);
    chunk.extend([0x92, 0xcb]);
    chunk.extend(1_700_000_003.25f64.to_bits().to_be_bytes());
    chunk.extend([0x81]);
    chunk.extend(str8("e"));
    chunk.extend([0xd4, 0x05, 0xab]);
    let d = decode(&chunk, MIB);
    assert_eq!(d.broken, None);
    let seen: Vec<(i64, u32, String)> = d
        .events
        .into_iter()
        .map(|e| {
            (
                e.seconds,
                e.nanoseconds,
                String::from_utf8(e.record.unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (1_700_000_000, 5, r#"{"log":"a"}"#.to_string()),
            (
                1_700_000_001,
                0,
                r#"{"n":-3,"f":2.5,"b":true,"z":null,"a":[1]}"#.to_string()
            ),
            (1_700_000_002, 0, r#"{"1":"x"}"#.to_string()),
            (1_700_000_003, 250_000_000, r#"{"e":"\\xab"}"#.to_string()),
        ]
    );
}

/// Grouped inputs (OpenTelemetry) write group start and end markers, time -1 and -2: they are
/// not records. Other seconds are signed: a time before 1970 is a time.
#[test]
fn group_markers_are_skipped_and_seconds_are_signed() {
    let mut chunk = Vec::new();
    for (seconds, text) in [
        (u32::MAX, "start"),
        (7, "a"),
        (u32::MAX - 1, "end"),
        (u32::MAX - 2, "b"),
    ] {
        chunk.extend(log_event(seconds, text));
    }
    // A marker with an integer time, too.
    chunk.extend([0x92, 0x92, 0xff, 0x80, 0x80]);
    // A float time of -0.5 is a time (Fluent Bit reads it as 0), not a marker.
    chunk.extend([0x92, 0xcb]);
    chunk.extend((-0.5f64).to_bits().to_be_bytes());
    chunk.extend([0x81]);
    chunk.extend(str8("log"));
    chunk.extend(str8("c"));
    let d = decode(&chunk, MIB);
    assert_eq!(d.markers, 3);
    let times: Vec<i64> = d.events.iter().map(|e| e.seconds).collect();
    assert_eq!(times, vec![7, -3, -1]);
    assert_eq!(
        records(&d),
        vec![
            Ok(r#"{"log":"a"}"#.to_string()),
            Ok(r#"{"log":"b"}"#.to_string()),
            Ok(r#"{"log":"c"}"#.to_string())
        ]
    );
}

/// A key that is a map holding a map as key … 28 deep (about 60 bytes of msgpack, through
/// `forward`): each level used to escape the one inside it again, doubling the key (Fluent Bit
/// reached 4 GB). Now the key is one string of its JSON, escaped once: linear in its size.
#[test]
fn keys_that_are_maps_render_in_linear_size() {
    let nested_key = |levels: usize| -> Vec<u8> {
        // {K: 1} with K = {K': 1} …, the innermost key "a".
        let mut record = vec![0x81; levels];
        record.extend([0xa1, b'a']);
        record.extend(std::iter::repeat_n(0x01, levels));
        record
    };
    let one = {
        let mut c = vec![0x92, 0x01];
        c.extend(nested_key(2));
        decode(&c, MIB)
    };
    assert_eq!(records(&one), vec![Ok(r#"{"{\"a\":1}":1}"#.to_string())]);
    for levels in [3, 28, 100] {
        let mut c = vec![0x92, 0x01];
        c.extend(nested_key(levels));
        let d = decode(&c, MIB);
        let Ok(json) = &d.events[0].record else {
            panic!("{:?}", d.events[0].record)
        };
        assert!(json.len() < 20 * c.len(), "{levels} levels: {} bytes", json.len());
        let v: serde_json::Value = serde_json::from_slice(json).expect("JSON");
        assert!(v.is_object(), "{v}");
    }
    let mut c = vec![0x92, 0x01];
    c.extend(nested_key(3));
    assert_eq!(
        records(&decode(&c, MIB)),
        vec![Ok(r#"{"{{\"a\":1}:1}":1}"#.to_string())]
    );
}

/// A record too large or too deep is rejected on its own, without being built; the events
/// around it are read as usual.
#[test]
fn a_record_over_the_limit_or_too_deep_is_rejected_alone() {
    let mut chunk = log_event(1, "before");
    // A 300-byte string under a limit of 200 bytes.
    chunk.extend(log_event(2, &"x".repeat(250)));
    // 10,000 arrays deep.
    chunk.extend([0x92, 0x03, 0x81, 0xa1, b'k']);
    chunk.extend(std::iter::repeat_n(0x91, 10_000));
    chunk.push(0x01);
    // Many small values that add up past the limit.
    chunk.extend([0x92, 0x04, 0xdc, 0x00, 0x64]);
    chunk.extend(std::iter::repeat_n(0xa3, 100).flat_map(|b| [b, b'a', b'b', b'c']));
    // A map whose key is too large while its value is owed.
    chunk.extend([0x92, 0x05, 0x82]);
    chunk.extend([0xda, 0x01, 0x00]);
    chunk.extend(std::iter::repeat_n(b'k', 256));
    chunk.extend([0x91, 0x01, 0xa1, b'k', 0x02]);
    chunk.extend(log_event(6, "after"));
    let d = decode(&chunk, 200);
    assert_eq!(d.broken, None, "every event read");
    assert_eq!(
        records(&d),
        vec![
            Ok(r#"{"log":"before"}"#.to_string()),
            Err(RejectionKind::TooLarge),
            Err(RejectionKind::NotJson),
            Err(RejectionKind::TooLarge),
            Err(RejectionKind::TooLarge),
            Ok(r#"{"log":"after"}"#.to_string()),
        ]
    );
    let Err(r) = &d.events[2].record else {
        unreachable!()
    };
    assert!(r.message.contains("deeper than 127"), "{}", r.message);
}

/// The sink reads records with serde_json, which takes at most 127 levels: a record of 127 is
/// written, one of 128 is refused here (found by the `flb_chunk` fuzz target).
#[test]
fn records_nest_at_most_as_deep_as_the_sink_reads() {
    for (levels, ok) in [(127, true), (128, false)] {
        let mut chunk = vec![0x92, 0x01];
        chunk.extend(std::iter::repeat_n(0x91, levels - 1));
        chunk.push(0x90);
        let d = decode(&chunk, MIB);
        match &d.events[0].record {
            Ok(json) => {
                assert!(ok, "{levels} levels written");
                assert!(serde_json::from_slice::<serde_json::Value>(json).is_ok());
            }
            Err(r) => assert!(!ok && r.kind == RejectionKind::NotJson, "{levels}: {r:?}"),
        }
    }
}

#[test]
fn a_broken_chunk_keeps_what_was_read_and_says_where_it_stopped() {
    let mut chunk = log_event(1, "kept");
    let second = chunk.len();
    chunk.extend([0x92, 0xd7, 0x00, 1, 2]);
    let d = decode(&chunk, MIB);
    assert_eq!(records(&d), vec![Ok(r#"{"log":"kept"}"#.to_string())]);
    let (from, e) = d.broken.unwrap();
    assert_eq!(from, second);
    assert!(e.message.contains("ends inside a value"), "{e}");
    assert_eq!(decode(&[0x91, 0x01], MIB).broken.unwrap().1.offset, 0);
    assert_eq!(decode(&[], MIB), Decoded::default());
}

/// [`super::decode`], checked against [`decode_packed`] on the same chunk: every test here
/// reads each chunk both ways.
fn decode(chunk: &[u8], max_record: usize) -> Decoded {
    let d = super::decode(chunk, max_record);
    assert_eq!(
        unpacked(decode_packed(chunk, max_record)),
        d,
        "packed and unpacked differ"
    );
    d
}

/// A packed chunk as [`decode`] gives it: each record its own buffer, where it must start
/// where the record written before it ended.
fn unpacked(p: PackedChunk) -> Decoded {
    let mut next = 0;
    let events = p
        .events
        .into_iter()
        .map(|e| ChunkEvent {
            seconds: e.seconds,
            nanoseconds: e.nanoseconds,
            record: e.record.map(|r| {
                assert_eq!(r.start, next, "records back to back");
                next = r.end;
                p.records[r].to_vec()
            }),
        })
        .collect();
    assert_eq!(next, p.records.len(), "nothing but records in the buffer");
    Decoded {
        events,
        markers: p.markers,
        broken: p.broken,
    }
}

/// Fluent Bit's escaping, one character at a time: what [`string`] must write, in runs.
fn string_char_by_char(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

proptest! {
    /// Any text, escaped in runs, as Fluent Bit escapes it character by character.
    #[test]
    fn strings_escape_in_runs_as_char_by_char(s in "(\\PC|[\\x00-\\x7f]|[\"\\\\])*") {
        let mut out = Vec::new();
        string(&mut out, &s);
        prop_assert_eq!(String::from_utf8(out).unwrap(), string_char_by_char(&s));
    }

    /// Any bytes: no panic, every record written is JSON, and every event is read or the
    /// reading stops at a named offset.
    #[test]
    fn any_bytes_decode_to_json_or_a_named_stop(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let d = decode(&bytes, 4096);
        for e in &d.events {
            if let Ok(r) = &e.record {
                prop_assert!(r.len() <= 4096);
                prop_assert!(serde_json::from_slice::<serde_json::Value>(r).is_ok(), "{:?}", String::from_utf8_lossy(r));
            }
        }
        if let Some((from, e)) = &d.broken {
            prop_assert!(*from <= bytes.len() && e.offset <= bytes.len());
        }
    }

    /// Well-formed events of nested maps and arrays with any keys: each read, as JSON.
    #[test]
    fn nested_records_decode_to_json(depth in 0usize..40, width in 1usize..4, key_is_map in any::<bool>()) {
        let mut record = Vec::new();
        for _ in 0..depth {
            record.push(0x80 | width as u8);
            for w in 0..width {
                if key_is_map && w == 0 {
                    record.extend([0x81, 0xa1, b'q', 0x02]);
                } else {
                    record.extend([0xa1, b'a' + w as u8]);
                }
                if w + 1 < width {
                    record.push(0x90 | 1);
                    record.push(0x07);
                }
            }
        }
        record.push(0xc0);
        let mut chunk = vec![0x92, 0x01];
        chunk.extend(&record);
        let d = decode(&chunk, 1 << 20);
        prop_assert_eq!(d.broken.clone(), None);
        prop_assert_eq!(d.events.len(), 1);
        match &d.events[0].record {
            Ok(r) => prop_assert!(serde_json::from_slice::<serde_json::Value>(r).is_ok(), "{}", String::from_utf8_lossy(r)),
            Err(e) => prop_assert!(false, "{:?}", e),
        }
    }
}
