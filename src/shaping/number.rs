//! Numbers as the source wrote them. Records are read with serde_json's `arbitrary_precision`,
//! so a number keeps its text: an integer of any size reaches every formatter as its digits
//! (Ruby keeps integers beyond 64 bits exact; a 64-bit float would turn
//! `123456789012345678901234` into `1.2345678901234568e23`). Floats are written in their
//! shortest round-trip form, as before (`1.50` and `15e-1` are both `1.5`).

use std::borrow::Cow;
use std::io;

use serde::Serialize;
use serde_json::{Number, Value};

/// Whether `text` (a JSON number) is an integer: no fraction, no exponent.
fn is_integer(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// The JSON text of `n`: an integer's digits as written (`-0` as `0`, an integer, as Ruby reads
/// it), a float in its shortest round-trip form (one beyond the range of a double as written).
pub fn json_text(n: &Number) -> Cow<'_, str> {
    let text = n.as_str();
    if is_integer(text) {
        return Cow::Borrowed(if text == "-0" { "0" } else { text });
    }
    match text.parse::<f64>() {
        // serde_json's own writing of a double (shortest round trip, `1.0` not `1`).
        Ok(f) => match Number::from_f64(f) {
            Some(shortest) => Cow::Owned(shortest.as_str().to_string()),
            None => Cow::Borrowed(text),
        },
        Err(_) => Cow::Borrowed(text),
    }
}

/// The number as Ruby reads it from JSON: an integer of any size, or a float.
pub enum Parsed<'a> {
    Integer(&'a str),
    Float(f64),
}

/// [`Parsed`] of `n` (a float beyond a double's range is infinite, as in Ruby).
pub fn parsed(n: &Number) -> Parsed<'_> {
    let text = n.as_str();
    if is_integer(text) {
        Parsed::Integer(if text == "-0" { "0" } else { text })
    } else {
        Parsed::Float(text.parse::<f64>().unwrap_or(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }))
    }
}

/// serde_json's compact writer, with numbers in their [`json_text`].
struct Canonical;

impl serde_json::ser::Formatter for Canonical {
    fn write_number_str<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: &str) -> io::Result<()> {
        let n: Number = value.parse().map_err(io::Error::other)?;
        writer.write_all(json_text(&n).as_bytes())
    }
}

/// `value` as compact JSON with canonical numbers, appended to `out`.
pub fn write_json<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::with_formatter(out, Canonical);
    value
        .serialize(&mut ser)
        .expect("JSON values serialise into a Vec");
}

/// `value` as compact JSON with canonical numbers.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(value, &mut out);
    out
}

/// [`to_json`] as text.
pub fn to_json_string(value: &Value) -> String {
    String::from_utf8(to_json(value)).expect("JSON is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        to_json_string(&v)
    }

    #[test]
    fn integers_keep_their_digits_and_floats_their_shortest_form() {
        assert_eq!(
            json(r#"{"big":123456789012345678901234,"neg":-98765432109876543210987,"n":7}"#),
            r#"{"big":123456789012345678901234,"neg":-98765432109876543210987,"n":7}"#
        );
        assert_eq!(
            json(r#"[1.50,15e-1,1E3,1.0,-0,-0.0,0.1]"#),
            "[1.5,1.5,1000.0,1.0,0,-0.0,0.1]"
        );
        // Beyond a double's range: the text as written (still JSON), never `null`.
        assert_eq!(json("[1e400,-2.5E+999]"), "[1e+400,-2.5e+999]");
        assert!(matches!(parsed(&"1e400".parse().unwrap()), Parsed::Float(f) if f == f64::INFINITY));
        assert!(matches!(
            parsed(&"12345678901234567890123".parse().unwrap()),
            Parsed::Integer("12345678901234567890123")
        ));
    }

    /// The same bytes serde_json wrote before numbers kept their text, wherever a 64-bit
    /// integer or a double held the number (so nothing already shipped changes form): its own
    /// writing of the integer or the double.
    #[test]
    fn numbers_within_64_bits_are_written_as_before() {
        for text in ["18446744073709551615", "-9223372036854775808", "0", "42"] {
            let before = match text.parse::<u64>() {
                Ok(u) => serde_json::to_string(&u).unwrap(),
                Err(_) => serde_json::to_string(&text.parse::<i64>().unwrap()).unwrap(),
            };
            assert_eq!(json_text(&text.parse().unwrap()), before, "{text}");
        }
        for text in [
            "1700000000.25",
            "1e20",
            "1.5e-7",
            "123.456",
            "5e-324",
            "1.7976931348623157e308",
        ] {
            let before = serde_json::to_string(&text.parse::<f64>().unwrap()).unwrap();
            assert_eq!(json_text(&text.parse().unwrap()), before, "{text}");
        }
    }
}
