//! The delivery event stream: every delivery attempt becomes a
//! [`DeliveryEvent`] that delivery publishes and logquery ingests. It is the
//! only data path between the two services, so it sits behind two small
//! traits with one implementation per backend: [`MemoryBus`] for
//! `wxpush dev` and tests (in-process, bounded, back-pressured); Redis
//! Streams with a consumer group in production.

use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};
pub use wxpush_proto::v1::DeliveryEvent;

/// Why an event could not be published or read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the delivery event stream is closed")]
    Closed,
    #[error("delivery event stream backend: {0}")]
    Backend(String),
}

/// Where delivery writes its events.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Appends one event durably (for the backend) before returning.
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError>;
}

/// Where logquery reads events from.
#[async_trait::async_trait]
pub trait EventSource: Send + Sync {
    /// The next event; waits while there is none. `Ok(None)` once the stream
    /// has ended for good.
    async fn next(&self) -> Result<Option<DeliveryEvent>, EventError>;
}

/// In-process stream for a single process: a bounded channel, so a slow
/// consumer slows publishers down instead of growing memory without bound.
#[derive(Clone)]
pub struct MemoryBus {
    tx: mpsc::Sender<DeliveryEvent>,
    rx: Arc<Mutex<mpsc::Receiver<DeliveryEvent>>>,
}

impl MemoryBus {
    /// A bus holding at most `capacity` unread events.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
        }
    }
}

#[async_trait::async_trait]
impl EventSink for MemoryBus {
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError> {
        self.tx.send(event).await.map_err(|_| EventError::Closed)
    }
}

#[async_trait::async_trait]
impl EventSource for MemoryBus {
    async fn next(&self) -> Result<Option<DeliveryEvent>, EventError> {
        Ok(self.rx.lock().await.recv().await)
    }
}

/// A sink for a lone delivery process with no shared stream: each event
/// becomes one structured log line, so attempts are at least on record.
pub struct LogSink;

#[async_trait::async_trait]
impl EventSink for LogSink {
    async fn publish(&self, e: DeliveryEvent) -> Result<(), EventError> {
        tracing::info!(
            message_id = %e.message_id,
            trace_id = %e.trace_id,
            app_id = %e.app_id,
            template_key = %e.template_key,
            attempt = e.attempt,
            status = e.status,
            errcode = e.errcode,
            "delivery event"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_arrive_in_order() {
        let bus = MemoryBus::new(4);
        for i in 0..3 {
            bus.publish(DeliveryEvent {
                event_id: format!("e{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        for i in 0..3 {
            let e = bus.next().await.unwrap().unwrap();
            assert_eq!(e.event_id, format!("e{i}"));
        }
    }
}
