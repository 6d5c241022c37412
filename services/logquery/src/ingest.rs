//! The ingestion task: reads the delivery event stream into the store.

use crate::store::MemoryLogStore;
use std::sync::Arc;
use std::time::Duration;
use wxpush_events::EventSource;

/// Runs until the stream ends; a read error is logged and retried after a
/// pause, so a backend blip does not stop ingestion for good.
pub fn spawn(source: Arc<dyn EventSource>, store: MemoryLogStore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match source.next().await {
                Ok(Some(event)) => {
                    store.apply(&event).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading delivery events failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        tracing::info!("delivery event stream ended");
    })
}
