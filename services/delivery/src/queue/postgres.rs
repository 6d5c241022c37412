//! Dead letters in PostgreSQL (`backend.kind: postgres`), around a queue
//! that keeps everything else (the Redis queue: the hot path stays there).
//! Dead letters are what an operator reads and replays days later, and
//! what a bad release can produce by the hundred thousand: on disk, in SQL
//! (schema in `migrations/0001_dead_letters.sql`), bounded by the same
//! retention and cap as on the other backends.

use super::{
    DeadLetterBounds, DeadPage, DeadRecord, Delivery, Depth, Queue, QueueError, QueuedMessage,
    decode_cursor, encode_cursor, now_ms, ts_ms,
};
use std::sync::Arc;
use wxpush_postgres::{Micros, Migration, Migrations, Pool};
use wxpush_proto::v1::{DeadLetterFilter, DeliveryResult};

/// The dead letters' schema history.
pub const MIGRATIONS: Migrations = Migrations {
    component: "delivery",
    steps: &[Migration {
        version: 1,
        name: "dead letters",
        sql: include_str!("../../migrations/0001_dead_letters.sql"),
    }],
};

impl From<wxpush_postgres::PgError> for QueueError {
    fn from(e: wxpush_postgres::PgError) -> Self {
        Self::Postgres(wxpush_postgres::describe(&e))
    }
}

impl From<wxpush_postgres::PoolError> for QueueError {
    fn from(e: wxpush_postgres::PoolError) -> Self {
        Self::Postgres(wxpush_postgres::describe_pool(&e))
    }
}

fn at(ms: i64) -> Micros {
    Micros(ms.saturating_mul(1000))
}

/// Longest one dead-letter operation may take: a stalled database becomes
/// an error (the worker retries), never a hang.
const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `op` within [`OPERATION_TIMEOUT`].
async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, QueueError>>,
) -> Result<T, QueueError> {
    wxpush_postgres::bounded(OPERATION_TIMEOUT, op, QueueError::Postgres).await
}

/// `inner` for everything but dead letters, which live in PostgreSQL.
pub struct DeadLettersOnPostgres {
    inner: Arc<dyn Queue>,
    pool: Pool,
    bounds: DeadLetterBounds,
}

impl DeadLettersOnPostgres {
    /// Opens the pool, dialled on first use; the schema is applied by the
    /// service's start-up step ([`MIGRATIONS`]).
    pub fn open(
        inner: Arc<dyn Queue>,
        url: &str,
        bounds: DeadLetterBounds,
    ) -> anyhow::Result<Self> {
        let pool = wxpush_postgres::open(url, "wxpush-delivery", 4)?;
        Ok(Self {
            inner,
            pool,
            bounds,
        })
    }
}

#[async_trait::async_trait]
impl Queue for DeadLettersOnPostgres {
    async fn push(&self, messages: &[QueuedMessage], not_before_ms: i64) -> Result<(), QueueError> {
        self.inner.push(messages, not_before_ms).await
    }
    async fn promote_due(&self, now_ms: i64) -> Result<usize, QueueError> {
        self.inner.promote_due(now_ms).await
    }
    async fn next_batch(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        self.inner.next_batch(max).await
    }
    async fn ack(&self, id: &str) -> Result<(), QueueError> {
        self.inner.ack(id).await
    }
    fn release(&self, id: &str) {
        self.inner.release(id)
    }
    async fn depth(&self, now_ms: i64) -> Result<Depth, QueueError> {
        bounded(async {
            let mut depth = self.inner.depth(now_ms).await?;
            let client = self.pool.get().await?;
            let n: i64 = client
                .query_one("SELECT count(*) FROM dead_letters", &[])
                .await?
                .get(0);
            depth.dead = n.max(0) as u64;
            Ok(depth)
        })
        .await
    }
    async fn set_status(&self, result: &DeliveryResult) -> Result<bool, QueueError> {
        self.inner.set_status(result).await
    }
    async fn by_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<String>, QueueError> {
        self.inner.by_msgid(app_id, wechat_msgid).await
    }
    async fn reopen(&self, result: &DeliveryResult) -> Result<(), QueueError> {
        self.inner.reopen(result).await
    }
    async fn status(&self, message_id: &str) -> Result<Option<DeliveryResult>, QueueError> {
        self.inner.status(message_id).await
    }
    async fn begin_attempt(&self, message_id: &str, n: u32) -> Result<(), QueueError> {
        self.inner.begin_attempt(message_id, n).await
    }
    async fn begun_attempt(&self, message_id: &str) -> Result<Option<u32>, QueueError> {
        self.inner.begun_attempt(message_id).await
    }

    async fn bury(&self, record: &DeadRecord) -> Result<(), QueueError> {
        bounded(async {
            let json =
                serde_json::to_string(record).map_err(|e| QueueError::corrupt("dead letter", e))?;
            let m = &record.message;
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO dead_letters (message_id, dead_at, app_id, template_key, errcode, record) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::jsonb) ON CONFLICT (message_id) DO UPDATE SET \
                 dead_at = EXCLUDED.dead_at, app_id = EXCLUDED.app_id, \
                 template_key = EXCLUDED.template_key, errcode = EXCLUDED.errcode, record = EXCLUDED.record",
                &[&m.message_id, &at(record.dead_at_ms), &m.app_id, &m.template_key, &m.last_errcode, &json],
            )
            .await?;
            let cutoff = at(now_ms() - self.bounds.retention_ms);
            let expired = tx
                .execute("DELETE FROM dead_letters WHERE dead_at < $1", &[&cutoff])
                .await?;
            let over = tx
                .execute(
                    "DELETE FROM dead_letters WHERE message_id IN (SELECT message_id FROM dead_letters \
                     ORDER BY dead_at DESC, message_id DESC OFFSET $1)",
                    &[&(self.bounds.max.min(i64::MAX as u64) as i64)],
                )
                .await?;
            tx.commit().await?;
            if expired + over > 0 {
                let dropped = expired + over;
                tracing::warn!(dropped, "dead letters dropped (past retention or the cap)");
            }
            Ok(())
        })
        .await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError> {
        bounded(async {
            let (after_at, after_id) = decode_cursor(page_token)
                .map_or((Micros(i64::MAX), String::new()), |(ms, id)| (at(ms), id));
            let range = filter.time_range.as_ref();
            let start = range
                .and_then(|r| r.start.as_ref())
                .map_or(Micros(i64::MIN), |s| at(ts_ms(s)));
            let end = range
                .and_then(|r| r.end.as_ref())
                .map_or(Micros(i64::MAX), |e| at(ts_ms(e)));
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT record::text FROM dead_letters \
                     WHERE ($1 = '' OR app_id = $1) AND ($2 = '' OR template_key = $2) \
                     AND ($3::bigint IS NULL OR errcode = $3) AND dead_at >= $4 AND dead_at < $5 \
                     AND ($6::text = '' OR (dead_at, message_id) < ($7, $6::text)) \
                     ORDER BY dead_at DESC, message_id DESC LIMIT $8",
                    &[
                        &filter.app_id,
                        &filter.template_key,
                        &filter.errcode,
                        &start,
                        &end,
                        &after_id,
                        &after_at,
                        &(page_size as i64 + 1),
                    ],
                )
                .await?;
            let mut page = DeadPage::default();
            for row in rows.iter().take(page_size) {
                let json: String = row.get(0);
                page.records.push(
                    serde_json::from_str(&json)
                        .map_err(|e| QueueError::corrupt("dead letter", e))?,
                );
            }
            if rows.len() > page_size {
                page.next_page_token = page.records.last().map(encode_cursor).unwrap_or_default();
            }
            Ok(page)
        })
        .await
    }

    async fn exhume(&self, message_ids: &[String]) -> Result<Vec<DeadRecord>, QueueError> {
        bounded(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "DELETE FROM dead_letters WHERE message_id = ANY($1) RETURNING record::text",
                    &[&message_ids],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    serde_json::from_str(row.get::<_, &str>(0))
                        .map_err(|e| QueueError::corrupt("dead letter", e))
                })
                .collect()
        })
        .await
    }
}
