//! Durations and sizes as settings write them (`30s`, `7d`, `10MiB`): one parser each (a
//! ground module: it imports nothing of the crate).

use std::time::Duration;

/// `30s`, `500ms`, `2m`, `1h`, `7d`, or a number of seconds; zero is refused.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => return Err(format!("`{other}` in `{s}` is not a unit of time (ms, s, m, h, d)")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d.is_zero() => Err(format!("`{s}`: a time-out must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

/// `"10MiB"`, `"512KiB"`, `"1GB"`, `"300 kB"`, `"1048576"`: a size in bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a size"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" | "t" => 1024 * 1024 * 1024 * 1024,
        _ => return Err(format!("`{text}`: unknown unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))
}

/// A size in bytes as a config file writes it: a number of bytes (`1048576`) or a string with
/// a unit (`"10MiB"`, `"1GB"`; see [`parse_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of bytes or a size such as \"10MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| E::custom(format!("negative size {n}")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A grace window: a duration, or `0` (nothing is too young to collect).
pub fn parse_grace(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "0" | "0s" | "0ms" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

/// An interval that may be `off`.
pub fn parse_interval(s: &str) -> std::result::Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "0" | "false" => Ok(None),
        other => parse_duration(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        for bad in ["", "s", "-1s", "0", "0ms", "10 years", "1.2.3s", "inf", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
