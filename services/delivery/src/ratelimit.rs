//! Sends per second per app, shared by every delivery replica: GCRA (the
//! generic cell rate algorithm) keeps one "theoretical arrival time" per
//! app, so the check is one atomic step (a Lua script on Redis, using
//! Redis's clock so replicas agree).
//!
//! A replica takes permits from Redis a few at a time (a [`Lease`]: what
//! [`LEASE_WINDOW`] of the rate allows, at most a quarter of the burst and
//! [`MAX_LEASE`]) and spends them without asking again, so at a high rate a
//! send costs no Redis round trip of its own. Permits are counted when
//! taken and may be spent until [`LEASE_WINDOW`] after the request for
//! them left: in any period the app's sends stay within the rate over that
//! period plus [`LEASE_WINDOW`], plus the burst. Those left unspent when
//! the lease ends are handed back with the replica's next request, so a
//! replica sending slower than its leases does not use up the others'
//! share. At low rates a lease is one permit: every send asks Redis,
//! exactly as GCRA says.

use crate::config::RateLimitSettings;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a leased permit may wait to be spent.
pub const LEASE_WINDOW: Duration = Duration::from_millis(50);

/// The most permits one lease takes.
pub const MAX_LEASE: u32 = 64;

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

    /// How many permits a replica takes at once ([`Lease`]).
    /// A quarter of the burst at most: leases are taken ahead of the
    /// sends, so the burst is what lets several replicas hold one at once.
    fn lease_size(&self) -> u32 {
        let per_window = LEASE_WINDOW.as_micros() as i64 / self.interval_us;
        let burst = self.tolerance_us / self.interval_us + 1;
        per_window.min(burst / 4).clamp(1, i64::from(MAX_LEASE)) as u32
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

/// Hands back ARGV[4] unspent permits, then takes up to ARGV[3] at once
/// (KEYS[1]: the app's theoretical arrival time in µs; ARGV: interval and
/// tolerance in µs): as many as fit under the tolerance. Returns {permits
/// taken, µs to wait when none}.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local returned = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local tat = tonumber(stored or now) - returned * interval
if tat < now then tat = now end
local fits = math.floor((tolerance - (tat - now)) / interval) + 1
local n = 0
if fits >= 1 then n = math.min(tonumber(ARGV[3]), fits) end
local new_tat = tat + n * interval
if n > 0 or (stored and returned > 0) then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
if n == 0 then return {0, tat - tolerance - now} end
return {n, 0}
"#;

/// Permits of an app this replica took and has not spent.
struct Lease {
    left: u32,
    until: Instant,
}

/// The limiter shared by replicas: `{prefix}rate:{app}` holds the app's
/// theoretical arrival time in µs.
pub struct RedisRateLimiter {
    gcra: Option<Gcra>,
    conn: wxpush_redis::Connection,
    prefix: String,
    script: redis::Script,
    leases: Mutex<HashMap<String, Lease>>,
}

impl RedisRateLimiter {
    pub fn new(s: &RateLimitSettings, conn: wxpush_redis::Connection, prefix: &str) -> Self {
        Self {
            gcra: Gcra::new(s),
            conn,
            prefix: prefix.to_string(),
            script: redis::Script::new(GCRA_LUA),
            leases: Mutex::default(),
        }
    }

    /// Spends a leased permit of `app_id` (`Ok`), or says how many of an
    /// ended lease were left unspent, to hand back (`Err`).
    fn spend(&self, app_id: &str) -> Result<(), u32> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(app_id) {
            Some(l) if Instant::now() >= l.until => Err(std::mem::take(&mut l.left)),
            Some(l) if l.left > 0 => {
                l.left -= 1;
                Ok(())
            }
            _ => Err(0),
        }
    }

    /// Keeps `extra` permits asked for at `asked`: they may be spent until
    /// [`LEASE_WINDOW`] after it, and never keep older ones longer.
    fn keep(&self, app_id: &str, extra: u32, asked: Instant) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let until = asked + LEASE_WINDOW;
        let lease = leases
            .entry(app_id.to_string())
            .or_insert(Lease { left: 0, until });
        lease.until = if lease.left == 0 {
            until
        } else {
            lease.until.min(until)
        };
        lease.left += extra;
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, app_id: &str) -> Result<Option<Duration>, RateLimitError> {
        let Some(gcra) = self.gcra else {
            return Ok(None);
        };
        let size = gcra.lease_size();
        let unspent = if size > 1 {
            match self.spend(app_id) {
                Ok(()) => return Ok(None),
                Err(unspent) => unspent,
            }
        } else {
            0
        };
        let asked = Instant::now();
        // Permits handed back are lost if the call fails: the app is then
        // held back by at most one lease, for at most one window.
        let (taken, wait): (u32, i64) = self
            .script
            .key(format!("{}rate:{app_id}", self.prefix))
            .arg(gcra.interval_us)
            .arg(gcra.tolerance_us)
            .arg(size)
            .arg(unspent)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if taken == 0 {
            return Ok(Some(Duration::from_micros(wait.max(1) as u64)));
        }
        if taken > 1 {
            self.keep(app_id, taken - 1, asked);
        }
        Ok(None)
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

    #[test]
    fn a_lease_is_50_ms_of_the_rate_within_the_burst_and_the_cap() {
        let size = |per_second, burst| {
            Gcra::new(&RateLimitSettings { per_second, burst })
                .unwrap()
                .lease_size()
        };
        assert_eq!(size(20.0, 5), 1, "below 20/s every send asks Redis");
        assert_eq!(size(200.0, 50), 10);
        assert_eq!(size(200.0, 20), 5, "never more than a quarter of the burst");
        assert_eq!(size(1_000_000.0, 100_000), MAX_LEASE);
    }
}
