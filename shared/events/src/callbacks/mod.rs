//! The callback stream: WeChat's pushes (receipts, subscription events) as
//! the callback service handed them on, for the services they are for (the
//! log takes receipts; delivery, consent).
//!
//! On Redis: the stream `{prefix}callbacks:{callbacks}` (field `p`, a
//! [`HandedOn`] as JSON), one entry per push: WeChat's repeats of a push
//! carry the same [`HandedOn::event_id`] and are appended once.

use crate::consumer::{ConsumerSettings, StreamConsumer, StreamEntry};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::time::Duration;
use wxpush_wechat::push::Push;

/// The payload field of an entry.
pub const FIELD: &str = "p";

/// The stream's key under `prefix`; its keys share the hash tag
/// `{callbacks}` (the service's dedup keys live beside it).
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}callbacks:{{callbacks}}")
}

/// A push as handed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOn {
    /// The same for WeChat's repeats of one push.
    pub event_id: String,
    pub app_id: String,
    pub push: Push,
    /// When the callback service received it (ms).
    pub received_at_ms: i64,
}

impl HandedOn {
    /// The record of `push`, opened from `body`, for `app_id`.
    pub fn new(app_id: &str, body: &[u8], push: Push, received_at_ms: i64) -> Self {
        let mut hash = Sha1::new();
        hash.update(app_id.as_bytes());
        hash.update([0]);
        hash.update(body);
        Self {
            event_id: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            app_id: app_id.to_string(),
            push,
            received_at_ms,
        }
    }
}

/// One consumer group's reader of the callback stream.
pub struct CallbackSource {
    consumer: StreamConsumer,
}

/// A push read, with the entry id that acknowledges it.
#[derive(Debug, Clone)]
pub struct ReadPush {
    pub entry: String,
    pub record: HandedOn,
}

impl CallbackSource {
    /// A reader of the stream under `prefix` on `url` in `group` as
    /// `consumer` (stable across restarts); connects on first read.
    pub fn open(
        url: &str,
        prefix: &str,
        group: &str,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Self, wxpush_redis::OpenError> {
        Ok(Self {
            consumer: StreamConsumer::open(
                url,
                ConsumerSettings {
                    stream: stream_key(prefix),
                    field: FIELD,
                    group: group.into(),
                    consumer: consumer.into(),
                    block: Duration::from_secs(1),
                    claim_idle,
                    claim_every: claim_idle / 2,
                    delete_on_ack: false,
                },
            )?,
        })
    }

    /// The next pushes (an undecodable entry is set aside, never handed
    /// out); empty when none came within a second.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<ReadPush>, redis::RedisError> {
        let mut out = Vec::new();
        for entry in self.consumer.next_batch(max).await? {
            match serde_json::from_slice::<HandedOn>(&entry.payload) {
                Ok(record) => out.push(ReadPush {
                    entry: entry.id,
                    record,
                }),
                Err(e) => self.reject(&entry, &e.to_string()).await?,
            }
        }
        Ok(out)
    }

    /// Done with these entries.
    pub async fn ack(&self, entries: &[String]) -> Result<(), redis::RedisError> {
        self.consumer.ack(entries).await
    }

    /// Not done with these yet: read them again later (they stay pending).
    pub fn release(&self, entries: &[String]) {
        self.consumer.release(entries);
    }

    async fn reject(&self, entry: &StreamEntry, why: &str) -> Result<(), redis::RedisError> {
        self.consumer.reject(entry, why).await
    }
}
