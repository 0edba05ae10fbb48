use super::*;
use crate::config::Config;
use std::io::Read as _;

/// An event of tag `kube.app` at 2024-02-29T13:05:09.5Z.
fn prep(c: &Shape, record: &[u8], random: &mut dyn FnMut(&mut [u8])) -> Result<PreparedRecord, Rejected> {
    let event = Event {
        tag: "kube.app",
        seconds: 1_709_211_909,
        nanoseconds: 500_000_000,
        record,
    };
    prepare(c, &event, random)
}

fn config(extra: &str) -> Shape {
    let json =
        format!(r#"{{"stream_name":"s","region":"us-east-1","aws_key_id":"a","aws_sec_key":"b"{extra}}}"#);
    Config::from_json(&json, &mut |_: &str| None).unwrap().shape
}

/// The fast path gives exactly what the general path gives, for every setting it serves.
#[test]
fn records_sent_as_they_are_match_the_general_path() {
    let records: &[&[u8]] = &[
        br#"{"pod":"web-1","log":"GET / 200\n","n":1}"#,
        br#"{"pod":42,"log":"x"}"#,
        br#"{"pod":true}"#,
        br#"{"pod":"a\"b"}"#,
        br#"{"pod":""}"#,
        br#"{"pod":null}"#,
        br#"{"pod":{"x":1}}"#,
        br#"{"log":"no key"}"#,
        r#"{"pod":"é✓","f":0.5}"#.as_bytes(),
        br#"{"pod":"p","a":1,"a":2}"#,
        br#"{"pod": "spaced"}"#,
        br#"{"pod":"x","t":"\u0001"}"#,
    ];
    let long_key = format!(r#"{{"pod":"{}"}}"#, "k".repeat(300));
    for extra in [
        r#","partition_key":"pod""#,
        r#","partition_key":"$.pod","chomp_record":true"#,
        r#","partition_key":"pod","compression":"gzip""#,
        r#","format":{"type":"json","add_newline":false}"#,
        "",
    ] {
        let c = config(extra);
        for record in records.iter().copied().chain([long_key.as_bytes()]) {
            let event = Event {
                tag: "kube.app",
                seconds: 1,
                nanoseconds: 0,
                record,
            };
            let fast = as_it_is(&c, &event, &mut counting());
            let general = general(&c, &event, &mut counting());
            if let Some(parts) = fast {
                assert_eq!(Ok(parts), general, "{extra} {}", String::from_utf8_lossy(record));
            }
            let through = prep(&c, record, &mut counting());
            match general {
                Ok(_) => assert!(through.is_ok()),
                Err(r) => assert_eq!(through.unwrap_err(), r),
            }
        }
    }
    // The common case does take the fast path.
    let c = config(r#","partition_key":"pod""#);
    let event = Event {
        tag: "t",
        seconds: 1,
        nanoseconds: 0,
        record: records[0],
    };
    assert!(as_it_is(&c, &event, &mut counting()).is_some());
}

fn counting() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |buf: &mut [u8]| {
        for b in buf {
            *b = n;
            n = n.wrapping_add(1);
        }
    }
}

#[test]
fn json_is_compact_in_field_order_with_a_newline() {
    let c = config("");
    let r = prep(
        &c,
        br#"{ "z": 1, "a": {"b": [1, 2]}, "m": "h\u00e9" }"#,
        &mut counting(),
    )
    .unwrap();
    assert_eq!(r.data, "{\"z\":1,\"a\":{\"b\":[1,2]},\"m\":\"hé\"}\n".as_bytes());
    assert_eq!(r.partition_key, "000102030405060708090a0b0c0d0e0f");
    let c = config(r#","chomp_record":true"#);
    assert_eq!(
        prep(&c, br#"{"a":1}"#, &mut counting()).unwrap().data,
        b"{\"a\":1}"
    );
}

#[test]
fn keys_come_from_the_named_field() {
    let c = config(r#","partition_key":"k""#);
    let key = |rec: &str| prep(&c, rec.as_bytes(), &mut counting()).map(|r| r.partition_key);
    assert_eq!(key(r#"{"k":"pod-1"}"#).unwrap(), "pod-1");
    assert_eq!(key(r#"{"k":42}"#).unwrap(), "42");
    assert_eq!(key(r#"{"k":1.5}"#).unwrap(), "1.5");
    assert_eq!(key(r#"{"k":true}"#).unwrap(), "true");
    for (rec, why) in [
        (r#"{"x":1}"#, "is missing"),
        (r#"{"k":null}"#, "is null"),
        (r#"{"k":""}"#, "is an empty string"),
        (r#"{"k":{}}"#, "is an object"),
        (r#"{"k":[1]}"#, "is an array"),
    ] {
        let e = key(rec).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NoPartitionKey);
        assert!(e.message.contains(why), "{rec}: {}", e.message);
    }
}

#[test]
fn long_keys_are_cut_by_characters() {
    let c = config(r#","partition_key":"k""#);
    let long: String = "é".repeat(300);
    let rec = serde_json::json!({ "k": long }).to_string();
    let cut = prep(&c, rec.as_bytes(), &mut counting()).unwrap();
    assert_eq!(cut.partition_key.chars().count(), 256);
    assert_eq!(cut.partition_key.len(), 512);
    assert!(cut.key_cut, "a cut key is marked, to be counted");
    let exact: String = "x".repeat(256);
    let rec = serde_json::json!({ "k": exact }).to_string();
    let whole = prep(&c, rec.as_bytes(), &mut counting()).unwrap();
    assert_eq!(whole.partition_key, exact);
    assert!(!whole.key_cut);
    // The general path (a record not in compact form) cuts and marks the same.
    let rec = format!(r#"{{ "k": "{}" }}"#, "y".repeat(257));
    let cut = prep(&c, rec.as_bytes(), &mut counting()).unwrap();
    assert_eq!((cut.partition_key.len(), cut.key_cut), (256, true));
}

#[test]
fn bad_records_are_rejected_with_the_reason() {
    let c = config("");
    let e = prep(&c, b"not json", &mut counting()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::NotJson);
    let e = prep(&c, b"[1,2]", &mut counting()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::NotAnObject);
    assert!(e.message.contains("an array"));
    let e = prep(&c, b"\"text\"", &mut counting()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::NotAnObject);
}

#[test]
fn size_counts_data_and_key_bytes() {
    // {"m":"xxxx"}\n is 13 bytes; the random key 32: 45 in all.
    let c = config(r#","max_record_size":45"#);
    assert!(prep(&c, br#"{"m":"xxxx"}"#, &mut counting()).is_ok());
    let e = prep(&c, br#"{"m":"xxxxx"}"#, &mut counting()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::TooLarge);
    assert!(
        e.message.contains("46 bytes") && e.message.contains("limit of 45"),
        "{}",
        e.message
    );
}

#[test]
fn nested_partition_keys_use_record_accessor_paths() {
    let c = config(r#","partition_key":"$.kubernetes.labels['app.kubernetes.io/name']""#);
    let rec = br#"{"log":"x","kubernetes":{"labels":{"app.kubernetes.io/name":"web"}}}"#;
    assert_eq!(prep(&c, rec, &mut counting()).unwrap().partition_key, "web");
    let e = prep(&c, br#"{"kubernetes":{}}"#, &mut counting()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::NoPartitionKey);
    assert!(e.message.contains(r#"in {"kubernetes":{}}"#), "{}", e.message);
    let c = config(r#","partition_key":"$.items[1]""#);
    assert_eq!(
        prep(&c, br#"{"items":["a",7]}"#, &mut counting())
            .unwrap()
            .partition_key,
        "7"
    );
}

#[test]
fn inject_adds_tag_and_time_before_formatting() {
    let c = config(r#","inject":{"tag_key":"tag","time_key":"time"}"#);
    let r = prep(&c, br#"{"log":"x"}"#, &mut counting()).unwrap();
    assert_eq!(
        String::from_utf8(r.data).unwrap(),
        "{\"log\":\"x\",\"tag\":\"kube.app\",\"time\":\"2024-02-29T13:05:09.500000000+0000\"}\n"
    );
    let c = config(r#","inject":{"time_key":"t","time_type":"unixtime"}"#);
    assert_eq!(
        prep(&c, br#"{"t":"old","a":1}"#, &mut counting()).unwrap().data,
        b"{\"t\":1709211909,\"a\":1}\n"
    );
    let c = config(r#","inject":{"time_key":"t","time_type":"float"}"#);
    assert_eq!(
        prep(&c, br#"{}"#, &mut counting()).unwrap().data,
        b"{\"t\":1709211909.5}\n"
    );
    let c = config(r#","inject":{"time_key":"t","time_format":"%d/%b/%Y:%H:%M:%S %z","timezone":"-05:00"}"#);
    assert_eq!(
        prep(&c, br#"{}"#, &mut counting()).unwrap().data,
        b"{\"t\":\"29/Feb/2024:08:05:09 -0500\"}\n"
    );
}

#[test]
fn data_key_sends_one_field_as_it_is() {
    let c = config(r#","data_key":"log""#);
    assert_eq!(
        prep(&c, br#"{"log":"raw line\n","x":1}"#, &mut counting())
            .unwrap()
            .data,
        b"raw line\n"
    );
    assert_eq!(
        prep(&c, br#"{"log":{"a":[1]}}"#, &mut counting()).unwrap().data,
        br#"{"a":[1]}"#
    );
    assert_eq!(prep(&c, br#"{"log":12}"#, &mut counting()).unwrap().data, b"12");
    for rec in [&br#"{"x":1}"#[..], br#"{"log":null}"#] {
        let e = prep(&c, rec, &mut counting()).unwrap_err();
        assert_eq!(e.kind, RejectionKind::NoDataKey);
        assert!(e.message.contains("data_key field \"log\""), "{}", e.message);
    }
}

#[test]
fn chomp_applies_to_every_format() {
    let c = config(r#","chomp_record":true,"format":{"type":"ltsv"}"#);
    assert_eq!(
        prep(&c, br#"{"a":1,"b":"x"}"#, &mut counting()).unwrap().data,
        b"a:1\tb:x"
    );
    let c = config(r#","chomp_record":true,"format":{"type":"single_value","message_key":"m"}"#);
    assert_eq!(
        prep(&c, br#"{"m":"line\r\n"}"#, &mut counting()).unwrap().data,
        b"line\r\n",
        "one newline only"
    );
}

#[test]
fn compression_shrinks_records_and_limits_count_compressed_bytes() {
    let rec = serde_json::json!({"log": "abc".repeat(2000)}).to_string();
    let plain = {
        let mut v = serde_json::to_vec(&serde_json::from_str::<Value>(&rec).unwrap()).unwrap();
        v.push(b'\n');
        v
    };
    for (kind, check) in [
        ("zlib", [0x78u8].as_slice()),
        ("gzip", [0x1f, 0x8b].as_slice()),
        ("zstd", [0x28, 0xb5, 0x2f, 0xfd].as_slice()),
    ] {
        // 6,012 bytes uncompressed, but the limit counts what is sent.
        let c = config(&format!(r#","compression":"{kind}","max_record_size":1000"#));
        let r = prep(&c, rec.as_bytes(), &mut counting()).unwrap();
        assert!(r.data.starts_with(check), "{kind}");
        assert!(r.data.len() < 500, "{kind}: {}", r.data.len());
        let mut out = Vec::new();
        match kind {
            "zlib" => flate2::read::ZlibDecoder::new(&r.data[..])
                .read_to_end(&mut out)
                .unwrap(),
            "gzip" => flate2::read::GzDecoder::new(&r.data[..])
                .read_to_end(&mut out)
                .unwrap(),
            _ => ruzstd::decoding::StreamingDecoder::new(&r.data[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap(),
        };
        assert_eq!(out, plain, "{kind} round trip");
    }
}

#[test]
fn quoted_records_are_cut_to_log_truncate_max_size() {
    let c = config(r#","partition_key":"k","log_truncate_max_size":20"#);
    let e = prep(
        &c,
        br#"{"log":"0123456789012345678901234567890"}"#,
        &mut counting(),
    )
    .unwrap_err();
    assert!(
        e.message.ends_with(r#"in {"log":"012345678901…"#),
        "{}",
        e.message
    );
    let c = config(r#","partition_key":"k","log_truncate_max_size":0"#);
    let e = prep(
        &c,
        br#"{"log":"0123456789012345678901234567890"}"#,
        &mut counting(),
    )
    .unwrap_err();
    assert!(
        e.message.ends_with(r#""0123456789012345678901234567890"}"#),
        "{}",
        e.message
    );
}

/// The deflate states are kept and reset between records: each record is its own whole stream,
/// whatever came before it (sizes from empty to incompressible 300 KB, zlib and gzip in turn).
#[test]
fn each_compressed_record_is_a_whole_stream_of_its_own() {
    let mut noise = Vec::new();
    let mut x: u32 = 1;
    for _ in 0..300_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        noise.push((x >> 16) as u8);
    }
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"x".to_vec(),
        b"{\"log\":\"hello\"}\n".repeat(20),
        noise,
        b"after the big one\n".to_vec(),
    ];
    for round in 0..2 {
        for (i, data) in inputs.iter().enumerate() {
            for kind in [Compression::Zlib, Compression::Gzip] {
                let packed = compress(kind, data);
                let mut out = Vec::new();
                match kind {
                    Compression::Zlib => flate2::read::ZlibDecoder::new(&packed[..]).read_to_end(&mut out),
                    _ => flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out),
                }
                .unwrap();
                assert_eq!(&out, data, "round {round}, input {i}, {kind:?}");
            }
        }
    }
}
