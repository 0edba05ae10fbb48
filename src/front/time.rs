//! An event's time: read from the record's own time field (`time_keys`, the first readable one
//! wins), else the time it arrived. Every door uses this one rule.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::shaping::timefmt::parse_timestamp;

/// Seconds and nanoseconds since the Unix epoch.
pub type EventTime = (i64, u32);

/// `now` as an event time (the arrival time of records without a readable time field).
pub fn arrival(now: SystemTime) -> EventTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs() as i64, since.subsec_nanos())
}

/// The time of the event `record`: its first readable `keys` field, else `arrival`.
pub fn event_time(record: &[u8], keys: &[String], arrival: EventTime) -> EventTime {
    scan_time(record, keys).ok().flatten().unwrap_or(arrival)
}

/// Check that `record` is one JSON value and read its time, if it is an object with one.
pub fn scan_time(record: &[u8], keys: &[String]) -> Result<Option<EventTime>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(record);
    let time = TimeScan(keys).deserialize(&mut de)?;
    de.end()?;
    Ok(time)
}

/// Walks one JSON value; for an object, keeps the first readable time among `keys` (in their
/// order) and skips everything else without building it.
pub(super) struct TimeScan<'k>(pub(super) &'k [String]);

impl<'de> DeserializeSeed<'de> for TimeScan<'_> {
    type Value = Option<(i64, u32)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeScan<'_> {
    type Value = Option<(i64, u32)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut best: Option<(usize, (i64, u32))> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.iter().position(|k| *k == key) {
                Some(rank) if best.is_none_or(|(b, _)| rank < b) => {
                    let value: Value = map.next_value()?;
                    if let Some(t) = parse_time(&value) {
                        best = Some((rank, t));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(best.map(|(_, t)| t))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A time field's value as seconds and nanoseconds. Numbers are epoch times; their size says the
/// unit (seconds, or milli-, micro-, nanoseconds from 10^11, 10^14, 10^17 on), so Fluent Bit's
/// `double`, `epoch` and `epoch_ms` and Vector's `unix*` formats all read right. Strings are
/// ISO 8601 / RFC 3339 (`iso8601`, Vector's default) or `2024-05-01 12:00:00.123` (Fluent Bit's
/// `java_sql_timestamp`, read as UTC), or a number in text.
pub fn parse_time(value: &Value) -> Option<(i64, u32)> {
    match value {
        Value::Number(n) => parse_epoch(&crate::shaping::number::json_text(n)),
        Value::String(s) => {
            let s = s.trim();
            if s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') && s.len() >= 9 {
                return parse_epoch(s);
            }
            let t = parse_timestamp(s)?;
            let (seconds, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(e) => {
                    let d = e.duration();
                    let mut secs = -(d.as_secs() as i64);
                    let mut nanos = d.subsec_nanos();
                    if nanos > 0 {
                        secs -= 1;
                        nanos = 1_000_000_000 - nanos;
                    }
                    (secs, nanos)
                }
            };
            Some((seconds, nanos))
        }
        _ => None,
    }
}

/// An epoch time written in decimal, read digit by digit so that `1700000000.123456` keeps
/// its microseconds exactly.
fn parse_epoch(text: &str) -> Option<(i64, u32)> {
    if text.contains(['e', 'E']) {
        let v: f64 = text.parse().ok()?;
        return parse_epoch(&format!("{v:.9}"));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if negative {
        return None; // before 1970: not a log time
    }
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    // Scale to nanoseconds by the magnitude of the whole part.
    let (unit_digits, scale): (usize, u128) = match whole {
        w if w >= 100_000_000_000_000_000 => (0, 1),
        w if w >= 100_000_000_000_000 => (3, 1_000),
        w if w >= 100_000_000_000 => (6, 1_000_000),
        _ => (9, 1_000_000_000),
    };
    let frac_digits: String = frac.chars().take(unit_digits).collect();
    let frac_value: u128 = if frac_digits.is_empty() {
        0
    } else {
        format!("{frac_digits:0<unit_digits$}").parse().ok()?
    };
    let total = whole.checked_mul(scale)?.checked_add(frac_value)?;
    let seconds = i64::try_from(total / 1_000_000_000).ok()?;
    Some((seconds, (total % 1_000_000_000) as u32))
}
