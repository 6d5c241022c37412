//! The log query service: every delivery attempt, indexed, so on-call can
//! answer "what happened to this message / this user / this template" and
//! jump to the trace.
//!
//! - [`record`]: folding delivery events into one record per message.
//! - [`filter`]: checking a `LogFilter` and matching records against it.
//! - [`store`]: the record store, newest first, cursor paged.
//! - [`ingest`]: the task that reads the delivery event stream.
//! - [`service`]: the `wxpush.v1.LogQueryService` gRPC API.

pub mod filter;
pub mod ingest;
pub mod record;
pub mod service;
pub mod store;

pub use service::LogQueryGrpc;
pub use store::MemoryLogStore;

/// Log query service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct LogQueryConfig {
    /// gRPC listen address.
    pub listen: String,
    /// The memory backend keeps at most this many records (oldest evicted).
    pub max_records: usize,
}

impl Default for LogQueryConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50054".into(),
            max_records: 100_000,
        }
    }
}
