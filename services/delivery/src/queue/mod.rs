//! The durable queue behind `SendAsync` and `SendBatch`, with what lives
//! beside it: the delayed set (retries, `send_at`, quiet hours, deferrals),
//! the dead-letter store and each message's live status.
//!
//! Delivery is at-least-once from the queue's side: a message is
//! acknowledged only after its next step is stored (re-queued, dead-lettered
//! or finished), and a message held by a worker that died is claimed by
//! another after an idle timeout (on Redis: the shared
//! [`wxpush_events::StreamConsumer`]). A second send to WeChat is stopped by
//! the finished status and by `client_msg_id` (the message id).

mod entry;
mod memory;
mod metrics;
mod postgres;
mod redis;

pub use memory::MemoryQueue;
pub use metrics::QueueMetrics;
pub use postgres::{DeadLettersOnPostgres, MIGRATIONS};
pub use redis::RedisQueue;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use wxpush_proto::v1::{DeadLetter, DeadLetterFilter, DeliveryResult, DeliveryStatus};

/// A message waiting to be delivered: the request as it was accepted, plus
/// what its attempts so far left behind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub message_id: String,
    /// The `traceparent` of the accepting call: delivery continues its trace.
    pub traceparent: String,
    /// The accepting call's trace context and Istio headers, as headers.
    #[serde(default)]
    pub carrier: HashMap<String, String>,
    pub app_id: String,
    pub template_key: String,
    pub openid: String,
    pub variables: HashMap<String, String>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub page: String,
    #[serde(default)]
    pub miniprogram: Option<(String, String)>,
    pub accepted_at_ms: i64,
    /// Attempts made (numbering in the log).
    #[serde(default)]
    pub attempts: u32,
    /// Transient failures counted against the attempt budget (failures while
    /// WeChat is down as a whole, i.e. the breaker opened, are not).
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub token_refreshed: bool,
    #[serde(default)]
    pub last_errcode: i64,
    #[serde(default)]
    pub last_errmsg: String,
    /// Who sent it (the configured caller's name).
    #[serde(default)]
    pub caller: String,
}

impl QueuedMessage {
    /// The counters its attempts so far left.
    pub fn tally(&self) -> crate::decision::Tally {
        crate::decision::Tally {
            attempts: self.attempts,
            failures: self.failures,
            token_refreshed: self.token_refreshed,
        }
    }

    /// Takes the counters after a decision.
    pub fn set_tally(&mut self, t: crate::decision::Tally) {
        self.attempts = t.attempts;
        self.failures = t.failures;
        self.token_refreshed = t.token_refreshed;
    }

    /// A message as accepted now: the request, its id and app, and the
    /// current trace (the queue hop continues it).
    pub fn accepted(
        req: &wxpush_proto::v1::SendRequest,
        message_id: &str,
        app_id: &str,
        trace: &wxpush_server::trace_context::TraceContext,
    ) -> Self {
        Self {
            message_id: message_id.to_string(),
            traceparent: trace.child().header_value(),
            carrier: wxpush_server::rpc::propagation::current_carrier(),
            app_id: app_id.to_string(),
            template_key: req.template_key.clone(),
            openid: req.openid.clone(),
            variables: req.variables.clone(),
            url: req.url.clone(),
            page: req.page.clone(),
            miniprogram: req
                .miniprogram
                .as_ref()
                .map(|m| (m.appid.clone(), m.pagepath.clone())),
            accepted_at_ms: now_ms(),
            caller: wxpush_server::caller::Caller::current().name().to_string(),
            ..Default::default()
        }
    }

    /// The request it was accepted as (for rendering again at delivery).
    pub fn to_send_request(&self) -> wxpush_proto::v1::SendRequest {
        wxpush_proto::v1::SendRequest {
            app_id: self.app_id.clone(),
            template_key: self.template_key.clone(),
            openid: self.openid.clone(),
            variables: self.variables.clone(),
            url: self.url.clone(),
            miniprogram: self.miniprogram.as_ref().map(|(appid, pagepath)| {
                wxpush_proto::v1::MiniProgramTarget {
                    appid: appid.clone(),
                    pagepath: pagepath.clone(),
                }
            }),
            page: self.page.clone(),
            ..Default::default()
        }
    }
}

/// A message handed to a worker; `id` acknowledges it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub message: QueuedMessage,
}

/// A dead letter with the message to replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadRecord {
    pub message: QueuedMessage,
    pub template_id: String,
    pub trace_id: String,
    pub dead_at_ms: i64,
}

impl DeadRecord {
    /// The API form.
    pub fn to_proto(&self) -> DeadLetter {
        DeadLetter {
            message_id: self.message.message_id.clone(),
            app_id: self.message.app_id.clone(),
            template_key: self.message.template_key.clone(),
            openid: self.message.openid.clone(),
            errcode: self.message.last_errcode,
            errmsg: self.message.last_errmsg.clone(),
            attempts: self.message.attempts,
            dead_at: Some(wxpush_proto::timestamp(crate::queue::ms_to_time(
                self.dead_at_ms,
            ))),
            trace_id: self.trace_id.clone(),
        }
    }

    /// Whether it matches a dead-letter filter (unset fields match all).
    pub fn matches(&self, f: &DeadLetterFilter) -> bool {
        let t = self.dead_at_ms;
        let range_ok = f.time_range.as_ref().is_none_or(|r| {
            r.start.as_ref().is_none_or(|s| t >= ts_ms(s))
                && r.end.as_ref().is_none_or(|e| t < ts_ms(e))
        });
        (f.app_id.is_empty() || f.app_id == self.message.app_id)
            && (f.template_key.is_empty() || f.template_key == self.message.template_key)
            && f.errcode.is_none_or(|e| e == self.message.last_errcode)
            && range_ok
    }
}

/// How much is waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Ready or held by a worker.
    pub ready: u64,
    /// Waiting for their time (retries, scheduled, deferred).
    pub delayed: u64,
    /// Age of the oldest ready message.
    pub oldest_age: Duration,
    pub dead: u64,
}

/// The backend could not be reached or held something unreadable.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue backend: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("queue backend: {0}")]
    Open(#[from] wxpush_redis::OpenError),
    #[error("dead-letter store: {0}")]
    Postgres(String),
    /// A stored record that does not decode (dead letter, status).
    #[error("queue record {what} unreadable: {why}")]
    Corrupt { what: String, why: String },
}

impl QueueError {
    pub(crate) fn corrupt(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

/// One page of dead letters, newest first.
#[derive(Debug, Default)]
pub struct DeadPage {
    pub records: Vec<DeadRecord>,
    pub next_page_token: String,
}

/// The queue, its delayed set, dead letters and statuses.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues messages, ready at once or (with `not_before_ms` in the
    /// future) when their time comes.
    async fn push(&self, messages: &[QueuedMessage], not_before_ms: i64) -> Result<(), QueueError>;
    /// Moves delayed messages whose time has come to the ready queue.
    async fn promote_due(&self, now_ms: i64) -> Result<usize, QueueError>;
    /// Up to `max` messages for this process's workers: those a dead
    /// worker left (held longer than `claim_idle_ms`), then ready ones,
    /// waiting up to `poll_ms` for them.
    async fn next_batch(&self, max: usize) -> Result<Vec<Delivery>, QueueError>;
    /// Done with a pulled message.
    async fn ack(&self, id: &str) -> Result<(), QueueError>;
    /// Not done with a pulled message (its step could not be stored): hand
    /// it out again soon rather than after the claim timeout. A backend
    /// that re-delivers by itself needs nothing.
    fn release(&self, _id: &str) {}
    async fn depth(&self, now_ms: i64) -> Result<Depth, QueueError>;

    /// Stores a message's live status, unless the stored one is further on
    /// ([`rank`]): a worker holding a stale copy of a message never moves it
    /// backwards, and a late SENT never undoes WeChat's receipt. `false`
    /// when refused.
    ///
    /// A SENT status with WeChat's msgid, when stored, also notes the
    /// message under that msgid for its app, as long as the status is kept
    /// ([`Self::by_msgid`]: WeChat's receipt names the msgid only), never
    /// before the status, so a receipt that finds the message finds it SENT.
    async fn set_status(&self, result: &DeliveryResult) -> Result<bool, QueueError>;
    /// The message WeChat accepted as `wechat_msgid` for `app_id`.
    async fn by_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<String>, QueueError>;
    /// Stores a live status over a final one: only an operator's replay of
    /// a dead letter reopens a message.
    async fn reopen(&self, result: &DeliveryResult) -> Result<(), QueueError>;
    async fn status(&self, message_id: &str) -> Result<Option<DeliveryResult>, QueueError>;
    /// Notes that attempt `n` of a message is about to reach WeChat. For an
    /// API with no `client_msg_id` (subscribe messages) a worker that later
    /// finds the note ahead of the message's stored attempts knows that
    /// attempt's outcome was never stored: its worker died during it.
    async fn begin_attempt(&self, message_id: &str, n: u32) -> Result<(), QueueError>;
    /// The last attempt noted by [`Self::begin_attempt`].
    async fn begun_attempt(&self, message_id: &str) -> Result<Option<u32>, QueueError>;

    async fn bury(&self, record: &DeadRecord) -> Result<(), QueueError>;
    /// Dead letters matching `filter`, newest first, after `page_token`.
    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError>;
    /// Removes and returns the named dead letters (unknown ids are skipped).
    async fn exhume(&self, message_ids: &[String]) -> Result<Vec<DeadRecord>, QueueError>;
}

/// The msgid a status is noted under ([`Queue::set_status`]): WeChat's,
/// once the message is SENT.
pub(crate) fn noted_msgid(result: &DeliveryResult) -> Option<&str> {
    (result.status == DeliveryStatus::Sent as i32 && !result.wechat_msgid.is_empty())
        .then_some(result.wechat_msgid.as_str())
}

/// How many dead letters to keep and for how long (both backends): past
/// either, the oldest are dropped when a new one is buried, so a flood of
/// failures cannot fill the backend.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterBounds {
    pub retention_ms: i64,
    pub max: u64,
}

impl DeadLetterBounds {
    pub fn of(s: &crate::config::QueueSettings) -> Self {
        Self {
            retention_ms: (s.dead_letter_retention_secs.min(i64::MAX as u64 / 1000) * 1000) as i64,
            max: s.max_dead_letters.max(1),
        }
    }
}

/// How far a status has come: 0 live (accepted, queued, retrying, held),
/// 1 final for delivery (SENT, FAILED, DEAD), 2 WeChat's receipt
/// (DELIVERED, BLOCKED, UNDELIVERED). A stored status is replaced only by
/// one of its rank or above (and by an operator's replay).
pub fn rank(status: i32) -> u8 {
    use wxpush_proto::v1::DeliveryStatus::*;
    match wxpush_proto::v1::DeliveryStatus::try_from(status) {
        Ok(Delivered | Blocked | Undelivered) => 2,
        Ok(Sent | Failed | Dead) => 1,
        _ => 0,
    }
}

/// Whether a status is final: nothing but a receipt (after SENT) or a
/// replay (after FAILED, DEAD) changes it again.
pub fn is_final(status: i32) -> bool {
    rank(status) >= 1
}

/// How long a status is kept: a final one `status_ttl`; one still live
/// also as long as the message may wait (`send_at` up to
/// [`wxpush_server::limits::MAX_SEND_AT_AHEAD_SECS`] ahead), so a message
/// scheduled past the status TTL is not `NOT_FOUND` while it waits.
pub fn status_keep(status: i32, status_ttl: Duration) -> Duration {
    if is_final(status) {
        status_ttl
    } else {
        status_ttl + Duration::from_secs(wxpush_server::limits::MAX_SEND_AT_AHEAD_SECS as u64)
    }
}

/// How long a message's live status is kept by default
/// (`queue.status_ttl_secs`).
pub const STATUS_TTL_SECS: u64 = 7 * 86_400;

/// The shortest `queue.status_ttl_secs`: a status must outlive the steps
/// of a message still being worked on.
pub const MIN_STATUS_TTL_SECS: u64 = 3_600;

pub(crate) fn ms_to_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Milliseconds since the epoch of a timestamp (saturating: requests are
/// checked against the valid range, stored data is not trusted either).
pub(crate) fn ts_ms(t: &wxpush_proto::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Dead-letter page cursor: (dead_at_ms, message_id) of the last record.
pub(crate) fn encode_cursor(r: &DeadRecord) -> String {
    format!("{}.{}", r.dead_at_ms, r.message.message_id)
}

pub fn decode_cursor(token: &str) -> Option<(i64, String)> {
    if token.is_empty() {
        return None;
    }
    let (ms, id) = token.split_once('.')?;
    Some((ms.parse().ok()?, id.to_string()))
}
