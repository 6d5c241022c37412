//! The one table that says what the sender does about each WeChat errcode
//! (`wechat-api.md`, "Error codes and what the sender does").

/// What a sender should do about an errcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrClass {
    /// errcode 0.
    Success,
    /// Retry with backoff; counts against WeChat's health (breaker).
    Transient,
    /// The access token is bad: invalidate it, fetch a new one, retry once.
    Token,
    /// A configuration problem of the app (appid, secret, IP allow-list, API
    /// not authorised): fail and alert, retrying will not help.
    Configuration,
    /// This message can never be delivered as it is.
    Permanent,
    /// A daily quota is used up: defer until it resets, do not fail.
    Quota,
    /// A bug on our side (e.g. missing token): fail loudly.
    Bug,
}

/// Classifies an errcode. Codes not in the table are permanent for the
/// message (recorded as received so a new code shows on the dashboard).
pub fn classify(errcode: i64) -> ErrClass {
    match errcode {
        0 => ErrClass::Success,
        -1 | 45011 => ErrClass::Transient,
        40001 | 40014 | 42001 => ErrClass::Token,
        40002 | 40013 | 40125 | 40164 | 48001 => ErrClass::Configuration,
        41001 => ErrClass::Bug,
        45009 | 45047 => ErrClass::Quota,
        _ => ErrClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_reference() {
        let cases = [
            (0, ErrClass::Success),
            (-1, ErrClass::Transient),
            (45011, ErrClass::Transient),
            (40001, ErrClass::Token),
            (40014, ErrClass::Token),
            (42001, ErrClass::Token),
            (41001, ErrClass::Bug),
            (40013, ErrClass::Configuration),
            (40125, ErrClass::Configuration),
            (40164, ErrClass::Configuration),
            (48001, ErrClass::Configuration),
            (40003, ErrClass::Permanent),
            (40037, ErrClass::Permanent),
            (43004, ErrClass::Permanent),
            (43101, ErrClass::Permanent),
            (47003, ErrClass::Permanent),
            (45009, ErrClass::Quota),
            (99999, ErrClass::Permanent),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code), class, "errcode {code}");
        }
    }
}

/// Time until WeChat's daily quotas reset (midnight, Beijing time), for the
/// retry delay of a 45009.
pub fn until_quota_reset() -> std::time::Duration {
    const DAY_MS: u128 = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let beijing = now + 8 * 3_600_000;
    std::time::Duration::from_millis((DAY_MS - beijing % DAY_MS) as u64)
}

#[cfg(test)]
mod reset_tests {
    #[test]
    fn reset_is_within_a_day() {
        let d = super::until_quota_reset();
        assert!(d > std::time::Duration::ZERO && d <= std::time::Duration::from_secs(86_400));
    }
}
