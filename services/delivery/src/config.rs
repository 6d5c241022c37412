//! Delivery service configuration.

use serde::Deserialize;
use std::net::SocketAddr;
use wxpush_server::config::{BackendSettings, GrpcEndpoint};
use wxpush_wechat::ClientSettings;

/// Retries of one message.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetrySettings {
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// Backoff before attempt n+1 is uniform in [0, min(max, base * 2^(n-1))]
    /// ("full jitter"), so many senders do not retry in step.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A sync send gives up after this, or the caller's deadline if sooner.
    pub total_deadline_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 2_000,
            total_deadline_ms: 10_000,
        }
    }
}

/// What a sync `Send` does while the app's breaker is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncFallback {
    /// Accept it into the async queue and answer DEFERRED (degrade, never drop).
    #[default]
    Queue,
    /// Answer UNAVAILABLE with a retry delay; the caller retries.
    Unavailable,
}

/// The circuit breaker per app around WeChat send calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open the breaker.
    pub failure_threshold: u32,
    /// First open period (≥ 1 s); doubles on each re-open up to the max.
    pub open_min_secs: u64,
    pub open_max_secs: u64,
    /// What a sync `Send` does while the breaker is open.
    pub sync_fallback: SyncFallback,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_min_secs: 5,
            open_max_secs: 60,
            sync_fallback: SyncFallback::Queue,
        }
    }
}

/// Sends per second per app, shared by every replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Sustained rate; 0 turns the limit off.
    pub per_second: f64,
    /// Sends allowed at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 50,
        }
    }
}

/// The async queue's workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    /// Messages in flight at once per process.
    pub concurrency: usize,
    /// A message held this long by a worker is taken over by another (its
    /// worker is presumed dead). Longer than one attempt can take.
    pub claim_idle_ms: u64,
    /// How often a worker looks for such messages.
    pub reclaim_every_ms: u64,
    /// Longest wait for new messages before looking at the delayed set.
    pub poll_ms: u64,
    /// Run workers in this process.
    pub workers: bool,
    /// Dead letters older than this are dropped.
    pub dead_letter_retention_secs: u64,
    /// Most dead letters kept; past it the oldest are dropped.
    pub max_dead_letters: u64,
    /// How long a message's status stays in the queue's backend for
    /// `GetMessage` (at least an hour). The hot path's largest cost in
    /// Redis memory at volume (README, sizing); the log keeps the record
    /// for its own retention.
    #[serde(deserialize_with = "status_ttl")]
    pub status_ttl_secs: u64,
    /// What a worker does with a subscribe message whose last attempt may
    /// or may not have reached WeChat (its worker died during the call).
    pub on_uncertain: UncertainSettings,
}

fn status_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let secs = u64::deserialize(d)?;
    if secs < crate::queue::MIN_STATUS_TTL_SECS {
        return Err(serde::de::Error::custom(format!(
            "must be at least {} (an hour), not {secs}",
            crate::queue::MIN_STATUS_TTL_SECS
        )));
    }
    Ok(secs)
}

/// A subscribe message has no `client_msg_id`: WeChat cannot absorb a
/// second send, and each one spends one of the user's one-time consents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUncertain {
    /// Do not send again: dead-letter the message as uncertain (an
    /// operator can replay it), counted in `wxpush_uncertain_sends_total`.
    #[default]
    Report,
    /// Send again: the user may get it twice.
    Resend,
}

/// [`OnUncertain`] per template key, with a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UncertainSettings {
    pub default: OnUncertain,
    /// Template key -> choice, overriding the default.
    pub templates: std::collections::HashMap<String, OnUncertain>,
}

impl UncertainSettings {
    /// The choice for a template.
    pub fn for_template(&self, key: &str) -> OnUncertain {
        self.templates.get(key).copied().unwrap_or(self.default)
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            claim_idle_ms: 30_000,
            reclaim_every_ms: 5_000,
            poll_ms: 200,
            workers: true,
            dead_letter_retention_secs: 30 * 86_400,
            max_dead_letters: 100_000,
            status_ttl_secs: crate::queue::STATUS_TTL_SECS,
            on_uncertain: UncertainSettings::default(),
        }
    }
}

/// The whole delivery service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP address: `/metrics` (Prometheus) and `/healthz`.
    pub admin_listen: SocketAddr,
    /// Who may call (`auth.mode`, the callers' credentials and grants)
    /// and what this service presents on its own calls to the suite.
    pub auth: wxpush_auth::AuthSettings,
    /// The key (32+ bytes, a mounted Secret) templates' private fields are
    /// hashed with before they reach the log; unset: a random key per
    /// process (hashes then compare within one replica's messages).
    pub private_fields_key_file: Option<std::path::PathBuf>,
    /// The template service, e.g. `http://wxpush-template:50052`.
    pub template_endpoint: GrpcEndpoint,
    /// The token service, e.g. `http://wxpush-token:50051`.
    pub token_endpoint: GrpcEndpoint,
    pub wechat: ClientSettings,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    pub rate_limit: RateLimitSettings,
    pub queue: QueueSettings,
    /// The same idempotency key within this window returns the first result.
    pub idempotency_window_secs: u64,
    /// `memory` or `redis` (idempotency records and rate limits shared by replicas).
    pub backend: BackendSettings,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50053)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9093)),
            auth: wxpush_auth::AuthSettings::default(),
            private_fields_key_file: None,
            template_endpoint: GrpcEndpoint::parse("http://127.0.0.1:50052")
                .expect("a valid default"),
            token_endpoint: GrpcEndpoint::parse("http://127.0.0.1:50051").expect("a valid default"),
            wechat: ClientSettings::default(),
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            rate_limit: RateLimitSettings::default(),
            queue: QueueSettings::default(),
            idempotency_window_secs: 86_400,
            backend: BackendSettings::default(),
        }
    }
}

wxpush_server::listen_on_fields!(DeliveryConfig);
