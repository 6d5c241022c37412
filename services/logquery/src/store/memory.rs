//! The in-memory store: records by message id, the (accepted_at, message id)
//! order, and one `BTreeSet` of that order per indexed field value, so a
//! query walks only the smallest matching set, newest first from its cursor.
//! Bounded by a record count (the oldest go first) and by retention;
//! [`MemoryLogStore::evicted`] counts what was dropped.

use super::{LogStore, Page, Retention, now_micros};
use crate::error::StoreError;
use crate::filter::{Cursor, Query, bounds, matches, micros};
use crate::metrics::{LogQueryMetrics, Removal};
use crate::record::StoredRecord;
use crate::stats::{StatsCounter, StatsQuery};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::RwLock;
use wxpush_proto::v1::{DeliveryEvent, LogFilter, LogRecord, StatsSeries};

/// An indexed field (a tag) and its value.
type IndexKey = (u8, String);

/// The index entries of a record; empty strings are not indexed (an empty
/// filter field matches anything, so it is never looked up).
fn record_keys(r: &LogRecord) -> Vec<IndexKey> {
    let mut keys = vec![(b's', r.status.to_string()), (b'e', r.errcode.to_string())];
    for (tag, v) in [
        (b'o', &r.openid),
        (b't', &r.trace_id),
        (b'a', &r.app_id),
        (b'k', &r.template_key),
        (b'd', &r.template_id),
        (b'c', &r.caller),
    ] {
        if !v.is_empty() {
            keys.push((tag, v.clone()));
        }
    }
    if !r.wechat_msgid.is_empty() {
        keys.push((b'w', wechat_key(&r.app_id, &r.wechat_msgid)));
    }
    keys
}

/// The index key of a WeChat msgid (receipts name the message by it).
fn wechat_key(app_id: &str, wechat_msgid: &str) -> String {
    format!("{}:{app_id}/{wechat_msgid}", app_id.len())
}

/// The index sets a filter's records are all in.
fn filter_keys(f: &LogFilter) -> Vec<IndexKey> {
    let mut keys = Vec::new();
    for (tag, v) in [
        (b'o', f.openid.clone()),
        (b't', f.trace_id.to_ascii_lowercase()),
        (b'a', f.app_id.clone()),
        (b'k', f.template_key.clone()),
        (b'd', f.template_id.clone()),
        (b'c', f.caller.clone()),
    ] {
        if !v.is_empty() {
            keys.push((tag, v));
        }
    }
    if f.status != 0 {
        keys.push((b's', f.status.to_string()));
    }
    if let Some(errcode) = f.errcode {
        keys.push((b'e', errcode.to_string()));
    }
    keys
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, StoredRecord>,
    order: BTreeSet<Cursor>,
    index: HashMap<IndexKey, BTreeSet<Cursor>>,
}

impl Inner {
    fn remove(&mut self, key: &Cursor) {
        self.order.remove(key);
        if let Some(stored) = self.records.remove(&key.1) {
            for k in record_keys(&stored.record) {
                if let Some(set) = self.index.get_mut(&k) {
                    set.remove(key);
                    if set.is_empty() {
                        self.index.remove(&k);
                    }
                }
            }
        }
    }

    /// The candidates of a filter, newest first below `upper`, down to
    /// `lower`: the smallest index set among the filter's fields.
    fn candidates<'a>(
        &'a self,
        f: &LogFilter,
        lower: i64,
        upper: Option<&Cursor>,
    ) -> Box<dyn Iterator<Item = &'a StoredRecord> + 'a> {
        static EMPTY: BTreeSet<Cursor> = BTreeSet::new();
        let keys = filter_keys(f);
        let set = if keys.is_empty() {
            &self.order
        } else {
            keys.iter()
                .map(|k| self.index.get(k).unwrap_or(&EMPTY))
                .min_by_key(|s| s.len())
                .unwrap_or(&EMPTY)
        };
        let walk: Box<dyn Iterator<Item = &Cursor>> = match upper {
            Some(u) => Box::new(set.range(..u.clone()).rev()),
            None => Box::new(set.iter().rev()),
        };
        Box::new(
            walk.take_while(move |k| k.0 >= lower)
                .filter_map(|k| self.records.get(&k.1)),
        )
    }
}

/// Shared by ingestion and the gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct MemoryLogStore {
    inner: Arc<RwLock<Inner>>,
    max_records: usize,
    retention: Retention,
    evicted: Arc<AtomicU64>,
}

impl MemoryLogStore {
    /// A store holding at most `max_records` messages for `retention`.
    pub fn new(max_records: usize, retention: Retention) -> Self {
        Self {
            inner: Arc::default(),
            max_records: max_records.max(1),
            retention,
            evicted: Arc::default(),
        }
    }

    /// How many records there are.
    pub async fn len(&self) -> usize {
        self.inner.read().await.records.len()
    }

    /// Whether the store is empty.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

#[async_trait::async_trait]
impl LogStore for MemoryLogStore {
    async fn apply(&self, events: &[DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError> {
        let cutoff = self.retention.cutoff(now_micros());
        let mut inner = self.inner.write().await;
        let inner = &mut *inner;
        let mut changed = Vec::new();
        for e in events {
            if micros(e.accepted_at.as_ref()) < cutoff {
                continue;
            }
            let stored = inner
                .records
                .entry(e.message_id.clone())
                .or_insert_with(|| StoredRecord::new(e));
            let key = (
                micros(stored.record.accepted_at.as_ref()),
                e.message_id.clone(),
            );
            let before = record_keys(&stored.record);
            if !stored.apply(e) {
                continue;
            }
            let after = record_keys(&stored.record);
            changed.push(stored.record.clone());
            for k in before.iter().filter(|k| !after.contains(k)) {
                if let Some(set) = inner.index.get_mut(k) {
                    set.remove(&key);
                }
            }
            for k in after {
                inner.index.entry(k).or_default().insert(key.clone());
            }
            inner.order.insert(key);
        }
        let mut evicted = 0;
        while inner.order.len() > self.max_records {
            let Some(oldest) = inner.order.first().cloned() else {
                break;
            };
            inner.remove(&oldest);
            evicted += 1;
        }
        if evicted > 0 {
            let total = self.evicted.fetch_add(evicted, Ordering::Relaxed) + evicted;
            LogQueryMetrics::global().removed(Removal::MaxRecords, evicted);
            tracing::debug!(evicted, total, "log records evicted (max_records)");
        }
        Ok(changed)
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        let inner = self.inner.read().await;
        let (lower, upper) = bounds(&q.filter, q.after.as_ref());
        let mut records = Vec::with_capacity(q.page_size);
        let mut more = false;
        for stored in inner.candidates(&q.filter, lower, upper.as_ref()) {
            if !matches(&q.filter, &stored.record) {
                continue;
            }
            if records.len() == q.page_size {
                more = true;
                break;
            }
            records.push(stored.record.clone());
        }
        Ok(Page::new(records, more))
    }

    async fn by_wechat_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        let inner = self.inner.read().await;
        let found = inner
            .index
            .get(&(b'w', wechat_key(app_id, wechat_msgid)))
            .and_then(|set| set.iter().next_back())
            .and_then(|key| inner.records.get(&key.1))
            .map(|s| s.record.clone());
        Ok(found)
    }

    async fn get(&self, message_id: &str) -> Result<Option<LogRecord>, StoreError> {
        let inner = self.inner.read().await;
        Ok(inner.records.get(message_id).map(|s| s.record.clone()))
    }

    async fn stats(&self, q: &StatsQuery) -> Result<Vec<StatsSeries>, StoreError> {
        let inner = self.inner.read().await;
        let mut counter = StatsCounter::default();
        let upper = (q.end, String::new());
        for stored in inner.candidates(&q.filter, q.start, Some(&upper)) {
            if matches(&q.filter, &stored.record) {
                counter.add_record(q, &stored.record);
            }
        }
        Ok(counter.into_series())
    }

    async fn enforce_retention(&self) -> Result<u64, StoreError> {
        let cutoff = self.retention.cutoff(now_micros());
        let mut inner = self.inner.write().await;
        let mut n = 0;
        while let Some(oldest) = inner.order.first().cloned() {
            if oldest.0 >= cutoff {
                break;
            }
            inner.remove(&oldest);
            n += 1;
        }
        if n > 0 {
            let total = self.evicted.fetch_add(n, Ordering::Relaxed) + n;
            LogQueryMetrics::global().removed(Removal::Retention, n);
            tracing::info!(
                removed = n,
                evicted_total = total,
                "log records past retention removed"
            );
        }
        Ok(n)
    }

    fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wxpush_proto::Timestamp;

    fn ev(id: &str, at: i64) -> DeliveryEvent {
        let ts = Some(Timestamp {
            seconds: at,
            nanos: 0,
        });
        DeliveryEvent {
            event_id: format!("{id}/1"),
            message_id: id.into(),
            openid: "o".into(),
            attempt: 1,
            accepted_at: ts,
            occurred_at: ts,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn bounded_by_record_count_and_retention() {
        let now = now_micros() / 1_000_000;
        let metrics = LogQueryMetrics::global();
        let evicted_before = metrics.removed_so_far(Removal::MaxRecords);
        let expired_before = metrics.removed_so_far(Removal::Retention);
        let store = MemoryLogStore::new(3, Retention(Duration::from_secs(100)));
        for i in 0..5 {
            store
                .apply(&[ev(&format!("m{i}"), now - 50 + i)])
                .await
                .unwrap();
        }
        assert_eq!(store.evicted(), 2);
        let evicted = metrics.removed_so_far(Removal::MaxRecords) - evicted_before;
        assert_eq!(evicted, 2, "the metric counts evictions");
        assert!(store.get("m0").await.unwrap().is_none());
        assert!(store.get("m4").await.unwrap().is_some());
        // Already past retention: not stored at all.
        assert!(
            store
                .apply(&[ev("old", now - 200)])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.len().await, 3);
        let short = MemoryLogStore::new(10, Retention(Duration::from_secs(100)));
        short.apply(&[ev("a", now - 99)]).await.unwrap();
        short.apply(&[ev("b", now)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(short.enforce_retention().await.unwrap(), 1);
        assert!(short.get("a").await.unwrap().is_none());
        assert_eq!(short.evicted(), 1);
        let expired = metrics.removed_so_far(Removal::Retention) - expired_before;
        assert_eq!(expired, 1, "the metric counts retention");
    }
}
