//! Query checks and matching: a `LogFilter` is checked once (each problem
//! naming its field) and then matches records with every set field ANDed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wxpush_proto::Timestamp;
use wxpush_proto::v1::{DeliveryStatus, LogFilter, LogRecord, QueryLogsRequest};
use wxpush_server::status::{Violation, check_timestamp, no_control};
use wxpush_server::trace_context::is_trace_id;

/// Page size when the request leaves it 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page a query may ask for.
pub const MAX_PAGE_SIZE: usize = 500;

/// Position after the last record of a page: (accepted_at in µs, message id).
pub type Cursor = (i64, String);

/// A checked query.
#[derive(Debug, Clone)]
pub struct Query {
    pub filter: LogFilter,
    pub page_size: usize,
    pub after: Option<Cursor>,
}

/// Microseconds since the epoch; the store's sort key.
pub fn micros(t: Option<&Timestamp>) -> i64 {
    // Saturating: a timestamp from a request may be anything.
    t.map_or(0, |t| {
        t.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(t.nanos) / 1_000)
    })
}

/// Encodes a cursor as an opaque page token: base64url of
/// `v1.{accepted_at µs}.{message_id}`. A position, not an offset, so records
/// arriving meanwhile (newer, sorting before it) never shift later pages.
pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1.{}.{}", c.0, c.1))
}

pub fn decode_cursor(token: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let rest = raw.strip_prefix("v1.")?;
    let (micros, id) = rest.split_once('.')?;
    if id.is_empty() {
        return None;
    }
    Some((micros.parse().ok()?, id.to_string()))
}

/// The part of the (accepted_at, message id) order a query may return:
/// from `lower` µs (inclusive) up to `upper` (exclusive; `None` = no bound),
/// from the filter's time range and the page cursor.
pub fn bounds(filter: &LogFilter, after: Option<&Cursor>) -> (i64, Option<Cursor>) {
    let range = filter.time_range.as_ref();
    let lower = range
        .and_then(|r| r.start.as_ref())
        .map_or(i64::MIN, |s| micros(Some(s)));
    let end = range
        .and_then(|r| r.end.as_ref())
        .map(|e| (micros(Some(e)), String::new()));
    let upper = match (end, after) {
        (Some(e), Some(a)) => Some(e.min(a.clone())),
        (e, a) => e.or_else(|| a.cloned()),
    };
    (lower, upper)
}

/// Checks a `QueryLogs` request.
pub fn check_query(req: QueryLogsRequest) -> Result<Query, Vec<Violation>> {
    let mut v = Vec::new();
    let filter = req.filter.unwrap_or_default();
    check_filter(&filter, "filter.", &mut v);
    // Above the maximum is clamped, not refused (AIP-158).
    let page_size = match req.page_size as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let after = if req.page_token.is_empty() {
        None
    } else {
        let c = decode_cursor(&req.page_token);
        if c.is_none() {
            v.push(Violation::new(
                "page_token",
                "is not a token returned by QueryLogs",
            ));
        }
        c
    };
    if v.is_empty() {
        Ok(Query {
            filter,
            page_size,
            after,
        })
    } else {
        Err(v)
    }
}

/// Checks a filter's fields; `prefix` is the path of the filter in its request.
pub fn check_filter(f: &LogFilter, prefix: &str, v: &mut Vec<Violation>) {
    for (name, value) in [
        ("message_id", &f.message_id),
        ("openid", &f.openid),
        ("app_id", &f.app_id),
        ("template_key", &f.template_key),
        ("caller", &f.caller),
    ] {
        no_control(v, &format!("{prefix}{name}"), value);
    }
    if !f.trace_id.is_empty() && !is_trace_id(&f.trace_id) {
        v.push(Violation::new(
            format!("{prefix}trace_id"),
            "must be 32 hex digits",
        ));
    }
    if DeliveryStatus::try_from(f.status).is_err() {
        v.push(Violation::new(
            format!("{prefix}status"),
            format!("unknown status {}", f.status),
        ));
    }
    if let Some(r) = &f.time_range {
        check_range(r, &format!("{prefix}time_range"), v);
    }
    if let Some(r) = &f.time_range
        && r.start.is_some()
        && r.end.is_some()
        && micros(r.start.as_ref()) >= micros(r.end.as_ref())
    {
        v.push(Violation::new(
            format!("{prefix}time_range"),
            "start must be before end",
        ));
    }
}

/// Each bound of a time range must be a valid timestamp.
pub fn check_range(r: &wxpush_proto::v1::TimeRange, field: &str, v: &mut Vec<Violation>) {
    for (name, t) in [("start", &r.start), ("end", &r.end)] {
        if let Some(t) = t
            && let Some(bad) = check_timestamp(&format!("{field}.{name}"), t)
        {
            v.push(bad);
        }
    }
}

/// Whether a record matches every set field of the filter.
pub fn matches(f: &LogFilter, r: &LogRecord) -> bool {
    let eq = |want: &str, have: &str| want.is_empty() || want == have;
    let in_range = f.time_range.as_ref().is_none_or(|range| {
        let t = micros(r.accepted_at.as_ref());
        range.start.as_ref().is_none_or(|s| t >= micros(Some(s)))
            && range.end.as_ref().is_none_or(|e| t < micros(Some(e)))
    });
    eq(&f.message_id, &r.message_id)
        && eq(&f.trace_id.to_ascii_lowercase(), &r.trace_id)
        && eq(&f.openid, &r.openid)
        && eq(&f.app_id, &r.app_id)
        && eq(&f.template_key, &r.template_key)
        && eq(&f.template_id, &r.template_id)
        && eq(&f.caller, &r.caller)
        && (f.status == 0 || f.status == r.status)
        && f.errcode.is_none_or(|e| e == r.errcode)
        && in_range
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_proto::v1::TimeRange;

    fn fields(r: Result<Query, Vec<Violation>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn bad_queries_name_their_field() {
        let big = QueryLogsRequest {
            page_size: 10_000,
            ..Default::default()
        };
        assert_eq!(
            check_query(big).unwrap().page_size,
            MAX_PAGE_SIZE,
            "clamped, not refused"
        );
        let token = QueryLogsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        };
        assert_eq!(fields(check_query(token)), ["page_token"]);
        let inverted = QueryLogsRequest {
            filter: Some(LogFilter {
                time_range: Some(TimeRange {
                    start: Some(Timestamp {
                        seconds: 20,
                        nanos: 0,
                    }),
                    end: Some(Timestamp {
                        seconds: 10,
                        nanos: 0,
                    }),
                }),
                trace_id: "xyz".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            fields(check_query(inverted)),
            ["filter.trace_id", "filter.time_range"]
        );
    }

    #[test]
    fn cursor_round_trips() {
        let c = (1_700_000_000_000_000, "0190abc".to_string());
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
    }

    #[test]
    fn extreme_timestamps_saturate_instead_of_overflowing() {
        let at = |seconds| {
            micros(Some(&Timestamp {
                seconds,
                nanos: 999_999_999,
            }))
        };
        assert_eq!(at(i64::MAX), i64::MAX);
        assert_eq!(at(i64::MIN), i64::MIN + 999_999);
        assert_eq!(at(1), 1_999_999);
    }
}
