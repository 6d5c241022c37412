//! The sandbox clock: real time plus an offset the admin API can advance.
//!
//! Every expiry, grace period, dedup window and "day" is computed from this clock so tests can
//! exercise expiry without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Beijing time is UTC+8; WeChat's daily quotas reset at Beijing midnight.
const BEIJING_OFFSET_MS: u64 = 8 * 3600 * 1000;
const DAY_MS: u64 = 86_400 * 1000;

/// Real time plus an adjustable offset, shared by every part of the sandbox.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicU64,
}

impl Clock {
    /// Milliseconds since the Unix epoch, on the sandbox clock.
    pub fn now_ms(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        real + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Moves the sandbox clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.offset_ms
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Puts the sandbox clock back to real time.
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::SeqCst);
    }
}

/// The Beijing calendar day number of a sandbox timestamp, used for daily limits.
pub fn beijing_day(now_ms: u64) -> u64 {
    (now_ms + BEIJING_OFFSET_MS) / DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_and_reset_restores() {
        let c = Clock::default();
        let before = c.now_ms();
        c.advance(3600);
        assert!(c.now_ms() >= before + 3_600_000);
        c.reset();
        assert!(c.now_ms() < before + 3_600_000);
    }

    #[test]
    fn beijing_day_turns_at_utc_16() {
        // 1970-01-01 15:59:59 UTC is still day 0 in Beijing; 16:00 UTC is day 1.
        assert_eq!(beijing_day(15 * 3600 * 1000 + 59 * 60 * 1000), 0);
        assert_eq!(beijing_day(16 * 3600 * 1000), 1);
    }
}
