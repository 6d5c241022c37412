//! The caller's deadline, from the `grpc-timeout` request header, so work
//! done on a caller's behalf (retries above all) never outlives the caller.

use std::time::Duration;
use tonic::metadata::MetadataMap;

/// The header carrying a call's deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The timeout the caller set, if any (`grpc-timeout: 5S`, `250m`, ...).
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get(GRPC_TIMEOUT)?.to_str().ok()?;
    parse(value)
}

/// A `grpc-timeout` value: at most 8 digits, in the finest unit that fits.
pub fn encode(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let micros = d.as_micros();
    if micros <= MAX {
        format!("{micros}u")
    } else if d.as_millis() <= MAX {
        format!("{}m", d.as_millis())
    } else {
        format!("{}S", u128::from(d.as_secs()).min(MAX))
    }
}

/// A `grpc-timeout` value as a duration.
pub fn parse(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_junk() {
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "5", "5X", "-1S", "1234567890S"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        for d in [
            Duration::from_micros(7),
            Duration::from_secs(2),
            Duration::from_secs(86_400 * 9),
        ] {
            let e = encode(d);
            assert!(e.len() <= 9, "{e}");
            assert_eq!(parse(&e), Some(d), "{e}");
        }
    }
}
