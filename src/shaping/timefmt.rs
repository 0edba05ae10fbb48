//! Formatting event times as Fluentd does: Ruby's `strftime` (with Fluentd's `%N`, `%3N`, …),
//! in UTC or a fixed offset.
//!
//! A component has no local time zone: Fluentd's default local time is written as a host in UTC
//! writes it (`+00:00`, `%Z` = `UTC`); `utc true` writes UTC itself (`Z`); `timezone` a fixed
//! offset (`+09:00`, `%Z` empty), as Ruby's `Time#localtime(offset)` does.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time zone the formatter can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Seconds east of UTC.
    pub offset: i32,
    /// UTC itself, Ruby's `Time#utc` (ISO 8601 then writes `Z`).
    pub utc: bool,
    /// The host's local time (in UTC here): `%Z` names it `UTC`, ISO 8601 writes `+00:00`.
    pub local: bool,
}

impl Zone {
    /// `utc true` / `localtime false`.
    pub const UTC: Zone = Zone {
        offset: 0,
        utc: true,
        local: false,
    };
    /// Fluentd's default, `localtime true`, on a host in UTC.
    pub const LOCAL: Zone = Zone {
        offset: 0,
        utc: false,
        local: true,
    };

    /// Parse Fluentd's `timezone`: `UTC`, `Z`, `+09:00`, `-0700`, `+09`. IANA names need a
    /// time-zone database, which the component does not carry.
    pub fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        // A zone name is an offset for Fluentd too (`localtime(offset)`): `+00:00`, no `Z`.
        if matches!(t, "UTC" | "utc" | "Z" | "GMT" | "Etc/UTC") {
            return Ok(Zone {
                offset: 0,
                utc: false,
                local: false,
            });
        }
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => {
                return Err(format!(
                    "{t:?} is not a fixed offset like +09:00 or UTC (zone names such as Asia/Tokyo are not supported)"
                ))
            }
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        let (h, m) = match digits.len() {
            2 => (&digits[..2], "00"),
            4 => (&digits[..2], &digits[2..]),
            _ => return Err(format!("{t:?} is not an offset like +09:00")),
        };
        let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
            (Ok(h), Ok(m)) if h <= 23 && m <= 59 => (h, m),
            _ => return Err(format!("{t:?} is not an offset like +09:00")),
        };
        Ok(Zone {
            offset: sign * (h * 3600 + m * 60),
            utc: false,
            local: false,
        })
    }
}

/// The broken-down time of `seconds` since the epoch at `offset`.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
    yday: u32,
}

fn civil(seconds: i64, offset: i32) -> Civil {
    let local = seconds + i64::from(offset);
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUMULATIVE[(month - 1) as usize] + day + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn offset_text(out: &mut String, offset: i32, colon: bool) {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    let _ = if colon {
        write!(out, "{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    } else {
        write!(out, "{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
    };
}

/// The directives that print one number: its value, its width, and whether it is padded with
/// zeros (else spaces).
fn numeric_field(directive: char, c: &Civil, nanos: u32) -> Option<(i64, usize, bool)> {
    let hour12 = (c.hour as i64 + 11) % 12 + 1;
    Some(match directive {
        'Y' => (c.year, 4, true),
        'C' => (c.year.div_euclid(100), 2, true),
        'y' => (c.year.rem_euclid(100), 2, true),
        'm' => (c.month as i64, 2, true),
        'd' => (c.day as i64, 2, true),
        'e' => (c.day as i64, 2, false),
        'j' => (c.yday as i64, 3, true),
        'H' => (c.hour as i64, 2, true),
        'k' => (c.hour as i64, 2, false),
        'I' => (hour12, 2, true),
        'l' => (hour12, 2, false),
        'M' => (c.minute as i64, 2, true),
        'S' => (c.second as i64, 2, true),
        'L' => ((nanos / 1_000_000) as i64, 3, true),
        _ => return None,
    })
}

/// Ruby's `Time#strftime` for the directives log formats use, plus `%N` with a width.
pub fn strftime(format: &str, seconds: i64, nanos: u32, zone: Zone) -> String {
    let c = civil(seconds, zone.offset);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        // Optional width digits (for %N) and a colon (for %:z).
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(*d);
            chars.next();
        }
        let colon = chars.peek() == Some(&':');
        if colon {
            chars.next();
        }
        let Some(directive) = chars.next() else {
            out.push('%');
            out.push_str(&width);
            break;
        };
        if let Some((value, digits, zero)) = numeric_field(directive, &c, nanos) {
            let _ = if zero {
                write!(out, "{value:0digits$}")
            } else {
                write!(out, "{value:digits$}")
            };
            continue;
        }
        match directive {
            'N' => {
                let digits: usize = width.parse().unwrap_or(9).clamp(1, 9);
                let full = format!("{nanos:09}");
                out.push_str(&full[..digits]);
            }
            'z' => offset_text(&mut out, zone.offset, colon),
            'Z' => out.push_str(if zone.utc || zone.local { "UTC" } else { "" }),
            's' => {
                let _ = write!(out, "{seconds}");
            }
            'a' => out.push_str(&DAYS[c.weekday as usize][..3]),
            'A' => out.push_str(DAYS[c.weekday as usize]),
            'b' | 'h' => out.push_str(&MONTHS[(c.month - 1) as usize][..3]),
            'B' => out.push_str(MONTHS[(c.month - 1) as usize]),
            'p' => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
            'P' => out.push_str(if c.hour < 12 { "am" } else { "pm" }),
            'u' => {
                let _ = write!(out, "{}", if c.weekday == 0 { 7 } else { c.weekday });
            }
            'w' => {
                let _ = write!(out, "{}", c.weekday);
            }
            'T' => {
                let _ = write!(out, "{:02}:{:02}:{:02}", c.hour, c.minute, c.second);
            }
            'R' => {
                let _ = write!(out, "{:02}:{:02}", c.hour, c.minute);
            }
            'D' => {
                let _ = write!(out, "{:02}/{:02}/{:02}", c.month, c.day, c.year.rem_euclid(100));
            }
            'F' => {
                let _ = write!(out, "{:04}-{:02}-{:02}", c.year, c.month, c.day);
            }
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '%' => out.push('%'),
            other => {
                // Unknown directives stay as written, as Ruby leaves them.
                out.push('%');
                out.push_str(&width);
                if colon {
                    out.push(':');
                }
                out.push(other);
            }
        }
    }
    out
}

/// Ruby's `Time#iso8601`: `2024-01-01T09:00:00+09:00`, or `…Z` in UTC.
pub fn iso8601(seconds: i64, zone: Zone) -> String {
    let mut s = strftime("%Y-%m-%dT%H:%M:%S", seconds, 0, zone);
    if zone.utc {
        s.push('Z');
    } else {
        offset_text(&mut s, zone.offset, true);
    }
    s
}

/// Parse an RFC 3339 UTC timestamp (`2026-11-25T23:00:00Z`, fractions and offsets allowed).
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    let (date, time) = t.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    // Four-digit years only: the arithmetic below then cannot overflow.
    if d.next().is_some()
        || !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    // Split off the zone: Z, or ±HH:MM.
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, zone) = time.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        (c, sign * (h * 3600 + m * 60))
    } else {
        (time, 0)
    };
    let mut parts = clock.split(':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let sec_text = parts.next().unwrap_or("0");
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let second: i64 = whole.parse().ok()?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        format!("{digits:0<9}").parse().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-02-29T13:05:09.123456789Z, a Thursday.
    const T: i64 = 1_709_211_909;
    const NS: u32 = 123_456_789;

    #[test]
    fn strftime_matches_ruby() {
        let utc = Zone::UTC;
        assert_eq!(
            strftime("%Y-%m-%dT%H:%M:%S.%N%z", T, NS, utc),
            "2024-02-29T13:05:09.123456789+0000"
        );
        assert_eq!(
            strftime("%Y-%m-%dT%H:%M:%S.%3N", T, NS, utc),
            "2024-02-29T13:05:09.123"
        );
        assert_eq!(
            strftime("%6N|%L|%s|%j|%a %A %b %B|%e|%I %p|%F %T|%%|%Q", T, NS, utc),
            "123456|123|1709211909|060|Thu Thursday Feb February|29|01 PM|2024-02-29 13:05:09|%|%Q"
        );
        let tokyo = Zone::parse("+09:00").unwrap();
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %z %:z", T, NS, tokyo),
            "2024-02-29 22:05:09 +0900 +09:00"
        );
        let west = Zone::parse("-0730").unwrap();
        assert_eq!(strftime("%d %H:%M %z", T, 0, west), "29 05:35 -0730");
        // Crossing a day and year boundary.
        assert_eq!(strftime("%F %T", 1_704_067_199, 0, tokyo), "2024-01-01 08:59:59");
        assert_eq!(
            strftime("%F %T %j", 1_704_067_199, 0, utc),
            "2023-12-31 23:59:59 365"
        );
        assert_eq!(strftime("%F", -86_400, 0, utc), "1969-12-31");
    }

    #[test]
    fn iso8601_and_zones() {
        assert_eq!(iso8601(T, Zone::UTC), "2024-02-29T13:05:09Z");
        assert_eq!(
            iso8601(T, Zone::parse("+0530").unwrap()),
            "2024-02-29T18:35:09+05:30"
        );
        // A named zone is an offset, as Fluentd's `localtime(offset)`: `+00:00`, not `Z`.
        assert_eq!(
            iso8601(T, Zone::parse("UTC").unwrap()),
            "2024-02-29T13:05:09+00:00"
        );
        assert_eq!(iso8601(T, Zone::LOCAL), "2024-02-29T13:05:09+00:00");
        assert_eq!(Zone::parse("+09").unwrap().offset, 9 * 3600);
        for bad in ["Asia/Tokyo", "+25:00", "+9", "09:00", ""] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }
}
