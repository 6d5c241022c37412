//! Where a verified push goes before WeChat is answered: the callback
//! service acknowledges a push only once it is durably handed on, and
//! processes nothing itself.
//!
//! On Redis, the stream `{prefix}callbacks:{callbacks}` (one entry per
//! push, field `p`: the [`HandedOn`] record as JSON,
//! [`wxpush_events::callbacks`]), read by the services a push is for (the
//! log for receipts, delivery for consent). WeChat
//! sends a push again when it did not get `success` in time, so a push is
//! handed on once: its id (the sha1 of the app and the opened body) is
//! remembered for a day, atomically with the append.

use wxpush_events::callbacks::stream_key;
pub use wxpush_events::callbacks::{HandedOn, MemoryPushes};
use wxpush_redis::Connection;

/// How long a push's id is remembered against WeChat's repeats.
pub const SEEN_FOR_SECS: u64 = 86_400;
/// Entries the stream keeps at most (`XADD MAXLEN ~`).
pub const STREAM_MAX_LEN: u64 = 1_000_000;
/// Pushes the memory backend keeps (the newest).
pub const MEMORY_KEEPS: usize = 10_000;

/// Why a push could not be handed on (WeChat is answered 503 and retries).
#[derive(Debug, thiserror::Error)]
#[error("handing the push on failed: {0}")]
pub struct HandoffError(String);

/// Where pushes go.
#[async_trait::async_trait]
pub trait PushSink: Send + Sync {
    /// Hands `record` on durably; `false` when it was handed on before (a
    /// repeat).
    async fn hand_on(&self, record: &HandedOn) -> Result<bool, HandoffError>;
}

/// This process only (`wxpush dev`, tests): the newest pushes, each once,
/// read by the log and delivery in the same process.
#[async_trait::async_trait]
impl PushSink for MemoryPushes {
    async fn hand_on(&self, record: &HandedOn) -> Result<bool, HandoffError> {
        Ok(MemoryPushes::hand_on(self, record))
    }
}

/// Appends unless seen (KEYS: seen key, stream; ARGV: record, TTL s,
/// max length). Returns 1 when appended.
const HAND_ON_LUA: &str = r#"
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[1])
return 1
"#;

/// The stream on Redis (a node or a cluster: its keys share a hash tag).
pub struct RedisSink {
    conn: Connection,
    prefix: String,
    script: redis::Script,
}

impl RedisSink {
    pub fn open(url: &str, prefix: &str) -> Result<Self, wxpush_redis::OpenError> {
        Ok(Self {
            conn: wxpush_redis::connect(url, wxpush_redis::Timeouts::Commands)?,
            prefix: prefix.to_string(),
            script: redis::Script::new(HAND_ON_LUA),
        })
    }
}

#[async_trait::async_trait]
impl PushSink for RedisSink {
    async fn hand_on(&self, record: &HandedOn) -> Result<bool, HandoffError> {
        let json = serde_json::to_string(record).map_err(|e| HandoffError(e.to_string()))?;
        let appended: i64 = self
            .script
            .key(format!(
                "{}callbacks:{{callbacks}}:seen:{}",
                self.prefix, record.event_id
            ))
            .key(stream_key(&self.prefix))
            .arg(json)
            .arg(SEEN_FOR_SECS)
            .arg(STREAM_MAX_LEN)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| HandoffError(e.to_string()))?;
        Ok(appended == 1)
    }
}
