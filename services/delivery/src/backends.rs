//! What the configured backend provides, chosen once: idempotency records,
//! rate limits, the queue (with statuses and dead letters), the event
//! sink and the consent ledger. Memory serves one process (`wxpush dev`, tests); Redis is shared by
//! every replica; postgres is Redis with the dead letters in PostgreSQL. Every part of the service is built from one `Backends`.

use crate::config::DeliveryConfig;
use crate::consent::{ConsentLedger, MemoryConsent, RedisConsent};
use crate::idempotency::{IdempotencyStore, MemoryIdempotency, RedisIdempotency};
use crate::queue::{DeadLetterBounds, DeadLettersOnPostgres, MemoryQueue, Queue, RedisQueue};
use crate::ratelimit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use std::sync::Arc;
use wxpush_events::{EventSink, LogSink, RedisStreamSink, StreamSettings};
use wxpush_server::config::BackendKind;

/// The shared state of the delivery service.
#[derive(Clone)]
pub struct Backends {
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub queue: Arc<dyn Queue>,
    pub events: Arc<dyn EventSink>,
    pub consent: Arc<dyn ConsentLedger>,
}

impl Backends {
    /// The Redis queue; on the postgres backend with its dead letters in
    /// PostgreSQL.
    async fn queue(
        config: &DeliveryConfig,
        conn: wxpush_redis::Connection,
    ) -> anyhow::Result<Arc<dyn Queue>> {
        let b = &config.backend;
        let redis: Arc<dyn Queue> = Arc::new(
            RedisQueue::open(
                &b.redis_url,
                &b.key_prefix,
                b.stream_partitions,
                &config.queue,
            )?
            .sharing(conn),
        );
        if b.kind != BackendKind::Postgres {
            return Ok(redis);
        }
        let url = b.postgres_url().map_err(anyhow::Error::msg)?;
        let bounds = DeadLetterBounds::of(&config.queue);
        Ok(Arc::new(DeadLettersOnPostgres::open(redis, url, bounds)?))
    }

    /// The backends `config.backend` names (Redis: opened lazily). Events go
    /// to `events` when given (`wxpush dev`'s in-process bus), else to the
    /// Redis event stream, or for a lone in-memory process to the log.
    pub async fn open(
        config: &DeliveryConfig,
        events: Option<Arc<dyn EventSink>>,
    ) -> anyhow::Result<Self> {
        let b = &config.backend;
        Ok(match b.kind {
            BackendKind::Memory => Self {
                idempotency: Arc::new(MemoryIdempotency::default()),
                limiter: Arc::new(MemoryRateLimiter::new(&config.rate_limit)),
                queue: Arc::new(MemoryQueue::new(&config.queue)),
                consent: Arc::new(MemoryConsent::default()),
                events: events.unwrap_or_else(|| {
                    tracing::warn!("memory backend: delivery events go to the log only");
                    Arc::new(LogSink)
                }),
            },
            BackendKind::Redis | BackendKind::Postgres => {
                // One connection for every hot-path command (the blocking
                // queue reads have their own): a message's rate check,
                // event and status, and those of other messages at the same
                // moment, share its writes and reads.
                let conn = wxpush_redis::connect(&b.redis_url, wxpush_redis::Timeouts::Commands)?;
                let events = match events {
                    Some(e) => e,
                    None => Arc::new(RedisStreamSink::on(
                        conn.clone(),
                        &StreamSettings {
                            redis_url: b.redis_url.clone(),
                            key_prefix: b.key_prefix.clone(),
                            partitions: b.stream_partitions,
                            ..Default::default()
                        },
                    )),
                };
                Self {
                    idempotency: Arc::new(RedisIdempotency::new(conn.clone(), &b.key_prefix)),
                    limiter: Arc::new(RedisRateLimiter::new(
                        &config.rate_limit,
                        conn.clone(),
                        &b.key_prefix,
                    )),
                    queue: Self::queue(config, conn.clone()).await?,
                    consent: Arc::new(RedisConsent::new(conn.clone(), &b.key_prefix)),
                    events,
                }
            }
        })
    }
}
