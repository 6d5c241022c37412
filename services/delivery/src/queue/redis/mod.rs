//! The queue on Redis, shared by every delivery replica.
//!
//! Keys under the configured prefix, on one Redis or a Redis Cluster (keys
//! a script or transaction touches together share a hash tag, see
//! [`wxpush_redis::partition`]):
//! - the queue is split into `backend.stream_partitions` partitions, and a
//!   message lives in the partition of its id. Partition `i` (tag `{qi.s}`)
//!   is `{p}queue:{qi.s}`, a stream (field `m`: the message, [`super::entry`]) read by
//!   the consumer group `delivery` through [`PartitionedConsumer`], entries
//!   deleted once acknowledged, undecodable ones kept in
//!   `{p}queue:{qi.s}:rejected`; and `{p}queue:{qi.s}:delayed`, a sorted set
//!   of messages by due time (ms) that moves into the stream when due;
//! - `{p}msg:{ID}`: a message's live status (a mark byte, `L` live, `F`
//!   final or `R` WeChat's receipt, then the protobuf), kept 7 days; never
//!   replaced by one that ranks lower (the message id in braces is the hash
//!   tag of its keys);
//! - `{p}msg:wx:{app}:{msgid}`: the message id WeChat accepted as `msgid`,
//!   as long as its status, for WeChat's receipts (they name the msgid);
//! - `{p}msg:{ID}:attempt`: the last attempt begun at WeChat, for messages
//!   whose API has no `client_msg_id` (subscribe), until the status is
//!   final: once a message is final only its status stays;
//! - `{p}dlq:{dlq}` (hash id → JSON) and `{p}dlq:{dlq}:index` (sorted set
//!   by dead time).

use super::*;

mod dead;
use crate::config::QueueSettings;
use ::redis::Value;
use futures_util::future::try_join_all;
use prost::Message;
use wxpush_events::{ConsumerSettings, PartitionedConsumer};
use wxpush_redis::{Connection, Partitions, Query, Timeouts};

const GROUP: &str = "delivery";

/// Moves due delayed messages into the stream atomically.
const PROMOTE_LUA: &str = r#"
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, item in ipairs(items) do
  redis.call('XADD', KEYS[2], '*', 'm', item)
  redis.call('ZREM', KEYS[1], item)
end
return #items
"#;

/// Stores a status (KEYS: status, attempt, and on one Redis the msgid note;
/// ARGV: protobuf, mark L live / F final / R receipt, TTL s, and with the
/// note's key the message id) as the mark followed by the protobuf, unless
/// the stored one's mark ranks above this one's ([`super::rank`]); a final
/// status drops the attempt note. Returns 1 when stored. The msgid note is
/// written in the same step (a script is atomic: no receipt sees it before
/// the status); on a cluster its key lives in another slot, so it follows
/// as a command of its own.
const SET_STATUS_LUA: &str = r#"
local rank = {L = 0, F = 1, R = 2}
local kept = redis.call('GET', KEYS[1])
if kept and (rank[string.sub(kept, 1, 1)] or 0) > rank[ARGV[2]] then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. ARGV[1], 'EX', ARGV[3])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3]) end
if ARGV[2] ~= 'L' then redis.call('DEL', KEYS[2]) end
return 1
"#;

/// The payload field of a queue entry.
const FIELD: &str = "m";

/// The keys of one partition of the queue.
struct PartitionKeys {
    stream: String,
    delayed: String,
}

/// The shared queue.
pub struct RedisQueue {
    conn: Connection,
    /// This process's reader of every partition (group `delivery`).
    consumer: PartitionedConsumer,
    partitions: Partitions,
    keys: Vec<PartitionKeys>,
    prefix: String,
    promote: ::redis::Script,
    bury: ::redis::Script,
    set_status: ::redis::Script,
    dead_bounds: DeadLetterBounds,
    status_ttl_secs: u64,
}

impl RedisQueue {
    /// The queue under `prefix` on `url` in `partitions`, read by this
    /// process as one consumer of the `delivery` group; connects on first
    /// use.
    pub fn open(
        url: &str,
        prefix: &str,
        partitions: Partitions,
        settings: &QueueSettings,
    ) -> Result<Self, QueueError> {
        let keys: Vec<PartitionKeys> = partitions
            .all()
            .map(|i| {
                let stream = format!("{prefix}queue:{}", partitions.tag('q', i));
                PartitionKeys {
                    delayed: format!("{stream}:delayed"),
                    stream,
                }
            })
            .collect();
        let consumer = PartitionedConsumer::open(
            url,
            ConsumerSettings {
                stream: String::new(),
                field: FIELD,
                group: GROUP.into(),
                // Unique per process: two live workers never share a name.
                consumer: uuid::Uuid::new_v4().simple().to_string(),
                block: Duration::from_millis(settings.poll_ms.max(1)),
                claim_idle: Duration::from_millis(settings.claim_idle_ms),
                claim_every: Duration::from_millis(settings.reclaim_every_ms),
                delete_on_ack: true,
            },
            keys.iter().map(|k| k.stream.clone()).collect(),
        )?;
        Ok(Self {
            conn: wxpush_redis::connect(url, Timeouts::Commands)?,
            consumer,
            partitions,
            keys,
            prefix: prefix.to_string(),
            promote: ::redis::Script::new(PROMOTE_LUA),
            bury: ::redis::Script::new(dead::BURY_LUA),
            set_status: ::redis::Script::new(SET_STATUS_LUA),
            dead_bounds: DeadLetterBounds::of(settings),
            status_ttl_secs: settings.status_ttl_secs,
        })
    }

    /// Sends this queue's commands over `conn`, a connection other parts of
    /// the process also use (delivery's rate limits, events and statuses):
    /// commands issued at the same moment then leave in one write and are
    /// answered in one read, which is most of what a command costs.
    pub fn sharing(mut self, conn: Connection) -> Self {
        self.conn = conn;
        self
    }

    fn status_key(&self, id: &str) -> String {
        format!("{}msg:{{{id}}}", self.prefix)
    }
    /// Seconds a status is kept ([`super::status_keep`]).
    fn status_keep(&self, status: i32) -> u64 {
        status_keep(status, Duration::from_secs(self.status_ttl_secs)).as_secs()
    }
    /// The message WeChat accepted as `msgid` for `app_id`.
    fn msgid_key(&self, app_id: &str, msgid: &str) -> String {
        format!("{}msg:wx:{app_id}:{msgid}", self.prefix)
    }
    /// The last attempt begun at WeChat (subscribe messages).
    fn attempt_key(&self, id: &str) -> String {
        format!("{}msg:{{{id}}}:attempt", self.prefix)
    }
    fn dlq(&self) -> String {
        format!("{}dlq:{{dlq}}", self.prefix)
    }
    fn dlq_index(&self) -> String {
        format!("{}dlq:{{dlq}}:index", self.prefix)
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, raw: &str) -> Result<T, QueueError> {
    serde_json::from_str(raw).map_err(|e| QueueError::corrupt(what, e))
}

#[async_trait::async_trait]
impl Queue for RedisQueue {
    async fn push(&self, messages: &[QueuedMessage], not_before_ms: i64) -> Result<(), QueueError> {
        // One pipeline per partition: a cluster runs a pipeline on one node.
        let mut pipes: Vec<Option<::redis::Pipeline>> = self.keys.iter().map(|_| None).collect();
        let delayed = not_before_ms > now_ms();
        for m in messages {
            let entry = super::entry::encode(m);
            let p = usize::from(self.partitions.of(&m.message_id));
            let keys = &self.keys[p];
            let pipe = pipes[p].get_or_insert_with(::redis::pipe);
            if delayed {
                pipe.cmd("ZADD")
                    .arg(&keys.delayed)
                    .arg(not_before_ms)
                    .arg(&entry)
                    .ignore();
            } else {
                pipe.cmd("XADD")
                    .arg(&keys.stream)
                    .arg("*")
                    .arg(FIELD)
                    .arg(entry)
                    .ignore();
            }
        }
        try_join_all(
            pipes
                .iter()
                .flatten()
                .map(|pipe| pipe.query_on::<()>(self.conn.clone())),
        )
        .await?;
        Ok(())
    }

    async fn promote_due(&self, now_ms: i64) -> Result<usize, QueueError> {
        let moved = try_join_all(self.keys.iter().map(|keys| async move {
            self.promote
                .key(&keys.delayed)
                .key(&keys.stream)
                .arg(now_ms)
                .arg(500)
                .invoke_async::<usize>(&mut self.conn.clone())
                .await
        }))
        .await?;
        Ok(moved.into_iter().sum())
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut out = Vec::new();
        for entry in self.consumer.next_batch(max).await? {
            match super::entry::decode(&entry.payload) {
                Ok(message) => out.push(Delivery {
                    id: entry.id,
                    message,
                }),
                // Kept with its raw bytes, never claimed again.
                Err(e) => self.consumer.reject(&entry, &e).await?,
            }
        }
        Ok(out)
    }

    fn release(&self, id: &str) {
        self.consumer.release(&[id.to_string()]);
    }

    async fn ack(&self, id: &str) -> Result<(), QueueError> {
        Ok(self.consumer.ack(&[id.to_string()]).await?)
    }

    async fn depth(&self, now_ms: i64) -> Result<Depth, QueueError> {
        let dead = ::redis::cmd("HLEN").arg(self.dlq()).clone();
        let partitions = try_join_all(self.keys.iter().map(|keys| {
            let pipe = ::redis::pipe()
                .cmd("XLEN")
                .arg(&keys.stream)
                .cmd("ZCARD")
                .arg(&keys.delayed)
                .cmd("XRANGE")
                .arg(&keys.stream)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .clone();
            let conn = self.conn.clone();
            async move { pipe.query_on::<(u64, u64, Value)>(conn).await }
        }));
        let (partitions, dead): (Vec<(u64, u64, Value)>, u64) =
            futures_util::try_join!(partitions, dead.query_on(self.conn.clone()))?;
        let mut depth = Depth {
            dead,
            ..Depth::default()
        };
        for (ready, delayed, first) in partitions {
            depth.ready += ready;
            depth.delayed += delayed;
            // XRANGE: [[id, fields]]; the id starts with its ms timestamp.
            let oldest_ms = match &first {
                Value::Array(entries) => entries.first().and_then(|e| match e {
                    Value::Array(parts) => parts.first().and_then(text),
                    _ => None,
                }),
                _ => None,
            }
            .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<i64>().ok()));
            if let Some(t) = oldest_ms {
                depth.oldest_age = depth
                    .oldest_age
                    .max(Duration::from_millis((now_ms - t).max(0) as u64));
            }
        }
        Ok(depth)
    }

    async fn set_status(&self, result: &DeliveryResult) -> Result<bool, QueueError> {
        let mark = ["L", "F", "R"][usize::from(rank(result.status))];
        let note = noted_msgid(result).map(|msgid| self.msgid_key(&result.app_id, msgid));
        let in_script = !self.conn.is_cluster();
        let mut call = self.set_status.prepare_invoke();
        call.key(self.status_key(&result.message_id))
            .key(self.attempt_key(&result.message_id))
            .arg(result.encode_to_vec())
            .arg(mark)
            .arg(self.status_keep(result.status));
        if let Some(key) = note.as_ref().filter(|_| in_script) {
            call.key(key).arg(&result.message_id);
        }
        let stored: u8 = call.invoke_async(&mut self.conn.clone()).await?;
        if let Some(key) = note.filter(|_| !in_script && stored == 1) {
            ::redis::cmd("SET")
                .arg(key)
                .arg(&result.message_id)
                .arg("EX")
                .arg(self.status_keep(result.status))
                .exec_async(&mut self.conn.clone())
                .await?;
        }
        Ok(stored == 1)
    }

    async fn by_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<String>, QueueError> {
        let cmd = ::redis::cmd("GET")
            .arg(self.msgid_key(app_id, wechat_msgid))
            .clone();
        Ok(wxpush_redis::idempotent(&self.conn, &cmd).await?)
    }

    async fn reopen(&self, result: &DeliveryResult) -> Result<(), QueueError> {
        let mut value = b"L".to_vec();
        value.extend(result.encode_to_vec());
        ::redis::cmd("SET")
            .arg(self.status_key(&result.message_id))
            .arg(value)
            .arg("EX")
            .arg(self.status_keep(result.status))
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn begin_attempt(&self, message_id: &str, n: u32) -> Result<(), QueueError> {
        let () = ::redis::cmd("SET")
            .arg(self.attempt_key(message_id))
            .arg(n)
            .arg("EX")
            .arg(self.status_ttl_secs)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn begun_attempt(&self, message_id: &str) -> Result<Option<u32>, QueueError> {
        let get = ::redis::cmd("GET")
            .arg(self.attempt_key(message_id))
            .clone();
        Ok(wxpush_redis::idempotent(&self.conn, &get).await?)
    }

    async fn status(&self, message_id: &str) -> Result<Option<DeliveryResult>, QueueError> {
        let get = ::redis::cmd("GET").arg(self.status_key(message_id)).clone();
        let raw: Option<Vec<u8>> = wxpush_redis::idempotent(&self.conn, &get).await?;
        raw.map(|b| {
            // A mark byte (F final, L live), then the protobuf.
            let proto = b.get(1..).unwrap_or_default();
            DeliveryResult::decode(proto).map_err(|e| QueueError::corrupt(message_id, e))
        })
        .transpose()
    }

    async fn bury(&self, record: &DeadRecord) -> Result<(), QueueError> {
        self.bury_dead(record).await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError> {
        self.list_dead(filter, page_size, page_token).await
    }

    async fn exhume(&self, message_ids: &[String]) -> Result<Vec<DeadRecord>, QueueError> {
        self.take_dead(message_ids).await
    }
}
