//! Wall-clock helpers: ms timestamps as stored, and the Beijing day on which
//! WeChat's daily limits reset.

use chrono::{Datelike, FixedOffset, TimeZone};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A stored ms timestamp as a `SystemTime`.
pub fn to_system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Days since the Common Era in Beijing time (UTC+8) for a ms timestamp.
pub fn beijing_day(ms: i64) -> i64 {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    beijing
        .timestamp_millis_opt(ms)
        .single()
        .map_or(0, |d| i64::from(d.date_naive().num_days_from_ce()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_day_turns_at_16_utc() {
        // 2026-11-22T15:59:59Z is 23:59:59 in Beijing; one second later is the next day.
        let before = 1_795_363_199_000;
        assert_eq!(beijing_day(before + 1_000), beijing_day(before) + 1);
        assert_eq!(beijing_day(before - 3_600_000), beijing_day(before));
    }
}
