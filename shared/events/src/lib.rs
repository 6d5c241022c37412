//! The delivery event stream: every delivery attempt becomes a
//! [`DeliveryEvent`] that delivery publishes and logquery ingests. It is the
//! only data path between the two services, so it sits behind two small
//! traits with one implementation per backend: [`MemoryBus`] for
//! `wxpush dev` and tests (in-process, bounded, back-pressured), and
//! [`RedisStreamSink`] / [`RedisStreamSource`] (Redis Streams with a consumer
//! group) in production.
//!
//! Reading is at-least-once: a consumer acknowledges events only after it has
//! applied them, and a new consumer first re-reads what a previous one took
//! but never acknowledged. Consumers must therefore be idempotent (logquery
//! folds by `event_id`).

pub mod callbacks;
pub mod consumer;
mod memory;
mod partitioned;
mod redis_stream;

pub use consumer::{ConsumerSettings, StreamConsumer, StreamEntry};
pub use memory::{MemoryBus, MemorySource};
pub use partitioned::PartitionedConsumer;
pub use redis_stream::{RedisStreamSink, RedisStreamSource, StreamSettings, stream_keys};
pub use wxpush_proto::v1::DeliveryEvent;

/// Why an event could not be published or read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the delivery event stream is closed")]
    Closed,
    #[error("delivery event stream backend: {0}")]
    Backend(#[from] redis::RedisError),
    #[error("delivery event stream: {0}")]
    Open(#[from] wxpush_redis::OpenError),
}

/// Where delivery writes its events.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Appends one event durably (for the backend) before returning.
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError>;
}

/// Proof of reading one event, handed back to [`EventSource::ack`] once the
/// event has been applied. Opaque outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt(pub(crate) String);

/// One event read from a source, with the receipt that acknowledges it.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: DeliveryEvent,
    pub receipt: Receipt,
}

/// Where logquery reads events from.
#[async_trait::async_trait]
pub trait EventSource: Send + Sync {
    /// The next events, at most `max` (at least one); waits while there are
    /// none. `Ok(None)` once the stream has ended for good. Events read but
    /// not acknowledged are read again by the next consumer started on the
    /// same stream, so a crash between reading and applying loses nothing.
    async fn next_batch(&self, max: usize) -> Result<Option<Vec<Received>>, EventError>;

    /// Marks events as applied: they will not be read again.
    async fn ack(&self, receipts: &[Receipt]) -> Result<(), EventError>;
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
