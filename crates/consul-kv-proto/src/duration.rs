//! Go duration strings, as Consul reads and writes them (`wait`, `TTL`, `LockDelay`,
//! `max_stale`).
//!
//! The one Go-duration parser of the workspace: [`parse_go_nanos`] is Go's
//! `time.ParseDuration` with Go's error texts (the devserver answers with them, as Consul
//! does), and [`parse_go_duration`] is the lenient, non-negative reading a client wants.

use std::time::Duration;

use crate::encode::go_quote;

/// Formats a duration the way Go's `time.ParseDuration` reads it, exactly and always with a
/// unit. A zero wait is sent as `1ms`, because Consul reads `0` as its 5-minute default; a
/// wait over Consul's 10-minute cap is sent as the cap ([`crate::time::MAX_WAIT`]).
pub fn format_wait(d: Duration) -> String {
    let d = d.min(crate::time::MAX_WAIT);
    if d.is_zero() {
        return "1ms".to_owned();
    }
    format_go_duration(d)
}

/// Formats a duration as an exact Go duration string (`30s`, `1500ms`, `10us`, `7ns`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// Parses a Go duration string such as `15s`, `1m30s`, `1.5h` or `100ms`.
///
/// A unit is required (as in Go, except for the bare `0`); surrounding white space is ignored.
/// Returns `None` when malformed or negative. [`parse_go_nanos`] is the exact Go reading.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let nanos = parse_go_nanos(s.trim()).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// Why a string is not a Go duration. `Display` is Go's own error text (the Consul agent
/// returns it verbatim), with the input quoted.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoDurationError {
    /// `time: invalid duration "…"`.
    #[error("time: invalid duration {}", go_quote(.input))]
    Invalid {
        /// The whole input.
        input: String,
    },
    /// `time: missing unit in duration "…"`.
    #[error("time: missing unit in duration {}", go_quote(.input))]
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// `time: unknown unit "…" in duration "…"`.
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

/// Go's `time.ParseDuration`, exactly: signed nanoseconds within `i64`, or Go's error.
///
/// Accepts what Go accepts (`-1.5h`, `+0`, `.5s`, `1h2m3s4ms5us6ns`, `µs`) and nothing else: no
/// white space, a unit after every number except a lone `0`, no overflow past `i64`.
///
/// # Errors
/// [`GoDurationError`], whose `Display` is Go's text.
pub fn parse_go_nanos(orig: &str) -> Result<i64, GoDurationError> {
    let invalid = || GoDurationError::Invalid {
        input: orig.to_owned(),
    };
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..int_len];
        let v: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| invalid())?
        };
        if v > (1u128 << 63) {
            return Err(invalid());
        }
        s = &s[int_len..];
        // Fraction.
        let mut frac = "";
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            let flen = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            frac = &rest[..flen];
            post = flen > 0;
            s = &rest[flen..];
        }
        if int_len == 0 && !post {
            return Err(invalid());
        }
        // Unit.
        let ulen = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if ulen == 0 {
            return Err(GoDurationError::MissingUnit {
                input: orig.to_owned(),
            });
        }
        let unit_str = &s[..ulen];
        s = &s[ulen..];
        let unit: u128 = match unit_str {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(GoDurationError::UnknownUnit {
                    unit: unit_str.to_owned(),
                    input: orig.to_owned(),
                })
            }
        };
        let mut value = v.checked_mul(unit).ok_or_else(invalid)?;
        let mut scale = unit;
        for d in frac.bytes().take(30) {
            scale /= 10;
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > (1u128 << 63) {
            return Err(invalid());
        }
    }
    let total = i128::try_from(total).map_err(|_| invalid())?;
    let signed = if neg { -total } else { total };
    i64::try_from(signed).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_exact_with_a_unit() {
        let table = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(10), "10us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::ZERO, "1ms"),
            (Duration::from_secs(600), "600s"),
        ];
        for (d, want) in table {
            assert_eq!(format_wait(d), want);
        }
    }

    #[test]
    fn go_durations_parse() {
        let table: &[(&str, Option<Duration>)] = &[
            ("15s", Some(Duration::from_secs(15))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("100ms", Some(Duration::from_millis(100))),
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("10", None),
            ("-5s", None),
            ("abc", None),
            ("", None),
            ("5x", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_go_duration(s), *want, "{s:?}");
        }
    }

    #[test]
    fn go_reading_is_exact() {
        assert_eq!(parse_go_nanos("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_go_nanos("+0"), Ok(0));
        assert_eq!(parse_go_nanos("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
        assert_eq!(parse_go_nanos("2\u{b5}s"), Ok(2_000));
        assert_eq!(parse_go_nanos("-9223372036854775808ns"), Ok(i64::MIN));
        assert!(parse_go_nanos("9223372036854775808ns").is_err());
        assert!(parse_go_nanos(" 1s").is_err());
        let text = |s: &str| parse_go_nanos(s).unwrap_err().to_string();
        assert_eq!(text("10"), "time: missing unit in duration \"10\"");
        assert_eq!(text("1.s."), "time: invalid duration \"1.s.\"");
        assert_eq!(text("3 s"), "time: unknown unit \" s\" in duration \"3 s\"");
        // The lenient reading trims, and refuses what a client cannot send.
        assert_eq!(parse_go_duration(" 2s "), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("-1s"), None);
    }
}
