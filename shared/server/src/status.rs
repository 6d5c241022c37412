//! Checking request fields: violations collected per field, answered as
//! INVALID_ARGUMENT with a `BadRequest` detail naming each field (built by
//! [`crate::failure::Failure`]), and reading those details back.

use std::time::Duration;
use tonic::Status;
use tonic_types::StatusExt;

/// One bad field in a request: its path (`recipients[3].openid`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Checks that a required string field is present, trimmed of nothing: an
/// all-whitespace value counts as missing.
pub fn require(violations: &mut Vec<Violation>, field: &str, value: &str) {
    if value.trim().is_empty() {
        violations.push(Violation::new(field, "is required"));
    }
}

/// Checks a field's length in characters (not bytes).
pub fn max_chars(violations: &mut Vec<Violation>, field: &str, value: &str, max: usize) {
    let n = value.chars().count();
    if n > max {
        violations.push(Violation::new(
            field,
            format!("is {n} characters, at most {max} allowed"),
        ));
    }
}

/// Checks that an identifier (an id, a key, an openid) holds no control
/// character: none is in any real one, and PostgreSQL cannot even store a
/// NUL (a lookup would fail as if the database were down).
pub fn no_control(violations: &mut Vec<Violation>, field: &str, value: &str) {
    if value.chars().any(char::is_control) {
        violations.push(Violation::new(field, "may not contain control characters"));
    }
}

/// Turns collected violations into an error, or `Ok` when there are none.
pub fn check(violations: Vec<Violation>) -> Result<(), Status> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(crate::failure::Failure::invalid(&violations).into())
    }
}

/// The field violations a status carries, for clients and tests.
pub fn field_violations(status: &Status) -> Vec<Violation> {
    status
        .get_details_bad_request()
        .map(|br| {
            br.field_violations
                .into_iter()
                .map(|v| Violation::new(v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

/// The retry delay a status carries, if any.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

/// The range a `google.protobuf.Timestamp` may hold: 0001-01-01T00:00:00Z
/// to 9999-12-31T23:59:59Z. Every request timestamp is checked against it,
/// so arithmetic on microseconds since the epoch cannot overflow.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A violation for a timestamp outside that range or with bad nanos.
pub fn check_timestamp(field: &str, t: &wxpush_proto::Timestamp) -> Option<Violation> {
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds) {
        Some(Violation::new(
            field,
            format!(
                "seconds {} is outside 0001-01-01..9999-12-31 ({MIN_TIMESTAMP_SECONDS}..={MAX_TIMESTAMP_SECONDS})",
                t.seconds
            ),
        ))
    } else if !(0..1_000_000_000).contains(&t.nanos) {
        Some(Violation::new(
            field,
            format!("nanos {} is outside 0..=999999999", t.nanos),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_round_trip_through_details() {
        let mut v = Vec::new();
        require(&mut v, "openid", " ");
        max_chars(&mut v, "key", "订单订单订", 4);
        let status = check(v).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("openid: is required"));
        let got = field_violations(&status);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].field, "key");
        assert!(got[1].description.contains("5 characters"));
    }
}
