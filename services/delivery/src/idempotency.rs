//! Idempotency: the same `idempotency_key` within the window returns the
//! first result and never sends twice, also when duplicates arrive at once
//! on different replicas. The first caller reserves the key atomically
//! (Redis `SET NX`); the others wait for its result.

use crate::expiring::ExpiringMap;
use prost::Message;
use std::sync::Mutex;
use std::time::Duration;
use wxpush_proto::v1::DeliveryResult;

/// A reservation left pending this long is considered abandoned (its
/// holder died) and may be taken over.
pub const PENDING_TTL: Duration = Duration::from_secs(60);

/// Records the memory backend keeps at most.
pub const MAX_MEMORY_RECORDS: usize = 100_000;

/// The record key of a caller's key: per app (two apps may use the same
/// business key), unambiguous whatever either holds (`a:b` + `c` and `a` +
/// `b:c` differ).
pub fn record_key(app_id: &str, key: &str) -> String {
    format!("{}:{app_id}:{key}", app_id.len())
}

/// What reserving a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is ours: send, then `complete`.
    Reserved,
    /// Another request holds the key and has not finished (its message id).
    Pending(String),
    /// The key's first request finished with this result.
    Done(DeliveryResult),
}

/// The backend could not be reached or held an unreadable record.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("idempotency backend unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("bad idempotency record: {0}")]
    Corrupt(String),
}

/// Records per idempotency key.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` for `message_id` unless a record exists.
    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, IdempotencyError>;
    /// Stores the final result for the window.
    async fn complete(
        &self,
        key: &str,
        result: &DeliveryResult,
        window: Duration,
    ) -> Result<(), IdempotencyError>;
    /// Drops a reservation that sent nothing (e.g. rate-limited), so a retry
    /// of the same key can go through.
    async fn release(&self, key: &str) -> Result<(), IdempotencyError>;
}

/// Single-process records (`wxpush dev`), with the Redis backend's
/// windows and at most [`MAX_MEMORY_RECORDS`].
pub struct MemoryIdempotency {
    entries: Mutex<ExpiringMap<Claim>>,
}

impl Default for MemoryIdempotency {
    fn default() -> Self {
        Self {
            entries: Mutex::new(ExpiringMap::new(MAX_MEMORY_RECORDS)),
        }
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, IdempotencyError> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = map.get(key) {
            return Ok(found.clone());
        }
        map.insert(
            key.to_string(),
            Claim::Pending(message_id.to_string()),
            PENDING_TTL,
        );
        Ok(Claim::Reserved)
    }

    async fn complete(
        &self,
        key: &str,
        result: &DeliveryResult,
        window: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.to_string(), Claim::Done(result.clone()), window);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }
}

/// Records shared by replicas: `{prefix}idem:{key}` holds `P:{message_id}`
/// while pending (expiring after [`PENDING_TTL`]) or `D:` + the encoded
/// result for the window.
pub struct RedisIdempotency {
    conn: wxpush_redis::Connection,
    prefix: String,
}

impl RedisIdempotency {
    pub fn new(conn: wxpush_redis::Connection, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}idem:{key}", self.prefix)
    }
}

fn decode(raw: &[u8]) -> Result<Claim, IdempotencyError> {
    match raw.split_first() {
        Some((b'P', rest)) => Ok(Claim::Pending(
            String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).into(),
        )),
        Some((b'D', rest)) => DeliveryResult::decode(rest.get(1..).unwrap_or_default())
            .map(Claim::Done)
            .map_err(|e| IdempotencyError::Corrupt(e.to_string())),
        _ => Err(IdempotencyError::Corrupt("unknown record type".into())),
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for RedisIdempotency {
    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, IdempotencyError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(format!("P:{message_id}"))
            .arg("NX")
            .arg("PX")
            .arg(PENDING_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok(Claim::Reserved);
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await?;
        match raw {
            Some(raw) => decode(&raw),
            // Expired between the two commands: try once more.
            None => Box::pin(self.claim(key, message_id)).await,
        }
    }

    async fn complete(
        &self,
        key: &str,
        result: &DeliveryResult,
        window: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut value = b"D:".to_vec();
        value.extend(result.encode_to_vec());
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(window.as_millis().max(1) as u64)
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_claim_wins_then_the_result_is_returned() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim("k", "m1").await.unwrap(), Claim::Reserved);
        assert_eq!(
            store.claim("k", "m2").await.unwrap(),
            Claim::Pending("m1".into())
        );
        let result = DeliveryResult {
            message_id: "m1".into(),
            ..Default::default()
        };
        store
            .complete("k", &result, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.claim("k", "m3").await.unwrap(), Claim::Done(result));
        store.release("k").await.unwrap();
        assert_eq!(store.claim("k", "m4").await.unwrap(), Claim::Reserved);
    }

    #[test]
    fn record_keys_are_per_app_and_unambiguous() {
        assert_ne!(record_key("a:b", "c"), record_key("a", "b:c"));
        assert_ne!(record_key("wx1", "k"), record_key("wx2", "k"));
        assert_eq!(record_key("wx1", "k"), record_key("wx1", "k"));
    }

    #[tokio::test]
    async fn memory_records_expire_with_their_window() {
        let store = MemoryIdempotency::default();
        store.claim("k", "m1").await.unwrap();
        let r = DeliveryResult::default();
        store.complete("k", &r, Duration::ZERO).await.unwrap();
        assert_eq!(store.claim("k", "m2").await.unwrap(), Claim::Reserved);
    }

    #[test]
    fn records_decode() {
        assert_eq!(decode(b"P:m1").unwrap(), Claim::Pending("m1".into()));
        let r = DeliveryResult {
            message_id: "m9".into(),
            ..Default::default()
        };
        let mut raw = b"D:".to_vec();
        raw.extend(r.encode_to_vec());
        assert_eq!(decode(&raw).unwrap(), Claim::Done(r));
        assert!(decode(b"X").is_err());
    }
}
