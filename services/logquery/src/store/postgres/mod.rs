//! The PostgreSQL store: the log on disk, partitioned by day, for 10⁸
//! messages a day and a retention of weeks (schema in
//! `migrations/0001_log.sql`, partitions in [`partitions`]).
//!
//! A batch of events is one transaction: lock the batch's messages
//! (`pg_advisory_xact_lock`, in a fixed order, so replicas folding events
//! of the same message take turns), read their records, fold the events in
//! with the same [`StoredRecord::apply`] as every backend, then upsert the
//! records, attempts included, as column arrays. A replayed event is in the
//! record's `event_ids` and changes nothing, so no attempt is added twice.
//!
//! Queries walk one index range newest first with keyset paging; records
//! past retention are left out of every answer at once and leave the disk
//! with their day's partition.

mod partitions;
mod rows;
mod sql;

use super::{LogStore, Page, Retention, now_micros};
use crate::error::StoreError;
use crate::filter::{Query, micros};
use crate::metrics::{LogQueryMetrics, Removal};
use crate::record::StoredRecord;
use crate::stats::{StatsCounter, StatsQuery, status_name};
use partitions::{Partitions, day_of};
use rows::{RecordColumns, SELECT_RECORDS};
use sql::{ACCEPTED_MICROS, Condition};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use wxpush_postgres::{Micros, Migration, Migrations, Pool, SqlState};
use wxpush_proto::v1::{DeliveryEvent, LogRecord, StatsGroupBy, StatsSeries};

/// The log's schema history.
pub const MIGRATIONS: Migrations = Migrations {
    component: "logquery",
    steps: &[
        Migration {
            version: 1,
            name: "log records and attempts, partitioned by day",
            sql: include_str!("../../../migrations/0001_log.sql"),
        },
        Migration {
            version: 2,
            name: "records by WeChat msgid, receipt statuses",
            sql: include_str!("../../../migrations/0002_receipts.sql"),
        },
        Migration {
            version: 3,
            name: "the caller that sent each message",
            sql: include_str!("../../../migrations/0003_caller.sql"),
        },
    ],
};

/// Connections one logquery replica keeps.
const POOL_SIZE: usize = 16;

/// Longest one operation may take: a stalled database becomes an error
/// (ingestion retries the batch; a query answers UNAVAILABLE), never a hang.
const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `op` within [`OPERATION_TIMEOUT`].
async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    wxpush_postgres::bounded(OPERATION_TIMEOUT, op, StoreError::Backend).await
}

/// Records in PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct PostgresLogStore {
    pool: Pool,
    retention: Retention,
    partitions: Arc<Partitions>,
}

impl From<wxpush_postgres::PgError> for StoreError {
    fn from(e: wxpush_postgres::PgError) -> Self {
        // The log's tables have no CHECK constraint: a check violation is
        // a row whose day has no partition.
        if e.code() == Some(&SqlState::CHECK_VIOLATION) {
            Self::NoPartition(wxpush_postgres::describe(&e))
        } else {
            Self::Backend(wxpush_postgres::describe(&e))
        }
    }
}

impl From<wxpush_postgres::PoolError> for StoreError {
    fn from(e: wxpush_postgres::PoolError) -> Self {
        Self::Backend(wxpush_postgres::describe_pool(&e))
    }
}

/// A stable 64-bit key per message for its advisory lock: the same in
/// every replica.
fn lock_key(message_id: &str) -> i64 {
    wxpush_postgres::fnv1a(message_id.as_bytes()) as i64
}

impl PostgresLogStore {
    /// Opens the pool (lazily; nothing is dialled here).
    pub fn open(url: &str, retention: Retention) -> Result<Self, StoreError> {
        let pool = wxpush_postgres::open(url, "wxpush-logquery", POOL_SIZE)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            pool,
            retention,
            partitions: Arc::default(),
        })
    }

    /// Applies the schema and makes the partitions ahead.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        MIGRATIONS.apply(&self.pool).await?;
        self.make_ahead().await?;
        Ok(())
    }

    /// Partitions for yesterday up to two days from now.
    async fn make_ahead(&self) -> Result<(), StoreError> {
        let today = day_of(now_micros());
        self.partitions
            .ensure(&self.pool, today - 1..=today + 2)
            .await
    }

    /// Folds a batch into its records in one transaction; the changed
    /// records.
    async fn apply_once(&self, events: &[&DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError> {
        let keys: BTreeSet<(i64, &str)> = events
            .iter()
            .map(|e| (micros(e.accepted_at.as_ref()), e.message_id.as_str()))
            .collect();
        let mut locks: Vec<i64> = keys.iter().map(|(_, m)| lock_key(m)).collect();
        locks.sort_unstable();
        locks.dedup();
        let at: Vec<Micros> = keys.iter().map(|(a, _)| Micros(*a)).collect();
        let ids: Vec<&str> = keys.iter().map(|(_, m)| *m).collect();

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) k",
            &[&locks],
        )
        .await?;
        let read = format!(
            "{SELECT_RECORDS} WHERE (r.accepted_at, r.message_id) IN \
             (SELECT * FROM unnest($1::timestamptz[], $2::text[]))"
        );
        let stmt = tx.prepare_cached(&read).await?;
        let mut records: HashMap<String, StoredRecord> = HashMap::with_capacity(keys.len());
        for row in tx.query(&stmt, &[&at, &ids]).await? {
            let stored = rows::stored_record(&row)?;
            records.insert(stored.record.message_id.clone(), stored);
        }
        let mut changed_ids = Vec::new();
        for e in events {
            let stored = records
                .entry(e.message_id.clone())
                .or_insert_with(|| StoredRecord::new(e));
            if stored.apply(e) {
                changed_ids.push(e.message_id.as_str());
            }
        }
        changed_ids.sort_unstable();
        changed_ids.dedup();
        let mut columns = RecordColumns::default();
        let mut changed = Vec::with_capacity(changed_ids.len());
        for id in changed_ids {
            if let Some(stored) = records.get(id) {
                columns.push(stored);
                changed.push(stored.record.clone());
            }
        }
        if !columns.is_empty() {
            let stmt = tx.prepare_cached(rows::UPSERT_RECORDS).await?;
            tx.execute(&stmt, &columns.params()).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// The lowest accepted_at still kept.
    fn floor(&self) -> i64 {
        self.retention.cutoff(now_micros())
    }
}

#[async_trait::async_trait]
impl LogStore for PostgresLogStore {
    async fn apply(&self, events: &[DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError> {
        bounded(async {
            let floor = self.floor();
            let kept: Vec<&DeliveryEvent> = events
                .iter()
                .filter(|e| micros(e.accepted_at.as_ref()) >= floor)
                .collect();
            if kept.is_empty() {
                return Ok(Vec::new());
            }
            let days = kept.iter().map(|e| day_of(micros(e.accepted_at.as_ref())));
            self.partitions.ensure(&self.pool, days).await?;
            match self.apply_once(&kept).await {
                // Another replica dropped or never made a day this one thought
                // it knew: make it and go again.
                Err(StoreError::NoPartition(reason)) => {
                    tracing::warn!(%reason, "a log partition was missing; making it");
                    self.partitions.forget();
                    let days = kept.iter().map(|e| day_of(micros(e.accepted_at.as_ref())));
                    self.partitions.ensure(&self.pool, days).await?;
                    self.apply_once(&kept).await
                }
                other => other,
            }
        })
        .await
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        bounded(async {
            let c = Condition::from_filter(&q.filter, self.floor(), q.after.as_ref());
            let limit = q.page_size as i64 + 1;
            let sql = format!(
                "{SELECT_RECORDS}{} ORDER BY r.accepted_at DESC, r.message_id DESC LIMIT ${}",
                c.sql(),
                c.next_param()
            );
            let client = self.pool.get().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let rows = client.query(&stmt, &c.params(&[&limit])).await?;
            let more = rows.len() > q.page_size;
            let mut records = Vec::with_capacity(rows.len().min(q.page_size));
            for row in rows.iter().take(q.page_size) {
                records.push(rows::stored_record(row)?.record);
            }
            Ok(Page::new(records, more))
        })
        .await
    }

    async fn get(&self, message_id: &str) -> Result<Option<LogRecord>, StoreError> {
        bounded(async {
            let client = self.pool.get().await?;
            let sql =
                format!("{SELECT_RECORDS} WHERE r.message_id = $1 AND r.accepted_at >= $2 LIMIT 1");
            let stmt = client.prepare_cached(&sql).await?;
            let row = client
                .query_opt(&stmt, &[&message_id, &Micros(self.floor())])
                .await?;
            Ok(match row {
                Some(row) => Some(rows::stored_record(&row)?.record),
                None => None,
            })
        })
        .await
    }

    async fn by_wechat_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        bounded(async {
            let client = self.pool.get().await?;
            let sql = format!(
                "{SELECT_RECORDS} WHERE r.app_id = $1 AND r.wechat_msgid = $2 AND r.wechat_msgid <> '' \
                 AND r.accepted_at >= $3 ORDER BY r.accepted_at DESC LIMIT 1"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let row = client
                .query_opt(&stmt, &[&app_id, &wechat_msgid, &Micros(self.floor())])
                .await?;
            Ok(match row {
                Some(row) => Some(rows::stored_record(&row)?.record),
                None => None,
            })
        })
        .await
    }

    async fn stats(&self, q: &StatsQuery) -> Result<Vec<StatsSeries>, StoreError> {
        bounded(async {
            let c = Condition::from_filter(&q.filter, self.floor(), None);
            let group = match q.group_by {
                StatsGroupBy::Errcode => "r.errcode::text",
                StatsGroupBy::Template => "r.template_key",
                StatsGroupBy::Status | StatsGroupBy::Unspecified => "r.status::text",
            };
            let b = c.next_param();
            // Buckets aligned to the epoch, floored also before 1970.
            let sql = format!(
                "SELECT {group}, floor({ACCEPTED_MICROS}::numeric / ${b}::bigint)::bigint * ${b}::bigint, count(*) \
                 FROM log_records r{} GROUP BY 1, 2",
                c.sql()
            );
            let client = self.pool.get().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let mut counter = StatsCounter::default();
            for row in client.query(&stmt, &c.params(&[&q.bucket])).await? {
                let raw: String = row.try_get(0)?;
                let group = match q.group_by {
                    StatsGroupBy::Status | StatsGroupBy::Unspecified => {
                        raw.parse().map_or(raw, status_name)
                    }
                    _ => raw,
                };
                let n: i64 = row.try_get(2)?;
                counter.add(group, row.try_get(1)?, n.max(0) as u64);
            }
            Ok(counter.into_series())
        })
        .await
    }

    async fn enforce_retention(&self) -> Result<u64, StoreError> {
        bounded(async {
            self.make_ahead().await?;
            let removed = self
                .partitions
                .drop_before(&self.pool, self.floor())
                .await?;
            if removed > 0 {
                LogQueryMetrics::global().removed(Removal::Retention, removed);
            }
            Ok(removed)
        })
        .await
    }
}
