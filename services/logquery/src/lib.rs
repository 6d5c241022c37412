//! The log query service: every delivery attempt, indexed, so on-call can
//! answer "what happened to this message / this user / this template" and
//! jump to the trace.
//!
//! - [`record`]: folding delivery events into one record per message.
//! - [`filter`]: checking a `LogFilter` and matching records against it.
//! - [`stats`]: checking `GetStats` and counting per bucket and group.
//! - [`store`]: the [`LogStore`] trait, memory and Redis backends.
//! - [`ingest`]: the task that reads the delivery event stream.
//! - [`metrics`]: ingestion lag and records dropped, for the admin port.
//! - [`tail`]: the live tail behind `TailLogs`, shared by replicas via Redis.
//! - [`service`]: the `wxpush.v1.LogQueryService` gRPC API.
//! - [`error`]: errors and their one mapping to `tonic::Status`.

pub mod error;
pub mod filter;
pub mod ingest;
pub mod metrics;
pub mod record;
pub mod service;
pub mod stats;
pub mod store;
pub mod tail;

pub use service::LogQueryGrpc;
pub use store::{LogStore, MemoryLogStore, RedisLogStore, Retention};
pub use tail::Tail;

use std::sync::Arc;
use std::time::Duration;
use wxpush_events::{EventSource, RedisStreamSource, StreamSettings};
use wxpush_server::config::{BackendKind, BackendSettings};

/// Log query service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct LogQueryConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Admin HTTP address: `/metrics` (Prometheus) and `/healthz`.
    pub admin_listen: String,
    /// The memory backend keeps at most this many records (oldest evicted).
    pub max_records: usize,
    /// Records older than this (by accepted_at) are dropped, by both backends.
    pub retention_secs: u64,
    /// How often retention is enforced.
    pub retention_sweep_secs: u64,
    /// `memory` (default) or `redis`; with redis the delivery event stream
    /// is read from the same Redis.
    pub backend: BackendSettings,
    pub events: EventsConfig,
}

/// How this replica consumes the Redis delivery event stream.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// Consumer group shared by all logquery replicas.
    pub group: String,
    /// This replica's consumer name: stable across its restarts (the pod
    /// name; default `$HOSTNAME`) so it re-reads what it left unacknowledged.
    pub consumer: String,
    /// Entries pending this long at another consumer are taken over.
    pub claim_idle_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            group: "logquery".into(),
            consumer: std::env::var("HOSTNAME").unwrap_or_else(|_| "logquery-0".into()),
            claim_idle_secs: 60,
        }
    }
}

impl Default for LogQueryConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50054".into(),
            admin_listen: "0.0.0.0:9094".into(),
            max_records: 100_000,
            retention_secs: 7 * 24 * 3600,
            retention_sweep_secs: 60,
            backend: BackendSettings::default(),
            events: EventsConfig::default(),
        }
    }
}

impl LogQueryConfig {
    pub fn retention(&self) -> Retention {
        Retention(Duration::from_secs(self.retention_secs))
    }
}

/// A store and, with Redis, the event stream it ingests.
pub struct Backend {
    pub store: Arc<dyn LogStore>,
    /// Where ingestion publishes for `TailLogs` (with Redis: every replica's).
    pub tail: Tail,
    /// `None` for memory: the process has no shared stream (`wxpush dev`
    /// wires its in-process bus instead).
    pub source: Option<Arc<dyn EventSource>>,
}

/// Opens the configured backend.
pub async fn open_backend(config: &LogQueryConfig) -> anyhow::Result<Backend> {
    let b = &config.backend;
    Ok(match b.kind {
        BackendKind::Memory => Backend {
            store: Arc::new(MemoryLogStore::new(config.max_records, config.retention())),
            tail: Tail::default(),
            source: None,
        },
        BackendKind::Redis => {
            let store =
                RedisLogStore::connect(&b.redis_url, &b.key_prefix, config.retention()).await?;
            let source = RedisStreamSource::connect(&StreamSettings {
                redis_url: b.redis_url.clone(),
                key_prefix: b.key_prefix.clone(),
                group: config.events.group.clone(),
                consumer: config.events.consumer.clone(),
                claim_idle: Duration::from_secs(config.events.claim_idle_secs),
                ..Default::default()
            })
            .await?;
            Backend {
                store: Arc::new(store),
                tail: Tail::over_redis(&b.redis_url, &b.key_prefix).await?,
                source: Some(Arc::new(source)),
            }
        }
    })
}
