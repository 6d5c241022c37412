//! The token store shared by every replica, on Redis.
//!
//! Keys (all under the configured prefix, `wxpush:` by default):
//! - `{p}token:{app}`: JSON `{"t","e","r"}`, expiring with the token;
//! - `{p}token:{app}:lock`: the refresh lock, `SET NX PX` with the owner's
//!   id, released by a compare-and-delete script;
//! - `{p}token:{app}:fetches:{day}`: WeChat fetches on a Beijing day,
//!   expiring after two days.

use super::{StoreError, StoredToken, TokenStore};
use std::time::Duration;
use wxpush_redis::Connection;

const UNLOCK: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Shared state on Redis. Commands time out quickly so a Redis outage
/// degrades to serving the in-process copy instead of hanging callers.
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: Connection,
    prefix: String,
    unlock: redis::Script,
}

impl RedisTokenStore {
    /// A store on `url`; connects on first use and reconnects after
    /// failures (see `wxpush_redis`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let conn = wxpush_redis::connect(url, wxpush_redis::Timeouts::Commands)
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            unlock: redis::Script::new(UNLOCK),
        })
    }

    fn token_key(&self, app_id: &str) -> String {
        format!("{}token:{app_id}", self.prefix)
    }
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

fn ttl_ms(token: &StoredToken) -> i64 {
    (token.expires_at_ms - crate::clock::now_ms()).max(1)
}

#[async_trait::async_trait]
impl TokenStore for RedisTokenStore {
    async fn load(&self, app_id: &str) -> Result<Option<StoredToken>, StoreError> {
        let get = redis::cmd("GET").arg(self.token_key(app_id)).clone();
        let raw: Option<String> = wxpush_redis::idempotent(&self.conn, &get)
            .await
            .map_err(err)?;
        let now = crate::clock::now_ms();
        match raw {
            None => Ok(None),
            Some(s) => {
                let t: StoredToken = serde_json::from_str(&s)
                    .map_err(|e| StoreError(format!("bad token record: {e}")))?;
                Ok((t.expires_at_ms > now).then_some(t))
            }
        }
    }

    async fn save(&self, app_id: &str, token: &StoredToken) -> Result<(), StoreError> {
        let value = serde_json::to_string(token).map_err(|e| StoreError(e.to_string()))?;
        redis::cmd("SET")
            .arg(self.token_key(app_id))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms(token))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn save_if_absent(&self, app_id: &str, token: &StoredToken) -> Result<bool, StoreError> {
        let value = serde_json::to_string(token).map_err(|e| StoreError(e.to_string()))?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.token_key(app_id))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(token))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn try_lock(&self, app_id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}token:{app_id}:lock", self.prefix))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn unlock(&self, app_id: &str, owner: &str) -> Result<(), StoreError> {
        self.unlock
            .key(format!("{}token:{app_id}:lock", self.prefix))
            .arg(owner)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn fetches(&self, app_id: &str, day: i64) -> Result<u32, StoreError> {
        let get = redis::cmd("GET")
            .arg(format!("{}token:{app_id}:fetches:{day}", self.prefix))
            .clone();
        let n: Option<u32> = wxpush_redis::idempotent(&self.conn, &get)
            .await
            .map_err(err)?;
        Ok(n.unwrap_or(0))
    }

    async fn count_fetch(&self, app_id: &str, day: i64) -> Result<u32, StoreError> {
        let key = format!("{}token:{app_id}:fetches:{day}", self.prefix);
        let (n,): (u32,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(2 * 86_400)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(n)
    }
}
