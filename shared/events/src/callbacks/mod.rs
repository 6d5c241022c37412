//! The callback stream: WeChat's pushes (receipts, subscription events) as
//! the callback service handed them on, for the services they are for (the
//! log takes receipts; delivery, consent).
//!
//! On Redis: the stream `{prefix}callbacks:{callbacks}` (field `p`, a
//! [`HandedOn`] as JSON), one entry per push: WeChat's repeats of a push
//! carry the same [`HandedOn::event_id`] and are appended once. In one
//! process (`wxpush dev`, tests): [`MemoryPushes`]. Readers see either
//! through [`PushSource`].

mod follow;
mod memory;

pub use follow::{Handled, WAIT_AT_MOST, follow};
pub use memory::{MemoryPushReader, MemoryPushes};

use crate::EventError;
use crate::consumer::{ConsumerSettings, StreamConsumer, StreamEntry};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::time::Duration;
use wxpush_proto::v1::DeliveryStatus;
use wxpush_wechat::push::{Push, PushEvent, ReceiptOutcome};

/// The final status a receipt gives its message.
pub fn status_of(outcome: ReceiptOutcome) -> DeliveryStatus {
    match outcome {
        ReceiptOutcome::Delivered => DeliveryStatus::Delivered,
        ReceiptOutcome::Blocked => DeliveryStatus::Blocked,
        ReceiptOutcome::Undelivered => DeliveryStatus::Undelivered,
    }
}

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
    /// The trace of its receipt (`traceparent`...): its readers continue it.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub carrier: std::collections::HashMap<String, String>,
}

/// What a receipt says of one message WeChat accepted as `msg_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt<'a> {
    pub msg_id: &'a str,
    pub outcome: ReceiptOutcome,
}

impl HandedOn {
    /// The receipts the push carries: a template message's
    /// `TEMPLATESENDJOBFINISH`, or each item of a subscribe message's
    /// `subscribe_msg_sent_event` (error code 0: delivered).
    pub fn receipts(&self) -> Vec<Receipt<'_>> {
        match &self.push.event {
            PushEvent::TemplateReceipt { msg_id, outcome } => vec![Receipt {
                msg_id,
                outcome: *outcome,
            }],
            PushEvent::SubscribeSent { items } => items
                .iter()
                .filter(|i| !i.msg_id.is_empty())
                .map(|i| Receipt {
                    msg_id: &i.msg_id,
                    outcome: if i.error_code == 0 {
                        ReceiptOutcome::Delivered
                    } else {
                        ReceiptOutcome::Undelivered
                    },
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// When WeChat made the push: its `CreateTime` (whole seconds), else
    /// when it was received (ms since the epoch).
    pub fn pushed_at_ms(&self) -> i64 {
        match self.push.create_time {
            0 => self.received_at_ms,
            secs => secs * 1_000,
        }
    }

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
            carrier: Default::default(),
        }
    }
}

/// A reader of the pushes, for one consumer group (the log, delivery):
/// each push is handed out until it is acknowledged, at least once.
#[async_trait::async_trait]
pub trait PushSource: Send + Sync {
    /// The next pushes, at most `max`; empty when none came within about a
    /// second.
    async fn next_batch(&self, max: usize) -> Result<Vec<ReadPush>, EventError>;

    /// Done with these entries.
    async fn ack(&self, entries: &[String]) -> Result<(), EventError>;

    /// Not done with these yet (e.g. a receipt waiting for its record):
    /// handed out again when the reader is next idle, or about a second
    /// later while new pushes keep coming.
    fn release(&self, entries: &[String]);
}

/// Milliseconds since the epoch: the clock a push's `received_at_ms` is
/// read from and compared with.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One consumer group's reader of the callback stream on Redis.
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

    async fn reject(&self, entry: &StreamEntry, why: &str) -> Result<(), redis::RedisError> {
        self.consumer.reject(entry, why).await
    }
}

#[async_trait::async_trait]
impl PushSource for CallbackSource {
    /// An undecodable entry is set aside, never handed out.
    async fn next_batch(&self, max: usize) -> Result<Vec<ReadPush>, EventError> {
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

    async fn ack(&self, entries: &[String]) -> Result<(), EventError> {
        Ok(self.consumer.ack(entries).await?)
    }

    fn release(&self, entries: &[String]) {
        self.consumer.release(entries);
    }
}
