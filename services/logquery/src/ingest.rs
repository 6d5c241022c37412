//! The ingestion task (delivery event stream → store → live tail) and the
//! retention task.

use crate::metrics::LogQueryMetrics;
use crate::store::LogStore;
use crate::tail::Tail;
use std::sync::Arc;
use std::time::Duration;
use wxpush_events::EventSource;

/// Events read and applied at once (one store round trip for all).
pub const BATCH: usize = 256;

/// After a batch of less than a quarter of [`BATCH`] (a stream in
/// partitions is read a share of [`BATCH`] from each, so a backlog's batch
/// may fall a little short of it), the next read waits this long, so
/// that events arriving one by one are applied some at a time: a store's
/// cost is mostly per batch (a transaction on PostgreSQL, a round trip and
/// a wake-up on Redis), and the log is read seconds later, not within 5 ms.
/// A larger batch is followed by the next read at once.
pub const LINGER: Duration = Duration::from_millis(5);

/// Reads the stream into the store until it ends. Events are acknowledged
/// only after the store applied them, so a crash in between re-reads them
/// (and the store ignores what it already has). A failing store is retried
/// with the same batch, so nothing is skipped.
pub fn spawn(
    source: Arc<dyn EventSource>,
    store: Arc<dyn LogStore>,
    tail: Tail,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(source, store, tail, std::future::pending()))
}

/// [`spawn`]'s loop, until `stop` completes (between batches: a batch read
/// is applied and acknowledged first).
pub async fn run(
    source: Arc<dyn EventSource>,
    store: Arc<dyn LogStore>,
    tail: Tail,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    {
        let mut linger = false;
        loop {
            if linger {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(LINGER) => {}
                }
            }
            let next = tokio::select! {
                biased;
                _ = &mut stop => break,
                next = source.next_batch(BATCH) => next,
            };
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading delivery events failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            linger = batch.len() < BATCH / 4;
            let (events, receipts): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|r| (r.event, r.receipt)).unzip();
            tracing::debug!(events = events.len(), "delivery events read");
            let newest = events
                .iter()
                .filter_map(|e| e.occurred_at.as_ref())
                .map(|t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
                .max();
            let changed = loop {
                match store.apply(&events).await {
                    Ok(changed) => break changed,
                    Err(e) => {
                        tracing::warn!(error = %e, "applying delivery events failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            tracing::debug!(changed = changed.len(), "delivery events applied");
            tail.publish(changed).await;
            if let Some(newest) = newest {
                let now = crate::store::now_micros() / 1_000;
                LogQueryMetrics::global().ingest_lag(now - newest);
            }
            if let Err(e) = source.ack(&receipts).await {
                // They will be read again and change nothing.
                tracing::warn!(error = %e, "acknowledging delivery events failed");
            }
        }
    }
    tracing::info!("delivery event ingestion stopped");
}

/// Enforces retention every `every` until `stop` completes.
pub async fn retention(
    store: Arc<dyn LogStore>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            match store.enforce_retention().await {
                Ok(_) => tracing::debug!(evicted_total = store.evicted(), "retention enforced"),
                Err(e) => tracing::warn!(error = %e, "enforcing retention failed"),
            }
        }
    }
}
