//! Formatting event times as Fluentd does: Ruby's `strftime` (with Fluentd's `%N`, `%3N`, …),
//! in UTC or a fixed offset.
//!
//! A component has no local time zone, so "local time" is the configured `timezone` (a fixed
//! offset such as `+09:00`), or UTC when none is given.

use std::fmt::Write as _;

/// A time zone the formatter can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Seconds east of UTC.
    pub offset: i32,
    /// UTC itself (ISO 8601 then writes `Z`).
    pub utc: bool,
}

impl Zone {
    pub const UTC: Zone = Zone { offset: 0, utc: true };

    /// Parse Fluentd's `timezone`: `UTC`, `Z`, `+09:00`, `-0700`, `+09`. IANA names need a
    /// time-zone database, which the component does not carry.
    pub fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        if matches!(t, "UTC" | "utc" | "Z" | "GMT" | "Etc/UTC") {
            return Ok(Zone::UTC);
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
        match directive {
            'Y' => {
                let _ = write!(out, "{:04}", c.year);
            }
            'C' => {
                let _ = write!(out, "{:02}", c.year.div_euclid(100));
            }
            'y' => {
                let _ = write!(out, "{:02}", c.year.rem_euclid(100));
            }
            'm' => {
                let _ = write!(out, "{:02}", c.month);
            }
            'd' => {
                let _ = write!(out, "{:02}", c.day);
            }
            'e' => {
                let _ = write!(out, "{:2}", c.day);
            }
            'j' => {
                let _ = write!(out, "{:03}", c.yday);
            }
            'H' => {
                let _ = write!(out, "{:02}", c.hour);
            }
            'k' => {
                let _ = write!(out, "{:2}", c.hour);
            }
            'I' => {
                let _ = write!(out, "{:02}", (c.hour + 11) % 12 + 1);
            }
            'l' => {
                let _ = write!(out, "{:2}", (c.hour + 11) % 12 + 1);
            }
            'M' => {
                let _ = write!(out, "{:02}", c.minute);
            }
            'S' => {
                let _ = write!(out, "{:02}", c.second);
            }
            'L' => {
                let _ = write!(out, "{:03}", nanos / 1_000_000);
            }
            'N' => {
                let digits: usize = width.parse().unwrap_or(9).clamp(1, 9);
                let full = format!("{nanos:09}");
                out.push_str(&full[..digits]);
            }
            'z' => offset_text(&mut out, zone.offset, colon),
            'Z' => out.push_str(if zone.utc { "UTC" } else { "" }),
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
        assert_eq!(Zone::parse("UTC").unwrap(), Zone::UTC);
        assert_eq!(Zone::parse("+09").unwrap().offset, 9 * 3600);
        for bad in ["Asia/Tokyo", "+25:00", "+9", "09:00", ""] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }
}
