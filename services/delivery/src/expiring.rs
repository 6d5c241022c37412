//! A map whose entries expire and whose size is capped: the in-memory
//! backends' idempotency records and live statuses keep the same windows
//! as their Redis counterparts (key TTLs) and never grow without bound.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Entries expire `ttl` after their last insert; past `cap` the oldest go.
pub struct ExpiringMap<V> {
    entries: HashMap<String, (V, Instant)>,
    /// Insertion order with each insert's expiry (an entry inserted again
    /// has a stale earlier record here, skipped when it comes up).
    order: VecDeque<(Instant, String)>,
    cap: usize,
}

impl<V> ExpiringMap<V> {
    /// A map keeping at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The live entry for `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v)
    }

    /// Stores `value` for `ttl`, then drops what expired or overflows.
    pub fn insert(&mut self, key: String, value: V, ttl: Duration) {
        let expires = Instant::now() + ttl;
        self.order.push_back((expires, key.clone()));
        self.entries.insert(key, (value, expires));
        self.prune();
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn prune(&mut self) {
        if self.order.len() > 2 * self.cap {
            // Mostly stale records of entries inserted again: rebuild.
            let mut live: Vec<(Instant, String)> = self
                .entries
                .iter()
                .map(|(k, (_, e))| (*e, k.clone()))
                .collect();
            live.sort();
            self.order = live.into();
        }
        let now = Instant::now();
        while let Some((expires, key)) = self.order.front() {
            let current = self.entries.get(key).is_some_and(|(_, e)| e == expires);
            if current && *expires > now && self.entries.len() <= self.cap {
                break;
            }
            if current {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_go_past_the_cap() {
        let mut m = ExpiringMap::new(3);
        m.insert("gone".into(), 0, Duration::ZERO);
        assert_eq!(m.get("gone"), None);
        for i in 1..=5 {
            m.insert(format!("k{i}"), i, Duration::from_secs(60));
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("k1"), None);
        assert_eq!(m.get("k5"), Some(&5));
        // Re-inserting refreshes an entry instead of evicting it for its old record.
        m.insert("k3".into(), 33, Duration::from_secs(60));
        m.insert("k6".into(), 6, Duration::from_secs(60));
        assert_eq!(m.get("k3"), Some(&33));
        assert_eq!(m.get("k4"), None);
        for i in 0..10_000 {
            m.insert("same".into(), i, Duration::from_secs(60));
        }
        assert!(m.order.len() <= 2 * 3 + 1, "{}", m.order.len());
        // Updating one key often evicts nobody else.
        assert_eq!(m.get("k6"), Some(&6));
        assert_eq!(m.len(), 3);
    }
}
