//! The delivery service's short-lived copies of what other services own: an
//! app's access token and a template's render plan. With them a `Send`
//! needs no call to the token or template service in the common case; the
//! owners stay the owners:
//! - a token is kept [`TOKEN_TTL`] at most and never past
//!   `expires_at - TOKEN_MARGIN`; one WeChat rejects is replaced through
//!   the token service at once (its compare-and-swap invalidation);
//! - a render plan is kept [`PLAN_TTL`]: a changed or deleted template
//!   reaches sends within that second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Longest a token copy is used.
pub const TOKEN_TTL: Duration = Duration::from_secs(30);
/// A token copy is dropped this long before WeChat's expiry.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Longest a render plan copy is used.
pub const PLAN_TTL: Duration = Duration::from_secs(1);
/// Most entries of either kind (apps, template keys).
const MAX_ENTRIES: usize = 10_000;

/// Copies by key, each until its own instant; cheap to clone.
pub struct Copies<V>(Arc<Mutex<HashMap<String, (V, Instant)>>>);

impl<V> Clone for Copies<V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<V> Default for Copies<V> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<V: Clone> Copies<V> {
    /// The copy for `key` while it is fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` for `key` until `until`.
    pub fn put(&self, key: &str, value: V, until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key.to_string(), (value, until));
    }

    /// Forgets the copy for `key` (its owner said it is no longer good).
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Until when a token expiring at `expires_at` may be used from a copy.
pub fn token_until(expires_at: Option<SystemTime>) -> Instant {
    let now = Instant::now();
    let left = expires_at
        .and_then(|e| e.duration_since(SystemTime::now()).ok())
        .map_or(Duration::ZERO, |d| d.saturating_sub(TOKEN_MARGIN));
    now + left.min(TOKEN_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_expire_and_can_be_forgotten() {
        let c: Copies<u32> = Copies::default();
        c.put("a", 1, Instant::now() + Duration::from_secs(5));
        c.put("b", 2, Instant::now());
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        c.forget("a");
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn a_token_copy_lives_short_and_never_into_the_margin() {
        let now = Instant::now();
        let far = token_until(Some(SystemTime::now() + Duration::from_secs(7200)));
        assert!(far <= now + TOKEN_TTL + Duration::from_millis(50));
        let soon = token_until(Some(SystemTime::now() + Duration::from_secs(30)));
        assert!(soon <= Instant::now(), "inside the margin: not kept");
        assert!(token_until(None) <= Instant::now());
    }
}
