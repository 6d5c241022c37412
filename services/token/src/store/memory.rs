//! The single-process token store.

use super::{StoreError, StoredToken, TokenStore};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    tokens: HashMap<String, StoredToken>,
    locks: HashMap<String, (String, Instant)>,
    fetches: HashMap<(String, i64), u32>,
}

/// In-process state for `wxpush dev` and single-replica deployments.
#[derive(Default)]
pub struct MemoryTokenStore {
    state: Mutex<State>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, app_id: &str) -> Result<Option<StoredToken>, StoreError> {
        let now = crate::clock::now_ms();
        Ok(self.with(|s| {
            s.tokens
                .get(app_id)
                .filter(|t| t.expires_at_ms > now)
                .cloned()
        }))
    }

    async fn save(&self, app_id: &str, token: &StoredToken) -> Result<(), StoreError> {
        self.with(|s| s.tokens.insert(app_id.to_string(), token.clone()));
        Ok(())
    }

    async fn save_if_absent(&self, app_id: &str, token: &StoredToken) -> Result<bool, StoreError> {
        let now = crate::clock::now_ms();
        Ok(self.with(|s| {
            let absent = s.tokens.get(app_id).is_none_or(|t| t.expires_at_ms <= now);
            if absent {
                s.tokens.insert(app_id.to_string(), token.clone());
            }
            absent
        }))
    }

    async fn try_lock(&self, app_id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self.with(|s| match s.locks.get(app_id) {
            Some((_, until)) if *until > now => false,
            _ => {
                s.locks
                    .insert(app_id.to_string(), (owner.to_string(), now + ttl));
                true
            }
        }))
    }

    async fn unlock(&self, app_id: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|s| {
            if s.locks.get(app_id).is_some_and(|(o, _)| o == owner) {
                s.locks.remove(app_id);
            }
        });
        Ok(())
    }

    async fn fetches(&self, app_id: &str, day: i64) -> Result<u32, StoreError> {
        Ok(self.with(|s| {
            s.fetches
                .get(&(app_id.to_string(), day))
                .copied()
                .unwrap_or(0)
        }))
    }

    async fn count_fetch(&self, app_id: &str, day: i64) -> Result<u32, StoreError> {
        Ok(self.with(|s| {
            let n = s.fetches.entry((app_id.to_string(), day)).or_default();
            *n += 1;
            *n
        }))
    }
}
