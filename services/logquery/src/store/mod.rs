//! Record stores: one trait, three backends. [`MemoryLogStore`] for
//! `wxpush dev` and a single replica (bounded by a record count),
//! [`RedisLogStore`] shared by replicas and surviving restarts (bounded by
//! retention, in RAM), and [`PostgresLogStore`] on disk, partitioned by day,
//! for the log at scale. All answer every query from indexes, walking only
//! the smallest candidate set, never every record.

mod memory;
mod postgres;
mod redis;

use crate::error::StoreError;
use crate::filter::Query;
use crate::stats::StatsQuery;
pub use memory::MemoryLogStore;
pub use postgres::{MIGRATIONS, PostgresLogStore};
pub use redis::RedisLogStore;
use std::time::Duration;
use wxpush_proto::v1::{DeliveryEvent, LogRecord, StatsSeries};

/// One page of results.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<LogRecord>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl Page {
    /// A page of `records` (at most the page size); with `more`, the token
    /// of the page after its last record.
    pub fn new(records: Vec<LogRecord>, more: bool) -> Self {
        let next_page_token = match records.last() {
            Some(r) if more => crate::filter::encode_cursor(&(
                crate::filter::micros(r.accepted_at.as_ref()),
                r.message_id.clone(),
            )),
            _ => String::new(),
        };
        Self {
            records,
            next_page_token,
        }
    }
}

/// Where records live. Implementations are shared by ingestion and the
/// gRPC handlers.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// Folds events in (in order); a replayed event changes nothing. Returns
    /// the records that changed, for `TailLogs`.
    async fn apply(&self, events: &[DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError>;

    /// Records matching the query, newest first by (accepted_at, message id).
    async fn query(&self, q: &Query) -> Result<Page, StoreError>;

    /// One message's record with its whole attempt history.
    async fn get(&self, message_id: &str) -> Result<Option<LogRecord>, StoreError>;

    /// The record of the message WeChat accepted as `wechat_msgid` for
    /// `app_id` (WeChat's receipts name a message so). `None` also on a
    /// backend that keeps no such index (Redis: receipts need the memory
    /// or the postgres log).
    async fn by_wechat_msgid(
        &self,
        _app_id: &str,
        _wechat_msgid: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        Ok(None)
    }

    /// Counts per bucket and group.
    async fn stats(&self, q: &StatsQuery) -> Result<Vec<StatsSeries>, StoreError>;

    /// Drops what is older than the retention; returns how many index
    /// entries or records went. Called periodically.
    async fn enforce_retention(&self) -> Result<u64, StoreError>;

    /// Records dropped to stay within a bound (memory: the record count).
    fn evicted(&self) -> u64 {
        0
    }
}

/// How long records are kept; both backends take it.
#[derive(Debug, Clone, Copy)]
pub struct Retention(pub Duration);

impl Retention {
    /// The oldest accepted_at (µs) still kept at `now_micros`.
    pub fn cutoff(&self, now_micros: i64) -> i64 {
        now_micros - self.0.as_micros() as i64
    }
}

/// Now in µs since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
