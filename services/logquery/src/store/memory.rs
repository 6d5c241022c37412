//! The in-memory record store: records ordered newest first by
//! (accepted_at, message id), so a cursor stays correct while new records
//! arrive (they sort before it). Bounded by a record count; the oldest go
//! first.

use crate::filter::{Cursor, Query, encode_cursor, matches, micros};
use crate::record::StoredRecord;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::RwLock;
use wxpush_proto::v1::{DeliveryEvent, LogRecord};

#[derive(Default)]
struct Inner {
    records: HashMap<String, StoredRecord>,
    order: BTreeSet<Cursor>,
    evicted: u64,
}

/// Shared by ingestion and the gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct MemoryLogStore {
    inner: Arc<RwLock<Inner>>,
    max_records: usize,
}

/// One page of results.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<LogRecord>,
    pub next_page_token: String,
}

impl MemoryLogStore {
    /// A store holding at most `max_records` messages.
    pub fn new(max_records: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_records: max_records.max(1),
        }
    }

    /// Folds one delivery event in; a replayed event changes nothing.
    pub async fn apply(&self, e: &DeliveryEvent) -> bool {
        let mut inner = self.inner.write().await;
        let inner = &mut *inner;
        let stored = inner
            .records
            .entry(e.message_id.clone())
            .or_insert_with(|| StoredRecord::new(e));
        let key = (
            micros(stored.record.accepted_at.as_ref()),
            e.message_id.clone(),
        );
        let changed = stored.apply(e);
        inner.order.insert(key);
        while inner.order.len() > self.max_records {
            if let Some(oldest) = inner.order.pop_first() {
                inner.records.remove(&oldest.1);
                inner.evicted += 1;
            }
        }
        changed
    }

    /// Records matching the query, newest first.
    pub async fn query(&self, q: &Query) -> Page {
        let inner = self.inner.read().await;
        let mut records = Vec::with_capacity(q.page_size);
        let mut last: Option<&Cursor> = None;
        let mut more = false;
        let candidates: Box<dyn Iterator<Item = &Cursor>> = match &q.after {
            Some(after) => Box::new(inner.order.range(..after.clone()).rev()),
            None => Box::new(inner.order.iter().rev()),
        };
        for key in candidates {
            let Some(stored) = inner.records.get(&key.1) else {
                continue;
            };
            if !matches(&q.filter, &stored.record) {
                continue;
            }
            if records.len() == q.page_size {
                more = true;
                break;
            }
            records.push(stored.record.clone());
            last = Some(key);
        }
        Page {
            records,
            next_page_token: if more {
                last.map(encode_cursor).unwrap_or_default()
            } else {
                String::new()
            },
        }
    }

    /// One message's record with its whole attempt history.
    pub async fn get(&self, message_id: &str) -> Option<LogRecord> {
        self.inner
            .read()
            .await
            .records
            .get(message_id)
            .map(|s| s.record.clone())
    }

    /// How many records were dropped to stay within the bound.
    pub async fn evicted(&self) -> u64 {
        self.inner.read().await.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::check_query;
    use wxpush_proto::Timestamp;
    use wxpush_proto::v1::{LogFilter, QueryLogsRequest};

    fn ev(id: &str, openid: &str, at: i64) -> DeliveryEvent {
        DeliveryEvent {
            event_id: format!("{id}/1"),
            message_id: id.into(),
            openid: openid.into(),
            attempt: 1,
            accepted_at: Some(Timestamp {
                seconds: at,
                nanos: 0,
            }),
            occurred_at: Some(Timestamp {
                seconds: at,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pages_newest_first_and_new_records_do_not_shift_pages() {
        let store = MemoryLogStore::new(100);
        for i in 0..5 {
            store.apply(&ev(&format!("m{i}"), "o1", 100 + i)).await;
        }
        let mut q = check_query(QueryLogsRequest {
            filter: Some(LogFilter {
                openid: "o1".into(),
                ..Default::default()
            }),
            page_size: 2,
            ..Default::default()
        })
        .unwrap();
        let p1 = store.query(&q).await;
        assert_eq!(ids(&p1), ["m4", "m3"]);
        store.apply(&ev("m9", "o1", 200)).await;
        q.after = check_query(QueryLogsRequest {
            page_token: p1.next_page_token,
            ..Default::default()
        })
        .unwrap()
        .after;
        let p2 = store.query(&q).await;
        assert_eq!(ids(&p2), ["m2", "m1"]);
    }

    #[tokio::test]
    async fn bounded_by_record_count() {
        let store = MemoryLogStore::new(3);
        for i in 0..5 {
            store.apply(&ev(&format!("m{i}"), "o", i)).await;
        }
        assert_eq!(store.evicted().await, 2);
        assert!(store.get("m0").await.is_none());
        assert!(store.get("m4").await.is_some());
    }

    fn ids(p: &Page) -> Vec<&str> {
        p.records.iter().map(|r| r.message_id.as_str()).collect()
    }
}
