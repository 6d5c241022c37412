//! `GetStats`: checking the request and counting records per time bucket and
//! group. Buckets are aligned to multiples of the width since the epoch (as
//! Grafana/Prometheus do), so the same bucket has the same start in every
//! query.

use crate::filter::{check_filter, check_range, micros};
use std::collections::BTreeMap;
use wxpush_proto::v1::{
    DeliveryStatus, GetStatsRequest, LogFilter, LogRecord, StatsGroupBy, StatsPoint, StatsSeries,
};
use wxpush_server::status::Violation;

/// Most buckets one `GetStats` may ask for (range / bucket width).
pub const MAX_BUCKETS: i64 = 1000;
/// Bucket width when the request leaves it 0.
pub const DEFAULT_BUCKET_SECONDS: u32 = 60;

/// A checked `GetStats` request; times in µs since the epoch.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// Counted records match this; its time range is `[start, end)`.
    pub filter: LogFilter,
    pub start: i64,
    pub end: i64,
    pub bucket: i64,
    pub group_by: StatsGroupBy,
}

/// Checks a `GetStats` request; UNSPECIFIED `group_by` means by status.
pub fn check_stats(req: GetStatsRequest) -> Result<StatsQuery, Vec<Violation>> {
    let mut v = Vec::new();
    let mut filter = req.filter.unwrap_or_default();
    check_filter(&filter, "filter.", &mut v);
    if filter.time_range.is_some() {
        v.push(Violation::new(
            "filter.time_range",
            "is not used by GetStats; set time_range",
        ));
    }
    let range = req.time_range.unwrap_or_default();
    check_range(&range, "time_range", &mut v);
    let (start, end) = (range.start, range.end);
    if start.is_none() {
        v.push(Violation::new("time_range.start", "is required"));
    }
    if end.is_none() {
        v.push(Violation::new("time_range.end", "is required"));
    }
    let (s, e) = (micros(start.as_ref()), micros(end.as_ref()));
    if start.is_some() && end.is_some() && s >= e {
        v.push(Violation::new("time_range", "start must be before end"));
    }
    // Without `bucket_seconds`, the finest usual width that fits the range
    // in MAX_BUCKETS buckets.
    let bucket_seconds = match req.bucket_seconds {
        0 if s < e => fitting_bucket(s, e),
        0 => DEFAULT_BUCKET_SECONDS,
        n => n,
    };
    let bucket = i64::from(bucket_seconds) * 1_000_000;
    if s < e && v.is_empty() {
        let n = bucket_count(s, e, bucket);
        if n > i128::from(MAX_BUCKETS) {
            v.push(Violation::new(
                "bucket_seconds",
                format!(
                    "{bucket_seconds} s gives {n} buckets, at most {MAX_BUCKETS} allowed (leave it 0 to have one picked)"
                ),
            ));
        }
    }
    let group_by = match StatsGroupBy::try_from(req.group_by) {
        Ok(StatsGroupBy::Unspecified) => StatsGroupBy::Status,
        Ok(g) => g,
        Err(_) => {
            v.push(Violation::new(
                "group_by",
                format!("unknown group {}", req.group_by),
            ));
            StatsGroupBy::Status
        }
    };
    if !v.is_empty() {
        return Err(v);
    }
    filter.time_range = Some(wxpush_proto::v1::TimeRange { start, end });
    Ok(StatsQuery {
        filter,
        start: s,
        end: e,
        bucket,
        group_by,
    })
}

/// Buckets of `bucket` µs that cover `[s, e)`, aligned to the epoch (in
/// i128: no range of valid timestamps can overflow it).
fn bucket_count(s: i64, e: i64, bucket: i64) -> i128 {
    (i128::from(e - 1).div_euclid(i128::from(bucket))
        - i128::from(s).div_euclid(i128::from(bucket)))
        + 1
}

/// Bucket widths picked when a request names none (seconds): a minute up
/// to a week.
const USUAL_BUCKETS: [u32; 12] = [
    60, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400, 604_800,
];

/// The finest usual bucket that covers `[s, e)` (µs) in at most
/// [`MAX_BUCKETS`]; past a week's, whole weeks.
fn fitting_bucket(s: i64, e: i64) -> u32 {
    for secs in USUAL_BUCKETS {
        if bucket_count(s, e, i64::from(secs) * 1_000_000) <= i128::from(MAX_BUCKETS) {
            return secs;
        }
    }
    let week = 604_800_i128;
    let weeks = (i128::from(e - s) / 1_000_000).div_euclid(week * i128::from(MAX_BUCKETS - 1)) + 1;
    u32::try_from(weeks * week).unwrap_or(u32::MAX)
}

/// Start of the bucket holding `t` (floor, also for times before 1970).
pub fn align(t: i64, bucket: i64) -> i64 {
    t.div_euclid(bucket) * bucket
}

/// A status as a group name: `SENT`, `FAILED`, ...
pub fn status_name(status: i32) -> String {
    DeliveryStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("DELIVERY_STATUS_")
                .to_string()
        })
        .unwrap_or_else(|_| status.to_string())
}

/// The group a record counts in.
pub fn group_of(group_by: StatsGroupBy, r: &LogRecord) -> String {
    match group_by {
        StatsGroupBy::Errcode => r.errcode.to_string(),
        StatsGroupBy::Template => r.template_key.clone(),
        StatsGroupBy::Status | StatsGroupBy::Unspecified => status_name(r.status),
    }
}

/// Counts per group and bucket; the result lists groups by name and only
/// non-empty buckets, oldest first.
#[derive(Debug, Default)]
pub struct StatsCounter {
    counts: BTreeMap<String, BTreeMap<i64, u64>>,
}

impl StatsCounter {
    /// Adds `n` to `group` in the bucket starting at `bucket_start` (µs).
    pub fn add(&mut self, group: String, bucket_start: i64, n: u64) {
        if n > 0 {
            *self
                .counts
                .entry(group)
                .or_default()
                .entry(bucket_start)
                .or_default() += n;
        }
    }

    /// Counts one record (its accepted_at decides the bucket).
    pub fn add_record(&mut self, q: &StatsQuery, r: &LogRecord) {
        let t = micros(r.accepted_at.as_ref());
        self.add(group_of(q.group_by, r), align(t, q.bucket), 1);
    }

    pub fn into_series(self) -> Vec<StatsSeries> {
        self.counts
            .into_iter()
            .map(|(group, points)| StatsSeries {
                group,
                points: points
                    .into_iter()
                    .map(|(t, count)| StatsPoint {
                        bucket_start: Some(wxpush_proto::timestamp_from_micros(t)),
                        count,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_proto::Timestamp;
    use wxpush_proto::v1::TimeRange;

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn fields(r: Result<StatsQuery, Vec<Violation>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn bad_stats_requests_name_their_field() {
        assert_eq!(
            fields(check_stats(GetStatsRequest::default())),
            ["time_range.start", "time_range.end"]
        );
        let too_many = GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(0),
                end: ts(86_400),
            }),
            bucket_seconds: 1,
            ..Default::default()
        };
        assert_eq!(fields(check_stats(too_many)), ["bucket_seconds"]);
        let inverted = GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(10),
                end: ts(5),
            }),
            ..Default::default()
        };
        assert_eq!(fields(check_stats(inverted)), ["time_range"]);
    }

    #[test]
    fn without_bucket_seconds_a_bucket_that_fits_is_picked() {
        let over = |secs: i64| GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(1_764_000_000),
                end: ts(1_764_000_000 + secs),
            }),
            ..Default::default()
        };
        let bucket = |secs| check_stats(over(secs)).unwrap().bucket / 1_000_000;
        assert_eq!(bucket(3_600), 60, "an hour by the minute");
        assert_eq!(bucket(86_400), 300, "a day: 288 buckets of 5 minutes");
        assert_eq!(bucket(30 * 86_400), 3_600);
        assert_eq!(bucket(365 * 86_400), 43_200);
        // The widest valid range still gets an answer, not a refusal.
        let widest = GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(wxpush_server::status::MIN_TIMESTAMP_SECONDS),
                end: ts(wxpush_server::status::MAX_TIMESTAMP_SECONDS),
            }),
            ..Default::default()
        };
        let q = check_stats(widest).unwrap();
        assert!(bucket_count(q.start, q.end, q.bucket) <= i128::from(MAX_BUCKETS));
    }

    #[test]
    fn an_extreme_range_is_refused_not_counted() {
        // Issue 19, item 1: this range with 1 s buckets once wrapped the
        // bucket count in release builds and the Redis walk asked for 73 TB.
        let extreme = GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(i64::MIN),
                end: ts(i64::MAX),
            }),
            bucket_seconds: 1,
            ..Default::default()
        };
        assert_eq!(
            fields(check_stats(extreme)),
            ["time_range.start", "time_range.end"]
        );
        let widest = GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(wxpush_server::status::MIN_TIMESTAMP_SECONDS),
                end: ts(wxpush_server::status::MAX_TIMESTAMP_SECONDS),
            }),
            bucket_seconds: 1,
            ..Default::default()
        };
        assert_eq!(fields(check_stats(widest)), ["bucket_seconds"]);
        let bad_nanos = GetStatsRequest {
            time_range: Some(TimeRange {
                start: Some(Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                end: ts(60),
            }),
            ..Default::default()
        };
        assert_eq!(fields(check_stats(bad_nanos)), ["time_range.start"]);
    }

    #[test]
    fn buckets_align_to_the_epoch() {
        assert_eq!(align(125_000_000, 60_000_000), 120_000_000);
        assert_eq!(align(-1, 60_000_000), -60_000_000);
        assert_eq!(status_name(DeliveryStatus::Sent as i32), "SENT");
    }
}
