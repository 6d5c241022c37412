//! What delivery does after each WeChat answer: the errcode classes of
//! `wxpush_wechat::classify` (the one table) turned into actions, and the
//! retry backoff.

use crate::config::RetrySettings;
use rand::Rng;
use std::time::Duration;
use wxpush_wechat::{ErrClass, WechatError, classify};

/// The next step for a message after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// WeChat took it.
    Done,
    /// WeChat is in trouble (or unreachable): retry after a backoff; counts
    /// against the breaker.
    Retry,
    /// The token was bad: invalidate it and retry once at once.
    RefreshToken,
    /// The app's daily quota is used up: wait until it resets.
    Defer,
    /// This message can never go through as it is.
    Fail,
}

impl Action {
    /// The action for an attempt's outcome.
    pub fn after(outcome: &Result<String, WechatError>) -> Self {
        match outcome {
            Ok(_) => Action::Done,
            // Transport failures, timeouts, 5xx and undecodable answers carry
            // no errcode of WeChat's own: WeChat is not answering properly.
            Err(WechatError::Api { errcode, .. }) => match classify(*errcode) {
                ErrClass::Success => Action::Done,
                ErrClass::Transient => Action::Retry,
                ErrClass::Token => Action::RefreshToken,
                ErrClass::Quota => Action::Defer,
                ErrClass::Permanent | ErrClass::Configuration | ErrClass::Bug => Action::Fail,
            },
            Err(_) => Action::Retry,
        }
    }

    /// Whether the outcome says WeChat itself is unhealthy (the breaker
    /// counts these; a user who does not follow is not WeChat being down).
    pub fn counts_against_wechat(self) -> bool {
        self == Action::Retry
    }
}

/// Whether a failed call to the template or token service may succeed if
/// repeated (the service is down, slow or overloaded) rather than never
/// (the template was deleted, the app is unknown, the request is invalid).
pub fn upstream_is_transient(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable | DeadlineExceeded | Unknown | ResourceExhausted | Internal | Aborted
    )
}

/// Full-jitter backoff before the attempt after `attempt` (1-based).
pub fn backoff(settings: &RetrySettings, attempt: u32) -> Duration {
    let cap = settings
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(settings.backoff_max_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(errcode: i64) -> Result<String, WechatError> {
        Err(WechatError::Api {
            errcode,
            errmsg: String::new(),
        })
    }

    #[test]
    fn every_class_has_its_action() {
        assert_eq!(Action::after(&Ok("1".into())), Action::Done);
        assert_eq!(Action::after(&api(-1)), Action::Retry);
        assert_eq!(Action::after(&api(45011)), Action::Retry);
        assert_eq!(
            Action::after(&Err(WechatError::HttpStatus(503))),
            Action::Retry
        );
        assert_eq!(Action::after(&Err(WechatError::Timeout)), Action::Retry);
        assert_eq!(
            Action::after(&Err(WechatError::Transport("refused".into()))),
            Action::Retry
        );
        for code in [40001, 40014, 42001] {
            assert_eq!(Action::after(&api(code)), Action::RefreshToken);
        }
        assert_eq!(Action::after(&api(45009)), Action::Defer);
        for code in [43004, 43101, 40003, 40037, 47003, 40164, 41001, 12345] {
            assert_eq!(Action::after(&api(code)), Action::Fail, "{code}");
        }
        assert!(Action::Retry.counts_against_wechat());
        assert!(!Action::Fail.counts_against_wechat());
    }

    #[test]
    fn backoff_stays_under_its_growing_cap() {
        let s = RetrySettings {
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(backoff(&s, 1) <= Duration::from_millis(100));
            assert!(backoff(&s, 3) <= Duration::from_millis(400));
            assert!(backoff(&s, 30) <= Duration::from_millis(1_000));
        }
    }
}
