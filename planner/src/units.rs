//! Units of the language and the command line, parsed in one place: durations (`90s`,
//! `1h30m`), Kubernetes CPU (`500m`) and memory (`512Mi`) quantities. Used by decoding, the cost
//! estimate and the CLI's flags.

use std::time::Duration;

pub fn is_duration(s: &str) -> bool {
    // One or more `<digits><unit>` groups: "90s", "2h", "1h30m", "7d".
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        let Some(unit) = rest[digits..].chars().next() else {
            return false;
        };
        if !matches!(unit, 's' | 'm' | 'h' | 'd') {
            return false;
        }
        rest = &rest[digits + 1..];
    }
    true
}

/// Seconds in a duration accepted by [`is_duration`] (parsed by `humantime`; a duration too
/// large to represent saturates).
pub fn duration_seconds(s: &str) -> u64 {
    humantime::parse_duration(s).map_or(u64::MAX, |d| d.as_secs())
}

/// Kubernetes CPU quantity: "500m", "2", "0.5".
pub fn is_cpu(s: &str) -> bool {
    cpu_millis(s).is_some_and(|m| m > 0)
}

pub fn cpu_millis(s: &str) -> Option<u64> {
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<u64>().ok();
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f > 0.0).then(|| (f * 1000.0).round() as u64)
}

/// Kubernetes memory quantity: "512Mi", "2Gi", "1G", "1048576".
pub fn is_memory(s: &str) -> bool {
    memory_bytes(s).is_some_and(|b| b > 0)
}

pub fn memory_bytes(s: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, mult) in UNITS {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<u64>().ok().and_then(|n| n.checked_mul(mult));
        }
    }
    s.parse::<u64>().ok()
}

/// A duration given on the command line (`30s`, `5m`, `1h30m`, `300ms`, `0`), parsed by
/// `humantime`.
pub fn parse_flag_duration(s: &str) -> Result<Duration, crate::invalid::InvalidValue> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim()).map_err(|_| {
        crate::invalid::InvalidValue(format!(
            "`{s}` is not a duration like 30s, 5m, 1h30m or 300ms"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_durations() {
        assert_eq!(parse_flag_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_flag_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_flag_duration("0"), Ok(Duration::ZERO));
        assert!(parse_flag_duration("soon").is_err());
    }
}
