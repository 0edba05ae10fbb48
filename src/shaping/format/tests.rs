//! Each formatter against the output Fluentd's formatter writes for the same record: examples
//! from Fluentd's formatter sources, and the text formatters against the real Ruby's bytes
//! (tests/fixtures/fluentd-formats.jsonl, from scripts/fluentd-formats.rb).

use serde_json::{json, Map, Value};

use super::*;

const TAG: &str = "kube.var.log";
// 2024-02-29T13:05:09.5Z
const SECS: i64 = 1_709_211_909;
const NANOS: u32 = 500_000_000;

fn record() -> Map<String, Value> {
    let v = json!({
        "msg": "hé said \"hi\"\tthere",
        "n": 42,
        "f": 1.5,
        "big": 1e20,
        "ok": true,
        "none": null,
        "nested": {"a": [1, "x", null], "#{x}": "y"},
    });
    v.as_object().unwrap().clone()
}

fn text(f: &Formatter) -> String {
    String::from_utf8(f.format(TAG, SECS, NANOS, &record())).unwrap()
}

#[test]
fn json_is_compact_in_field_order() {
    assert_eq!(
        text(&Formatter::Json { add_newline: true }),
        "{\"msg\":\"hé said \\\"hi\\\"\\tthere\",\"n\":42,\"f\":1.5,\"big\":1e+20,\"ok\":true,\"none\":null,\"nested\":{\"a\":[1,\"x\",null],\"#{x}\":\"y\"}}\n"
    );
}

#[test]
fn ltsv_writes_labels_and_ruby_values() {
    // A delimiter inside a value becomes the replacement (a space), as Fluentd's gsub.
    let f = Formatter::Ltsv {
        delimiter: "\t".into(),
        label_delimiter: ":".into(),
        replacement: " ".into(),
        add_newline: true,
    };
    assert_eq!(
        text(&f),
        "msg:hé said \"hi\" there\tn:42\tf:1.5\tbig:1.0e+20\tok:true\tnone:\tnested:{\"a\"=>[1, \"x\", nil], \"\\#{x}\"=>\"y\"}\n"
    );
    let f = Formatter::Ltsv {
        delimiter: ",".into(),
        label_delimiter: "=".into(),
        replacement: ";".into(),
        add_newline: false,
    };
    assert!(text(&f).starts_with("msg=hé said \"hi\"\tthere,n=42,"));
    assert!(!text(&f).ends_with('\n'));
}

#[test]
fn csv_quotes_like_ruby_csv() {
    let fields = |names: &[&str]| {
        names
            .iter()
            .map(|n| Accessor::parse(n).unwrap())
            .collect::<Vec<_>>()
    };
    let f = Formatter::Csv {
        fields: fields(&["msg", "n", "none", "missing", "$.nested.a[1]"]),
        delimiter: ",".into(),
        force_quotes: true,
        add_newline: true,
    };
    assert_eq!(text(&f), "\"hé said \"\"hi\"\"\tthere\",\"42\",\"\",\"\",\"x\"\n");
    let f = Formatter::Csv {
        fields: fields(&["n", "msg", "none", "ok"]),
        delimiter: "\t".into(),
        force_quotes: false,
        add_newline: false,
    };
    assert_eq!(text(&f), "42\t\"hé said \"\"hi\"\"\tthere\"\t\ttrue");
}

#[test]
fn single_value_writes_one_field() {
    let f = Formatter::SingleValue {
        message_key: "msg".into(),
        add_newline: true,
    };
    assert_eq!(text(&f), "hé said \"hi\"\tthere\n");
    let f = Formatter::SingleValue {
        message_key: "missing".into(),
        add_newline: true,
    };
    assert_eq!(text(&f), "\n");
    let f = Formatter::SingleValue {
        message_key: "nested".into(),
        add_newline: false,
    };
    assert_eq!(text(&f), "{\"a\"=>[1, \"x\", nil], \"\\#{x}\"=>\"y\"}");
}

#[test]
fn msgpack_uses_the_smallest_forms() {
    let v = json!({"a": 1, "b": -1, "c": 200, "d": -200, "e": 70000, "f": 1.5, "g": null, "h": [true, false], "i": "é"});
    let out = Formatter::Msgpack.format(TAG, SECS, NANOS, v.as_object().unwrap());
    let expected: Vec<u8> = [
        vec![0x89],
        vec![0xa1, b'a', 0x01],
        vec![0xa1, b'b', 0xff],
        vec![0xa1, b'c', 0xcc, 200],
        vec![0xa1, b'd', 0xd1, 0xff, 0x38],
        vec![0xa1, b'e', 0xce, 0x00, 0x01, 0x11, 0x70],
        [vec![0xa1, b'f', 0xcb], 1.5f64.to_be_bytes().to_vec()].concat(),
        vec![0xa1, b'g', 0xc0],
        vec![0xa1, b'h', 0x92, 0xc3, 0xc2],
        vec![0xa1, b'i', 0xa2, 0xc3, 0xa9],
    ]
    .concat();
    assert_eq!(out, expected);
    // Long strings and big maps switch to the 8/16-bit length forms.
    let long = "x".repeat(40);
    let v = json!({ "s": long });
    let out = Formatter::Msgpack.format(TAG, SECS, NANOS, v.as_object().unwrap());
    assert_eq!(&out[..5], &[0x81, 0xa1, b's', 0xd9, 40]);
}

#[test]
fn out_file_writes_time_tag_and_json() {
    let f = Formatter::OutFile {
        output_time: true,
        output_tag: true,
        delimiter: "\t".into(),
        time: TimeStyle::Text {
            format: None,
            zone: Zone::UTC,
        },
    };
    let t = text(&f);
    assert!(
        t.starts_with("2024-02-29T13:05:09Z\tkube.var.log\t{\"msg\":"),
        "{t}"
    );
    assert!(t.ends_with("}\n"));
    let f = Formatter::OutFile {
        output_time: true,
        output_tag: false,
        delimiter: ",".into(),
        time: TimeStyle::Float,
    };
    // Fluentd's format_float: nine fractional digits.
    assert!(text(&f).starts_with("1709211909.500000000,{"), "{}", text(&f));
    let f = Formatter::OutFile {
        output_time: false,
        output_tag: true,
        delimiter: " ".into(),
        time: TimeStyle::Unixtime,
    };
    assert!(text(&f).starts_with("kube.var.log {"));
}

#[test]
fn hash_is_ruby_inspect() {
    let v = json!({"a": "x\ny", "b": [1.0, 2.5e-7], "c": {"d": null}, "e": "\u{1}"});
    let out = Formatter::Hash { add_newline: true }.format(TAG, SECS, NANOS, v.as_object().unwrap());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"a\"=>\"x\\ny\", \"b\"=>[1.0, 2.5e-07], \"c\"=>{\"d\"=>nil}, \"e\"=>\"\\u0001\"}\n"
    );
}

#[test]
fn ruby_floats() {
    assert_eq!(ruby_float(1.5), "1.5");
    assert_eq!(ruby_float(100.0), "100.0");
    assert_eq!(ruby_float(1e20), "1.0e+20");
    assert_eq!(ruby_float(1e16), "1.0e+16");
    assert_eq!(ruby_float(9999999999999998.0), "9.999999999999998e+15");
    assert_eq!(ruby_float(1e15), "1.0e+15");
    assert_eq!(ruby_float(123456789012345.0), "123456789012345.0");
    assert_eq!(ruby_float(0.0001), "0.0001");
    assert_eq!(ruby_float(0.00001), "1.0e-05");
    assert_eq!(ruby_float(-2.5e-7), "-2.5e-07");
    assert_eq!(ruby_float(0.0), "0.0");
}

/// Fluentd's text formatters against the real Ruby (tests/fixtures/fluentd-formats.jsonl, written
/// by scripts/fluentd-formats.rb): `hash`, `ltsv`, `single_value` and `csv` (forced quotes and
/// not) of generated records with every control character, characters Ruby does not print,
/// quotes and `#` sequences, integers of every 64-bit size and floats of every magnitude.
#[test]
fn text_formatters_write_rubys_bytes() {
    let fixture = include_str!("../../../tests/fixtures/fluentd-formats.jsonl");
    let fields: Vec<Accessor> = ["message", "n", "x", "f0", "f1"]
        .iter()
        .map(|f| Accessor::parse(f).unwrap())
        .collect();
    let formatters = [
        ("hash", Formatter::Hash { add_newline: true }),
        (
            "ltsv",
            Formatter::Ltsv {
                delimiter: "\t".into(),
                label_delimiter: ":".into(),
                replacement: " ".into(),
                add_newline: true,
            },
        ),
        (
            "single_value",
            Formatter::SingleValue {
                message_key: "message".into(),
                add_newline: true,
            },
        ),
        (
            "csv",
            Formatter::Csv {
                fields: fields.clone(),
                delimiter: ",".into(),
                force_quotes: true,
                add_newline: true,
            },
        ),
        (
            "csv_unforced",
            Formatter::Csv {
                fields,
                delimiter: ",".into(),
                force_quotes: false,
                add_newline: true,
            },
        ),
    ];
    let mut checked = 0;
    let mut differences = Vec::new();
    for line in fixture.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let record: Map<String, Value> = serde_json::from_str(case["record"].as_str().unwrap()).unwrap();
        for (name, formatter) in &formatters {
            let want = case[*name].as_str().unwrap();
            let got = String::from_utf8(formatter.format(TAG, SECS, NANOS, &record)).unwrap();
            if got != want {
                differences.push(format!(
                    "{name} of {}:\n  ruby: {want:?}\n  ours: {got:?}",
                    case["record"]
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked}");
    assert!(
        differences.is_empty(),
        "{} of {checked} differ from Ruby:\n{}",
        differences.len(),
        differences
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Integers beyond 64 bits reach every formatter as their digits (Ruby keeps them exact), not
/// as a double's `1.2345678901234568e+23`; msgpack, which has no such integer, gets the double.
#[test]
fn integers_of_any_size_keep_their_digits() {
    let record: Map<String, Value> =
        serde_json::from_str(r#"{"id":123456789012345678901234,"neg":-98765432109876543210,"f":1.50}"#)
            .unwrap();
    let out = |f: &Formatter| String::from_utf8_lossy(&f.format(TAG, SECS, NANOS, &record)).into_owned();
    assert_eq!(
        out(&Formatter::Json { add_newline: false }),
        r#"{"id":123456789012345678901234,"neg":-98765432109876543210,"f":1.5}"#
    );
    assert_eq!(
        out(&Formatter::Hash { add_newline: false }),
        r#"{"id"=>123456789012345678901234, "neg"=>-98765432109876543210, "f"=>1.5}"#
    );
    assert_eq!(
        out(&Formatter::Ltsv {
            delimiter: "\t".into(),
            label_delimiter: ":".into(),
            replacement: " ".into(),
            add_newline: false,
        }),
        "id:123456789012345678901234\tneg:-98765432109876543210\tf:1.5"
    );
    let out_file = out(&Formatter::OutFile {
        output_time: false,
        output_tag: false,
        delimiter: "\t".into(),
        time: TimeStyle::Unixtime,
    });
    assert_eq!(
        out_file,
        "{\"id\":123456789012345678901234,\"neg\":-98765432109876543210,\"f\":1.5}\n"
    );
    let packed = Formatter::Msgpack.format(TAG, SECS, NANOS, &record);
    assert_eq!(&packed[..4], &[0x83, 0xa2, b'i', b'd']);
    assert_eq!(packed[4], 0xcb, "a float 64");
    assert_eq!(
        f64::from_be_bytes(packed[5..13].try_into().unwrap()),
        1.2345678901234568e23
    );
}
