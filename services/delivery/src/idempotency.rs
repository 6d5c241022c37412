//! Idempotency: the same `idempotency_key` within the window returns the
//! first result and never sends twice, also when duplicates arrive at once
//! on different replicas. The first caller reserves the key atomically
//! (Redis `SET NX`); the others wait for its result.

use prost::Message;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wxpush_proto::v1::DeliveryResult;

/// A reservation left pending this long is considered abandoned (its
/// holder died) and may be taken over.
pub const PENDING_TTL: Duration = Duration::from_secs(60);

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

/// The backend could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("idempotency backend unavailable: {0}")]
pub struct IdempotencyError(pub String);

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

enum Entry {
    Pending(String, Instant),
    Done(DeliveryResult, Instant),
}

/// Single-process records (`wxpush dev`).
#[derive(Default)]
pub struct MemoryIdempotency {
    entries: Mutex<HashMap<String, Entry>>,
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, IdempotencyError> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let claim = match map.get(key) {
            Some(Entry::Pending(id, until)) if *until > now => Claim::Pending(id.clone()),
            Some(Entry::Done(r, until)) if *until > now => Claim::Done(r.clone()),
            _ => Claim::Reserved,
        };
        if claim == Claim::Reserved {
            map.insert(
                key.to_string(),
                Entry::Pending(message_id.to_string(), now + PENDING_TTL),
            );
        }
        Ok(claim)
    }

    async fn complete(
        &self,
        key: &str,
        result: &DeliveryResult,
        window: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            key.to_string(),
            Entry::Done(result.clone(), Instant::now() + window),
        );
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
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisIdempotency {
    pub fn new(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}idem:{key}", self.prefix)
    }
}

fn err(e: redis::RedisError) -> IdempotencyError {
    IdempotencyError(e.to_string())
}

fn decode(raw: &[u8]) -> Result<Claim, IdempotencyError> {
    match raw.split_first() {
        Some((b'P', rest)) => Ok(Claim::Pending(
            String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).into(),
        )),
        Some((b'D', rest)) => DeliveryResult::decode(rest.get(1..).unwrap_or_default())
            .map(Claim::Done)
            .map_err(|e| IdempotencyError(format!("bad idempotency record: {e}"))),
        _ => Err(IdempotencyError("bad idempotency record".into())),
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
            .await
            .map_err(err)?;
        if set.is_some() {
            return Ok(Claim::Reserved);
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
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
            .await
            .map_err(err)
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
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
