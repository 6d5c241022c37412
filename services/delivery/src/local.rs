//! The delivery service's short-lived copies of what other services own: an
//! app's access token and a template's render plan. With them a `Send`
//! needs no call to the token or template service in the common case; the
//! owners stay the owners:
//! - a token is kept [`TOKEN_TTL`] at most and never past
//!   `expires_at - TOKEN_MARGIN`; one WeChat rejects is replaced through
//!   the token service at once (its compare-and-swap invalidation);
//! - a render plan is kept [`PLAN_TTL`]: a changed or deleted template
//!   reaches sends within that second. On the postgres backend the
//!   template's change notice (`LISTEN wxpush_templates`) drops it at
//!   once, so a copy is kept [`NOTIFIED_PLAN_TTL`] there.

use crate::expiring::ExpiringMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Longest a token copy is used.
pub const TOKEN_TTL: Duration = Duration::from_secs(30);
/// A token copy is dropped this long before WeChat's expiry.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Longest a render plan copy is used.
pub const PLAN_TTL: Duration = Duration::from_secs(1);
/// Longest a render plan copy is used where every change is notified (the
/// postgres backend): a bound for while the notices' connection is down
/// (when it is back, every copy is dropped).
pub const NOTIFIED_PLAN_TTL: Duration = Duration::from_secs(10);
/// Most entries of either kind (apps, template keys).
const MAX_ENTRIES: usize = 10_000;

/// Copies by key, each for its own time ([`ExpiringMap`], shared by the
/// clones).
pub struct Copies<V>(Arc<Mutex<ExpiringMap<V>>>);

impl<V> Clone for Copies<V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<V> Default for Copies<V> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(ExpiringMap::new(MAX_ENTRIES))))
    }
}

impl<V: Clone> Copies<V> {
    fn map(&self) -> std::sync::MutexGuard<'_, ExpiringMap<V>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The copy for `key` while it is fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        self.map().get(key).cloned()
    }

    /// Keeps `value` for `key` for `ttl`.
    pub fn put(&self, key: &str, value: V, ttl: Duration) {
        self.map().insert(key.to_string(), value, ttl);
    }

    /// Forgets the copy for `key` (its owner said it is no longer good).
    pub fn forget(&self, key: &str) {
        self.map().remove(key);
    }

    /// Forgets every copy (the owner's notices may have been missed).
    pub fn forget_all(&self) {
        self.map().clear();
    }
}

/// How long a token expiring at `expires_at` may be used from a copy.
pub fn token_ttl(expires_at: Option<SystemTime>) -> Duration {
    let left = expires_at
        .and_then(|e| e.duration_since(SystemTime::now()).ok())
        .map_or(Duration::ZERO, |d| d.saturating_sub(TOKEN_MARGIN));
    left.min(TOKEN_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_expire_and_can_be_forgotten() {
        let c: Copies<u32> = Copies::default();
        c.put("a", 1, Duration::from_secs(5));
        c.put("b", 2, Duration::ZERO);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        c.forget("a");
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn a_token_copy_lives_short_and_never_into_the_margin() {
        let far = token_ttl(Some(SystemTime::now() + Duration::from_secs(7200)));
        assert_eq!(far, TOKEN_TTL);
        let soon = token_ttl(Some(SystemTime::now() + Duration::from_secs(30)));
        assert_eq!(soon, Duration::ZERO, "inside the margin: not kept");
        assert_eq!(token_ttl(None), Duration::ZERO);
    }
}
