//! The log query service: every delivery attempt, indexed, so on-call can
//! answer "what happened to this message / this user / this template" and
//! jump to the trace.
//!
//! - [`record`]: folding delivery events into one record per message.
//! - [`filter`]: checking a `LogFilter` and matching records against it.
//! - [`stats`]: checking `GetStats` and counting per bucket and group.
//! - [`store`]: the [`LogStore`] trait, memory, Redis and PostgreSQL backends.
//! - [`ingest`]: the task that reads the delivery event stream.
//! - [`receipts`]: WeChat's receipts (from the callback stream) as the
//!   final statuses DELIVERED, BLOCKED, UNDELIVERED.
//! - [`metrics`]: ingestion lag and records dropped, for the admin port.
//! - [`tail`]: the live tail behind `TailLogs`, shared by replicas via Redis.
//! - [`service`]: the `wxpush.v1.LogQueryService` gRPC API.
//! - [`error`]: errors and their one mapping to `tonic::Status`.
//!
//! [`build`] puts them together as one component.

pub mod access;
pub mod error;
pub mod filter;
pub mod ingest;
pub mod metrics;
pub mod receipts;
pub mod record;
pub mod service;
pub mod stats;
pub mod store;
pub mod tail;

pub use service::LogQueryGrpc;
pub use store::{LogStore, MemoryLogStore, PostgresLogStore, RedisLogStore, Retention};
pub use tail::Tail;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wxpush_events::callbacks::{CallbackSource, PushSource};
use wxpush_events::{EventSource, RedisStreamSource, StreamSettings};
use wxpush_server::component::Component;
use wxpush_server::config::{BackendKind, BackendSettings};

/// Log query service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct LogQueryConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP address: `/metrics` (Prometheus) and `/healthz`.
    pub admin_listen: SocketAddr,
    /// Who may call (`auth.mode`, the callers' credentials and grants)
    /// and what this service presents on its own calls to the suite.
    pub auth: wxpush_auth::AuthSettings,
    /// The key content is masked with for callers without `read_content`
    /// (a mounted Secret of 32+ bytes, so every replica masks a value
    /// alike); unset: a random key per process.
    pub mask_key_file: Option<std::path::PathBuf>,
    /// The memory backend keeps at most this many records (oldest evicted).
    pub max_records: usize,
    /// Records older than this (by accepted_at) are dropped, by both backends.
    pub retention_secs: u64,
    /// How often retention is enforced.
    pub retention_sweep_secs: u64,
    /// `memory` (default), `redis` or `postgres` (records in PostgreSQL);
    /// with either of the last two the delivery event stream is read from
    /// Redis at `redis_url`.
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
            listen: SocketAddr::from(([127, 0, 0, 1], 50054)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9094)),
            auth: wxpush_auth::AuthSettings::default(),
            mask_key_file: None,
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

wxpush_server::listen_on_fields!(LogQueryConfig);

/// The log query service from its config: the store on its backend, the
/// Redis event stream it ingests (with the Redis backend), the live tail,
/// retention, and the gRPC API.
pub async fn build(config: LogQueryConfig) -> anyhow::Result<Component> {
    build_with_sources(config, InProcess::default()).await
}

/// Streams of the same process (`wxpush dev`'s in-process bus and
/// callbacks), read instead of what the backend implies.
#[derive(Default)]
pub struct InProcess {
    /// Delivery's events.
    pub events: Option<Arc<dyn EventSource>>,
    /// WeChat's pushes, from the callback service.
    pub pushes: Option<Arc<dyn PushSource>>,
}

/// [`build`] reading the streams of `in_process` where given.
pub async fn build_with_sources(
    config: LogQueryConfig,
    in_process: InProcess,
) -> anyhow::Result<Component> {
    let masks = access::Masker::with(
        wxpush_auth::privacy::KeyedHash::from_file(
            "mask_key_file",
            config.mask_key_file.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    let b = &config.backend;
    let mut prepare = None;
    let store: Arc<dyn LogStore> = match b.kind {
        BackendKind::Memory => {
            Arc::new(MemoryLogStore::new(config.max_records, config.retention()))
        }
        BackendKind::Redis => Arc::new(
            RedisLogStore::connect(
                &b.redis_url,
                &b.key_prefix,
                b.stream_partitions,
                config.retention(),
            )
            .await?,
        ),
        BackendKind::Postgres => {
            let store = PostgresLogStore::open(
                b.postgres_url().map_err(anyhow::Error::msg)?,
                config.retention(),
            )?;
            prepare = Some(store.clone());
            Arc::new(store)
        }
    };
    // The live tail is shared by replicas and the events come from Redis
    // whenever the hot path is there.
    let (tail, relay, stream): (_, _, Option<Arc<dyn EventSource>>) = if b.kind.uses_redis() {
        let (tail, relay) = Tail::relayed(&b.redis_url, &b.key_prefix)?;
        let stream = RedisStreamSource::connect(&stream_settings(&config)).await?;
        (tail, Some(relay), Some(Arc::new(stream)))
    } else {
        (Tail::default(), None, None)
    };
    let mut component = Component::new("wxpush-logquery")
        .checks_redis(&config.backend)
        .checks_stream_layout(&config.backend, &["events"]);
    if let Some(store) = prepare {
        // The schema before anything is served or ingested; replicas
        // starting together take turns (an advisory lock).
        component = component.on_start(async move { store.prepare().await });
    }
    component = component
        .grpc(
            LogQueryGrpc::new(store.clone(), tail.clone())
                .masked_with(masks)
                .into_server(),
        )
        .metrics(|r| metrics::LogQueryMetrics::global().register(r));
    if let Some(relay) = relay {
        component = component.task(move |_| relay);
    }
    // WeChat's receipts, handed on by the callback service (the Redis log
    // keeps no msgid index to find their records by).
    let pushes: Option<Arc<dyn PushSource>> = match in_process.pushes {
        Some(pushes) => Some(pushes),
        None if b.kind == BackendKind::Postgres => Some(Arc::new(CallbackSource::open(
            &b.redis_url,
            &b.key_prefix,
            &config.events.group,
            &config.events.consumer,
            Duration::from_secs(config.events.claim_idle_secs),
        )?)),
        None => None,
    };
    if let Some(pushes) = pushes {
        let (store, tail) = (store.clone(), tail.clone());
        component = component.task(move |drain| receipts::run(pushes, store, tail, drain.wait()));
    }
    let closing = tail.clone();
    component = component.task(move |drain| async move {
        // Open TailLogs streams end, so the server's drain does not wait on them.
        drain.wait().await;
        closing.close();
    });
    match in_process.events.or(stream) {
        Some(source) => {
            let (store, tail) = (store.clone(), tail.clone());
            component = component.task(move |drain| ingest::run(source, store, tail, drain.wait()));
        }
        None => tracing::warn!(
            "memory backend: no shared event stream, nothing will be ingested (set backend.kind=redis)"
        ),
    }
    let every = Duration::from_secs(config.retention_sweep_secs);
    Ok(component.task(move |drain| ingest::retention(store, every, drain.wait())))
}

/// How this replica reads the Redis event stream.
fn stream_settings(config: &LogQueryConfig) -> StreamSettings {
    StreamSettings {
        redis_url: config.backend.redis_url.clone(),
        key_prefix: config.backend.key_prefix.clone(),
        partitions: config.backend.stream_partitions,
        group: config.events.group.clone(),
        consumer: config.events.consumer.clone(),
        claim_idle: Duration::from_secs(config.events.claim_idle_secs),
        ..Default::default()
    }
}
