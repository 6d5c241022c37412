//! The delivery event stream on Redis Streams.
//!
//! - Stream key `{prefix}events`; each entry has one field `d`, the
//!   prost-encoded [`DeliveryEvent`]. Delivery appends with `XADD ... MAXLEN ~`
//!   so the stream cannot grow without bound; logquery also trims it by age
//!   (`XTRIM MINID`) to the log's retention.
//! - Logquery replicas read through one consumer group with the shared
//!   [`StreamConsumer`] and acknowledge an entry only after the store applied
//!   it, so a restart or a dead replica loses nothing.

use crate::consumer::{ConsumerSettings, StreamConsumer, StreamEntry};
use crate::{DeliveryEvent, EventError, EventSink, EventSource, Receipt, Received};
use prost::Message;
use redis::aio::ConnectionManager;
use std::time::Duration;
use wxpush_redis::Timeouts;

/// Where the stream is and how it is consumed.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Key prefix (`wxpush:`); the stream is `{prefix}events`.
    pub key_prefix: String,
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
            group: "logquery".into(),
            consumer: "logquery-0".into(),
            max_len: 5_000_000,
            claim_idle: Duration::from_secs(60),
            block: Duration::from_secs(1),
        }
    }
}

/// The stream key for a key prefix.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}events")
}

/// The payload field of an event entry.
const FIELD: &str = "d";

/// Delivery's side: appends events to the stream.
#[derive(Clone)]
pub struct RedisStreamSink {
    conn: ConnectionManager,
    key: String,
    max_len: u64,
}

impl RedisStreamSink {
    /// A sink on the settings' stream (connects on first publish).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        Ok(Self {
            conn: wxpush_redis::connect(&settings.redis_url, Timeouts::Commands)?,
            key: stream_key(&settings.key_prefix),
            max_len: settings.max_len,
        })
    }
}

#[async_trait::async_trait]
impl EventSink for RedisStreamSink {
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError> {
        redis::cmd("XADD")
            .arg(&self.key)
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
    consumer: StreamConsumer,
}

impl RedisStreamSource {
    /// A consumer of the settings' stream (connects on first read).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        let consumer = StreamConsumer::open(
            &settings.redis_url,
            ConsumerSettings {
                stream: stream_key(&settings.key_prefix),
                field: FIELD,
                group: settings.group.clone(),
                consumer: settings.consumer.clone(),
                block: settings.block,
                claim_idle: settings.claim_idle,
                claim_every: settings.claim_idle / 2,
                delete_on_ack: false,
            },
        )?;
        Ok(Self { consumer })
    }

    /// Where undecodable events are kept with their raw bytes.
    pub fn rejected_key(&self) -> String {
        self.consumer.rejected_key()
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
