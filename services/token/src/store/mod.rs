//! Where tokens live between replicas: the token and its expiry per app, the
//! refresh lock, and daily fetch counters. `memory` serves one process;
//! `redis` is shared by every replica of the token service.

mod memory;
mod redis;

pub use memory::MemoryTokenStore;
pub use redis::RedisTokenStore;

use std::sync::Arc;
use std::time::Duration;
use wxpush_server::config::{BackendKind, BackendSettings};

/// The store the settings name.
pub async fn connect(backend: &BackendSettings) -> Result<Arc<dyn TokenStore>, StoreError> {
    Ok(match backend.kind {
        BackendKind::Memory => Arc::new(MemoryTokenStore::new()),
        BackendKind::Redis | BackendKind::Postgres => {
            Arc::new(RedisTokenStore::connect(&backend.redis_url, &backend.key_prefix).await?)
        }
    })
}

/// A token as stored: the credential and its timings in ms since the epoch.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredToken {
    #[serde(rename = "t")]
    pub access_token: String,
    #[serde(rename = "e")]
    pub expires_at_ms: i64,
    #[serde(rename = "r")]
    pub refreshed_at_ms: i64,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"REDACTED")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// The backend could not be reached or answered nonsense.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token backend unavailable: {0}")]
pub struct StoreError(pub String);

/// Shared token state. Every method is one round trip, so a replica never
/// holds a backend connection across a WeChat call.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// The app's shared token, if any and not expired.
    async fn load(&self, app_id: &str) -> Result<Option<StoredToken>, StoreError>;
    /// Replaces the app's shared token (it expires with the token).
    async fn save(&self, app_id: &str, token: &StoredToken) -> Result<(), StoreError>;
    /// Stores the token only if none is stored (re-seeding an empty backend
    /// after a restart with a copy that is still valid).
    async fn save_if_absent(&self, app_id: &str, token: &StoredToken) -> Result<bool, StoreError>;
    /// Takes the app's refresh lock for `owner` unless someone holds it.
    async fn try_lock(&self, app_id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Releases the lock only if `owner` still holds it.
    async fn unlock(&self, app_id: &str, owner: &str) -> Result<(), StoreError>;
    /// Token fetches from WeChat on Beijing day `day`.
    async fn fetches(&self, app_id: &str, day: i64) -> Result<u32, StoreError>;
    /// Counts one fetch on `day`; returns the new count.
    async fn count_fetch(&self, app_id: &str, day: i64) -> Result<u32, StoreError>;
}
