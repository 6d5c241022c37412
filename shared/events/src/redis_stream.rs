//! The delivery event stream on Redis Streams.
//!
//! - The stream is split into partitions (`backend.stream_partitions`, one
//!   by default) so that it spreads over a Redis Cluster: partition `i` is
//!   the key `{prefix}events:{e<i>.<salt>}` ([`stream_keys`]), and every
//!   event of a message goes to the partition of its message id. Each entry
//!   has one field `d`, the prost-encoded [`DeliveryEvent`]. Delivery
//!   appends with `XADD ... MAXLEN ~` (the bound shared among the
//!   partitions) so the stream cannot grow without bound; the Redis log
//!   store also trims it by age (`XTRIM MINID`) to the log's retention.
//! - Logquery replicas read every partition through one consumer group
//!   with the shared [`PartitionedConsumer`] and acknowledge an entry only
//!   after the store applied it, so a restart or a dead replica loses
//!   nothing.

use crate::consumer::{ConsumerSettings, StreamEntry};
use crate::partitioned::PartitionedConsumer;
use crate::{DeliveryEvent, EventError, EventSink, EventSource, Receipt, Received};
use prost::Message;
use std::time::Duration;
use wxpush_redis::{Connection, Partitions, Timeouts};

/// Where the stream is and how it is consumed.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Key prefix (`wxpush:`); the stream is `{prefix}events:{...}`.
    pub key_prefix: String,
    /// How many partitions the stream is split into.
    pub partitions: Partitions,
    /// Consumer group (all logquery replicas share one).
    pub group: String,
    /// This consumer's name; stable across restarts of the same replica so
    /// that it re-reads its own pending entries (e.g. the pod name).
    pub consumer: String,
    /// Approximate upper bound on entries (`XADD MAXLEN ~`).
    pub max_len: u64,
    /// Entries pending this long at another consumer are claimed.
    pub claim_idle: Duration,
    /// How long one `XREADGROUP` waits for new entries.
    pub block: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".into(),
            key_prefix: "wxpush:".into(),
            partitions: Partitions::ONE,
            group: "logquery".into(),
            consumer: "logquery-0".into(),
            max_len: 5_000_000,
            claim_idle: Duration::from_secs(60),
            block: Duration::from_secs(1),
        }
    }
}

/// The key of each partition of the event stream, in partition order.
pub fn stream_keys(prefix: &str, partitions: Partitions) -> Vec<String> {
    partitions
        .all()
        .map(|i| format!("{prefix}events:{}", partitions.tag('e', i)))
        .collect()
}

/// The payload field of an event entry.
const FIELD: &str = "d";

/// Delivery's side: appends events to the stream.
#[derive(Clone)]
pub struct RedisStreamSink {
    conn: Connection,
    keys: Vec<String>,
    partitions: Partitions,
    /// `XADD MAXLEN ~` of each partition.
    max_len: u64,
}

impl RedisStreamSink {
    /// A sink on the settings' stream (connects on first publish).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        let conn = wxpush_redis::connect(&settings.redis_url, Timeouts::Commands)?;
        Ok(Self::on(conn, settings))
    }

    /// A sink on the settings' stream over `conn`, a connection to the
    /// settings' Redis that the process also uses for other commands: an
    /// event published together with them leaves in the same write.
    pub fn on(conn: Connection, settings: &StreamSettings) -> Self {
        Self {
            conn,
            keys: stream_keys(&settings.key_prefix, settings.partitions),
            partitions: settings.partitions,
            max_len: (settings.max_len / u64::from(settings.partitions.count())).max(1),
        }
    }
}

#[async_trait::async_trait]
impl EventSink for RedisStreamSink {
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError> {
        let key = &self.keys[usize::from(self.partitions.of(&event.message_id))];
        redis::cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(event.encode_to_vec())
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// Logquery's side: one consumer of the group.
pub struct RedisStreamSource {
    consumer: PartitionedConsumer,
}

impl RedisStreamSource {
    /// A consumer of the settings' stream (connects on first read).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        let streams = stream_keys(&settings.key_prefix, settings.partitions);
        let consumer = PartitionedConsumer::open(
            &settings.redis_url,
            ConsumerSettings {
                stream: String::new(),
                field: FIELD,
                group: settings.group.clone(),
                consumer: settings.consumer.clone(),
                block: settings.block,
                claim_idle: settings.claim_idle,
                claim_every: settings.claim_idle / 2,
                delete_on_ack: false,
            },
            streams,
        )?;
        Ok(Self { consumer })
    }

    /// Where undecodable events are kept with their raw bytes (one key
    /// per partition).
    pub fn rejected_keys(&self) -> Vec<String> {
        self.consumer.rejected_keys()
    }
}

#[async_trait::async_trait]
impl EventSource for RedisStreamSource {
    async fn next_batch(&self, max: usize) -> Result<Option<Vec<Received>>, EventError> {
        loop {
            let mut out = Vec::new();
            for entry in self.consumer.next_batch(max).await? {
                match DeliveryEvent::decode(entry.payload.as_slice()) {
                    Ok(event) => out.push(Received {
                        event,
                        receipt: Receipt(entry.id),
                    }),
                    Err(e) => self.reject(&entry, &e.to_string()).await?,
                }
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), EventError> {
        let ids: Vec<String> = receipts.iter().map(|r| r.0.clone()).collect();
        Ok(self.consumer.ack(&ids).await?)
    }
}

impl RedisStreamSource {
    async fn reject(&self, entry: &StreamEntry, why: &str) -> Result<(), EventError> {
        Ok(self.consumer.reject(entry, why).await?)
    }
}
