//! Quiet hours: a daily window (e.g. 22:00–08:00 in the template's time
//! zone) during which async messages wait, deferred to the window's end.

use wxpush_proto::v1::QuietHours;

/// UTC offset in seconds of a supported time zone: fixed-offset zones
/// (China, and the others listed) and `±HH:MM`. Zones with daylight saving
/// time are not supported rather than answered wrongly half the year.
pub fn offset_secs(zone: &str) -> Option<i32> {
    let zone = zone.trim();
    let named = match zone {
        "" | "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Hong_Kong" | "Asia/Macau"
        | "Asia/Taipei" | "Asia/Singapore" | "PRC" => Some(8 * 3600),
        "Asia/Tokyo" | "Asia/Seoul" => Some(9 * 3600),
        "UTC" | "Etc/UTC" | "Z" => Some(0),
        _ => None,
    };
    named.or_else(|| {
        let (sign, rest) = match zone.as_bytes().first()? {
            b'+' => (1, &zone[1..]),
            b'-' => (-1, &zone[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
    })
}

fn minutes(hhmm: &str) -> Option<i64> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// When the quiet window containing `now_ms` ends (ms), or `None` when
/// `now_ms` is outside it. An error names what is malformed.
pub fn quiet_until(q: &QuietHours, now_ms: i64) -> Result<Option<i64>, String> {
    if q.start.is_empty() && q.end.is_empty() {
        return Ok(None);
    }
    let start =
        minutes(&q.start).ok_or_else(|| format!("quiet_hours.start {:?} is not HH:MM", q.start))?;
    let end = minutes(&q.end).ok_or_else(|| format!("quiet_hours.end {:?} is not HH:MM", q.end))?;
    let offset = offset_secs(&q.time_zone)
        .ok_or_else(|| format!("quiet_hours.time_zone {:?} is not supported", q.time_zone))?;
    if start == end {
        return Ok(None);
    }
    const DAY_MS: i64 = 86_400_000;
    let local = now_ms + i64::from(offset) * 1000;
    let midnight = local - local.rem_euclid(DAY_MS);
    let minute = local.rem_euclid(DAY_MS) / 60_000;
    let end_today = midnight + end * 60_000;
    let until_local = if start < end {
        (start..end).contains(&minute).then_some(end_today)
    } else if minute >= start {
        Some(end_today + DAY_MS)
    } else if minute < end {
        Some(end_today)
    } else {
        None
    };
    Ok(until_local.map(|t| t - i64::from(offset) * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            time_zone: "Asia/Shanghai".into(),
        }
    }

    // 2026-11-23 00:00 Beijing = 2026-11-22T16:00:00Z.
    const MIDNIGHT_BJ: i64 = 1_795_363_200_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_window_over_midnight_defers_to_its_end() {
        let night = q("22:00", "08:00");
        assert_eq!(
            quiet_until(&night, MIDNIGHT_BJ + 23 * HOUR).unwrap(),
            Some(MIDNIGHT_BJ + 32 * HOUR)
        );
        assert_eq!(
            quiet_until(&night, MIDNIGHT_BJ + 3 * HOUR).unwrap(),
            Some(MIDNIGHT_BJ + 8 * HOUR)
        );
        assert_eq!(quiet_until(&night, MIDNIGHT_BJ + 12 * HOUR).unwrap(), None);
        let lunch = q("12:00", "13:30");
        assert_eq!(
            quiet_until(&lunch, MIDNIGHT_BJ + 12 * HOUR).unwrap(),
            Some(MIDNIGHT_BJ + 13 * HOUR + HOUR / 2)
        );
        assert_eq!(quiet_until(&lunch, MIDNIGHT_BJ + 14 * HOUR).unwrap(), None);
    }

    #[test]
    fn malformed_windows_and_zones_are_named() {
        assert!(
            quiet_until(&q("25:00", "08:00"), 0)
                .unwrap_err()
                .contains("start")
        );
        let mut bad_zone = q("22:00", "08:00");
        bad_zone.time_zone = "America/New_York".into();
        assert!(quiet_until(&bad_zone, 0).unwrap_err().contains("time_zone"));
        assert_eq!(offset_secs("-05:30"), Some(-(5 * 3600 + 1800)));
        assert_eq!(quiet_until(&QuietHours::default(), 0).unwrap(), None);
    }
}
