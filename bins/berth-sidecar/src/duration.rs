//! Durations in Go's `time.ParseDuration` syntax (`5s`, `5m0s`, `1m30s`, `300ms`,
//! `1.5h`), because the seed's users pass them that way, and Go's `String()` format
//! for printing them back.

use std::fmt;
use std::time::Duration;

/// Why a duration was refused; the message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µ MICRO SIGN, accepted by Go
    ("\u{3bc}s", 1_000), // μ GREEK SMALL LETTER MU, accepted by Go
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration: a sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), or a bare `0`.
/// Negative durations are refused: every duration here is a timeout.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = |why: &str| DurationError(format!("invalid duration {text:?}: {why}"));
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad("empty (write e.g. 5s, 1m30s, 300ms)"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(bad("missing unit (ns, us, ms, s, m or h)"));
        }
        let scale = NANOS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| bad(&format!("unknown unit {unit:?}")))?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad("number too large"))?
        };
        // Fraction digits beyond nanosecond precision of the largest unit change nothing.
        let mut frac_nanos: u128 = 0;
        let mut divisor: u128 = 1;
        for digit in frac_part.bytes().take(18) {
            frac_nanos = frac_nanos * 10 + u128::from(digit - b'0');
            divisor *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|n| n.checked_add(frac_nanos * scale / divisor))
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| bad("too large"))?;
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| bad("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats like Go's `Duration.String()`: `5s`, `5m0s`, `1h0m0s`, `300ms`, `1.5s`, `0s`.
pub(crate) fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (value, divisor, unit) = if nanos < 1_000 {
            (nanos, 1, "ns")
        } else if nanos < 1_000_000 {
            (nanos, 1_000, "\u{b5}s")
        } else {
            (nanos, 1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(value, divisor));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / divisor` as a decimal without trailing zeros.
fn decimal(value: u128, divisor: u128) -> String {
    let whole = value / divisor;
    let frac = value % divisor;
    if frac == 0 {
        return whole.to_string();
    }
    let width = divisor.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_go_syntax() {
        let cases = [
            ("5s", ms(5_000)),
            ("5m0s", ms(300_000)),
            ("1m30s", ms(90_000)),
            ("300ms", ms(300)),
            ("1.5h", ms(5_400_000)),
            ("1h2m3s4ms", ms(3_723_004)),
            (".5s", ms(500)),
            ("1.s", ms(1_000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+2s", ms(2_000)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1.000000001s", Duration::from_nanos(1_000_000_001)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for text in [
            "", "5", "s", "5x", "1.5.5s", "-5s", "5 s", "1m-3s", ".s", "abc",
        ] {
            let err = parse_go_duration(text).expect_err(text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
        assert!(parse_go_duration("99999999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(5_000), "5s"),
            (ms(300_000), "5m0s"),
            (ms(90_000), "1m30s"),
            (ms(300), "300ms"),
            (ms(1_500), "1.5s"),
            (ms(3_600_000), "1h0m0s"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_nanos(42), "42ns"),
        ];
        for (duration, want) in cases {
            assert_eq!(format_go_duration(duration), want);
            assert_eq!(parse_go_duration(want), Ok(duration), "round trip {want}");
        }
    }
}
