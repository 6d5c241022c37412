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

/// Reads the stream into the store until it ends. Events are acknowledged
/// only after the store applied them, so a crash in between re-reads them
/// (and the store ignores what it already has). A failing store is retried
/// with the same batch, so nothing is skipped.
pub fn spawn(
    source: Arc<dyn EventSource>,
    store: Arc<dyn LogStore>,
    tail: Tail,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let batch = match source.next_batch(BATCH).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading delivery events failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let (events, receipts): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|r| (r.event, r.receipt)).unzip();
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
        tracing::info!("delivery event stream ended");
    })
}

/// Enforces retention every `every`, logging the eviction counter.
pub fn spawn_retention(store: Arc<dyn LogStore>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            match store.enforce_retention().await {
                Ok(_) => tracing::debug!(evicted_total = store.evicted(), "retention enforced"),
                Err(e) => tracing::warn!(error = %e, "enforcing retention failed"),
            }
        }
    })
}
