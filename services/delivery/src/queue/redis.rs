//! The queue on Redis, shared by every delivery replica.
//!
//! Keys under the configured prefix:
//! - `{p}queue`: a stream (field `m`: the message as JSON) read by the
//!   consumer group `delivery`; entries are deleted once acknowledged;
//! - `{p}queue:delayed`: a sorted set of messages by due time (ms);
//! - `{p}msg:{id}`: a message's live status (protobuf), kept 7 days;
//! - `{p}dlq` (hash id → JSON) and `{p}dlq:index` (sorted set by dead time).

use super::*;
use ::redis::Value;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use prost::Message;

const GROUP: &str = "delivery";
const STATUS_TTL_SECS: u64 = 7 * 86_400;

/// Moves due delayed messages into the stream atomically.
const PROMOTE_LUA: &str = r#"
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, item in ipairs(items) do
  redis.call('XADD', KEYS[2], '*', 'm', item)
  redis.call('ZREM', KEYS[1], item)
end
return #items
"#;

/// The shared queue; cheap to clone.
#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    /// Blocking reads get their own connection so they never hold up others.
    reader: ConnectionManager,
    prefix: String,
    promote: ::redis::Script,
}

fn err(e: impl std::fmt::Display) -> QueueError {
    QueueError(e.to_string())
}

impl RedisQueue {
    /// Connects and creates the consumer group if it does not exist.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = ::redis::Client::open(url).map_err(err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = client
            .get_connection_manager_with_config(config.clone())
            .await
            .map_err(err)?;
        let reader = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err)?;
        let queue = Self {
            conn,
            reader,
            prefix: prefix.to_string(),
            promote: ::redis::Script::new(PROMOTE_LUA),
        };
        let created: Result<(), ::redis::RedisError> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(queue.stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut queue.conn.clone())
            .await;
        match created {
            Err(e) if !e.to_string().contains("BUSYGROUP") => Err(err(e)),
            _ => Ok(queue),
        }
    }

    fn stream(&self) -> String {
        format!("{}queue", self.prefix)
    }
    fn delayed(&self) -> String {
        format!("{}queue:delayed", self.prefix)
    }
    fn status_key(&self, id: &str) -> String {
        format!("{}msg:{id}", self.prefix)
    }
    fn dlq(&self) -> String {
        format!("{}dlq", self.prefix)
    }
    fn dlq_index(&self) -> String {
        format!("{}dlq:index", self.prefix)
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Stream entries `[[id, [field, value, ...]], ...]` as deliveries.
fn entries(v: &Value) -> Vec<Delivery> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let id = text(parts.first()?)?;
            let Value::Array(fields) = parts.get(1)? else {
                return None;
            };
            let json = fields
                .chunks(2)
                .find(|kv| text(&kv[0]).as_deref() == Some("m"))
                .and_then(|kv| kv.get(1))
                .and_then(text)?;
            match serde_json::from_str(&json) {
                Ok(message) => Some(Delivery { id, message }),
                Err(e) => {
                    tracing::error!(entry = %id, error = %e, "unreadable queue entry skipped");
                    None
                }
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl Queue for RedisQueue {
    async fn push(&self, messages: &[QueuedMessage], not_before_ms: i64) -> Result<(), QueueError> {
        let mut pipe = ::redis::pipe();
        let delayed = not_before_ms > now_ms();
        for m in messages {
            let json = serde_json::to_string(m).map_err(err)?;
            if delayed {
                pipe.cmd("ZADD")
                    .arg(self.delayed())
                    .arg(not_before_ms)
                    .arg(json)
                    .ignore();
            } else {
                pipe.cmd("XADD")
                    .arg(self.stream())
                    .arg("*")
                    .arg("m")
                    .arg(json)
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn promote_due(&self, now_ms: i64) -> Result<usize, QueueError> {
        self.promote
            .key(self.delayed())
            .key(self.stream())
            .arg(now_ms)
            .arg(500)
            .invoke_async::<usize>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn pull(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let reply: Value = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(self.stream())
            .arg(">")
            .query_async(&mut self.reader.clone())
            .await
            .map_err(err)?;
        let Value::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        Ok(streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) => kv.get(1).map(entries),
                _ => None,
            })
            .flatten()
            .collect())
    }

    async fn reclaim(
        &self,
        consumer: &str,
        idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let reply: Value = ::redis::cmd("XAUTOCLAIM")
            .arg(self.stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(idle.as_millis() as u64)
            .arg("0")
            .arg("COUNT")
            .arg(max.max(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        match reply {
            Value::Array(parts) => Ok(parts.get(1).map(entries).unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }

    async fn ack(&self, id: &str) -> Result<(), QueueError> {
        ::redis::pipe()
            .cmd("XACK")
            .arg(self.stream())
            .arg(GROUP)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(self.stream())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn depth(&self, now_ms: i64) -> Result<Depth, QueueError> {
        let (ready, delayed, dead, first): (u64, u64, u64, Value) = ::redis::pipe()
            .cmd("XLEN")
            .arg(self.stream())
            .cmd("ZCARD")
            .arg(self.delayed())
            .cmd("HLEN")
            .arg(self.dlq())
            .cmd("XRANGE")
            .arg(self.stream())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        let oldest_ms = entries(&first)
            .first()
            .and_then(|d| d.id.split('-').next().and_then(|ms| ms.parse::<i64>().ok()));
        Ok(Depth {
            ready,
            delayed,
            oldest_age: oldest_ms.map_or(Duration::ZERO, |t| {
                Duration::from_millis((now_ms - t).max(0) as u64)
            }),
            dead,
        })
    }

    async fn set_status(&self, result: &DeliveryResult) -> Result<(), QueueError> {
        ::redis::cmd("SET")
            .arg(self.status_key(&result.message_id))
            .arg(result.encode_to_vec())
            .arg("EX")
            .arg(STATUS_TTL_SECS)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn status(&self, message_id: &str) -> Result<Option<DeliveryResult>, QueueError> {
        let raw: Option<Vec<u8>> = ::redis::cmd("GET")
            .arg(self.status_key(message_id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        raw.map(|b| DeliveryResult::decode(b.as_slice()).map_err(err))
            .transpose()
    }

    async fn bury(&self, record: &DeadRecord) -> Result<(), QueueError> {
        let json = serde_json::to_string(record).map_err(err)?;
        ::redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.dlq())
            .arg(&record.message.message_id)
            .arg(json)
            .ignore()
            .cmd("ZADD")
            .arg(self.dlq_index())
            .arg(record.dead_at_ms)
            .arg(&record.message.message_id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError> {
        let after = decode_cursor(page_token);
        let max = after
            .as_ref()
            .map_or("+inf".to_string(), |(ms, _)| ms.to_string());
        let mut conn = self.conn.clone();
        let mut page = DeadPage::default();
        let mut offset = 0;
        loop {
            let ids: Vec<(String, i64)> = ::redis::cmd("ZREVRANGEBYSCORE")
                .arg(self.dlq_index())
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(200)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            if ids.is_empty() {
                return Ok(page);
            }
            offset += ids.len();
            let wanted: Vec<&String> = ids
                .iter()
                .filter(|(id, ms)| after.as_ref().is_none_or(|c| (*ms, (*id).clone()) < *c))
                .map(|(id, _)| id)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let raw: Vec<Option<String>> = ::redis::cmd("HMGET")
                .arg(self.dlq())
                .arg(&wanted)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            for json in raw.into_iter().flatten() {
                let record: DeadRecord = serde_json::from_str(&json).map_err(err)?;
                if !record.matches(filter) {
                    continue;
                }
                if page.records.len() == page_size {
                    page.next_page_token =
                        page.records.last().map(encode_cursor).unwrap_or_default();
                    return Ok(page);
                }
                page.records.push(record);
            }
        }
    }

    async fn exhume(&self, message_ids: &[String]) -> Result<Vec<DeadRecord>, QueueError> {
        let mut out = Vec::new();
        let mut conn = self.conn.clone();
        for id in message_ids {
            // HDEL decides who takes it when two replays race.
            let raw: Option<String> = ::redis::cmd("HGET")
                .arg(self.dlq())
                .arg(id)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            let Some(json) = raw else { continue };
            let (removed, _): (u32, u32) = ::redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(self.dlq())
                .arg(id)
                .cmd("ZREM")
                .arg(self.dlq_index())
                .arg(id)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            if removed == 1 {
                out.push(serde_json::from_str(&json).map_err(err)?);
            }
        }
        Ok(out)
    }
}
