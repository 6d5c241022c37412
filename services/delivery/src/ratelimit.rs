//! Sends per second per app, shared by every delivery replica: GCRA (the
//! generic cell rate algorithm) keeps one "theoretical arrival time" per
//! app, so the check is one atomic step (a Lua script on Redis, using
//! Redis's clock so replicas agree).

use crate::config::RateLimitSettings;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The backend could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("rate limit backend unavailable: {0}")]
pub struct RateLimitError(#[from] pub redis::RedisError);

/// Admits or delays sends.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// `None` if a send for `app_id` may go now (and counts it), else how
    /// long to wait.
    async fn check(&self, app_id: &str) -> Result<Option<Duration>, RateLimitError>;
}

/// GCRA parameters in microseconds.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval_us: i64,
    tolerance_us: i64,
}

impl Gcra {
    fn new(s: &RateLimitSettings) -> Option<Self> {
        if s.per_second <= 0.0 {
            return None;
        }
        let interval_us = (1_000_000.0 / s.per_second).max(1.0) as i64;
        Some(Self {
            interval_us,
            tolerance_us: interval_us * i64::from(s.burst.max(1) - 1),
        })
    }

    /// (new theoretical arrival time, or the wait) for a request at `now`.
    fn step(&self, tat: i64, now: i64) -> Result<i64, i64> {
        let tat = tat.max(now);
        let allow_at = tat - self.tolerance_us;
        if now < allow_at {
            Err(allow_at - now)
        } else {
            Ok(tat + self.interval_us)
        }
    }
}

/// One process's limiter.
pub struct MemoryRateLimiter {
    gcra: Option<Gcra>,
    start: Instant,
    tat: Mutex<HashMap<String, i64>>,
}

impl MemoryRateLimiter {
    pub fn new(s: &RateLimitSettings) -> Self {
        Self {
            gcra: Gcra::new(s),
            start: Instant::now(),
            tat: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, app_id: &str) -> Result<Option<Duration>, RateLimitError> {
        let Some(gcra) = self.gcra else {
            return Ok(None);
        };
        let now = self.start.elapsed().as_micros() as i64;
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.entry(app_id.to_string()).or_insert(0);
        match gcra.step(*tat, now) {
            Ok(next) => {
                *tat = next;
                Ok(None)
            }
            Err(wait) => Ok(Some(Duration::from_micros(wait as u64))),
        }
    }
}

const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"#;

/// The limiter shared by replicas: `{prefix}rate:{app}` holds the app's
/// theoretical arrival time in µs.
pub struct RedisRateLimiter {
    gcra: Option<Gcra>,
    conn: wxpush_redis::Connection,
    prefix: String,
    script: redis::Script,
}

impl RedisRateLimiter {
    pub fn new(s: &RateLimitSettings, conn: wxpush_redis::Connection, prefix: &str) -> Self {
        Self {
            gcra: Gcra::new(s),
            conn,
            prefix: prefix.to_string(),
            script: redis::Script::new(GCRA_LUA),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, app_id: &str) -> Result<Option<Duration>, RateLimitError> {
        let Some(gcra) = self.gcra else {
            return Ok(None);
        };
        let wait: i64 = self
            .script
            .key(format!("{}rate:{app_id}", self.prefix))
            .arg(gcra.interval_us)
            .arg(gcra.tolerance_us)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_the_burst_then_the_rate() {
        let g = Gcra::new(&RateLimitSettings {
            per_second: 10.0,
            burst: 3,
        })
        .unwrap();
        let mut tat = 0;
        let mut admitted = 0;
        // 100 requests in the same instant: exactly the burst passes.
        for _ in 0..100 {
            if let Ok(next) = g.step(tat, 1_000_000) {
                tat = next;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3);
        // One interval later exactly one more.
        assert!(g.step(tat, 1_100_000).is_ok());
        assert!(g.step(tat, 1_099_000).is_err());
        assert!(
            Gcra::new(&RateLimitSettings {
                per_second: 0.0,
                burst: 1
            })
            .is_none()
        );
    }
}
