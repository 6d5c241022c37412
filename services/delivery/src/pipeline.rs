//! One message through the pipeline: checks, render (template service),
//! idempotency, rate limit, then the attempts (see [`crate::attempts`]).
//! The trace context of the incoming call travels to each hop.

use crate::breaker::Breakers;
use crate::config::{DeliveryConfig, QueueSettings, RetrySettings};
use crate::error::DeliveryError;
use crate::idempotency::{Claim, IdempotencyStore, MemoryIdempotency};
use crate::message::MessageCtx;
use crate::queue::{MemoryQueue, Queue, RedisQueue};
use crate::ratelimit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use crate::request::check_send;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::{Channel, Endpoint};
use wxpush_events::EventSink;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_server::rpc::{TracedChannel, traced};
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::WechatClient;

/// Margin kept from the caller's deadline so the answer still reaches it.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// The delivery pipeline, shared by the gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) template: TemplateServiceClient<TracedChannel>,
    pub(crate) token: TokenServiceClient<TracedChannel>,
    pub(crate) wechat: WechatClient,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) breakers: Breakers,
    pub(crate) retry: RetrySettings,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    limiter: Arc<dyn RateLimiter>,
    pub(crate) idempotency_window: Duration,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) queue_settings: QueueSettings,
    pub(crate) sync_fallback: crate::config::SyncFallback,
    pub(crate) queue_metrics: crate::queue::QueueMetrics,
}

/// What replicas share: idempotency records, rate limits, the queue.
#[derive(Clone)]
pub struct SharedState {
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub queue: Arc<dyn Queue>,
}

/// A lazily connecting channel, so services can start in any order.
pub fn lazy_channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(endpoint.to_string())?.connect_lazy())
}

pub(crate) fn with_trace<T>(message: T, trace: &TraceContext) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    trace.inject(request.metadata_mut());
    request
}

/// Idempotency records, rate limits and the queue, shared by replicas
/// (Redis) or kept in this process (memory).
pub async fn shared_state(config: &DeliveryConfig) -> Result<SharedState, DeliveryError> {
    let BackendSettings {
        kind,
        redis_url,
        key_prefix,
    } = &config.backend;
    Ok(match kind {
        BackendKind::Memory => SharedState {
            idempotency: Arc::new(MemoryIdempotency::default()),
            limiter: Arc::new(MemoryRateLimiter::new(&config.rate_limit)),
            queue: Arc::new(MemoryQueue::new()),
        },
        BackendKind::Redis => {
            let client = redis::Client::open(redis_url.as_str())
                .map_err(|e| DeliveryError::Backend(e.to_string()))?;
            let conn = client
                .get_connection_manager()
                .await
                .map_err(|e| DeliveryError::Backend(e.to_string()))?;
            SharedState {
                idempotency: Arc::new(crate::idempotency::RedisIdempotency::new(
                    conn.clone(),
                    key_prefix,
                )),
                limiter: Arc::new(RedisRateLimiter::new(&config.rate_limit, conn, key_prefix)),
                queue: Arc::new(
                    RedisQueue::connect(redis_url, key_prefix)
                        .await
                        .map_err(|e| DeliveryError::Backend(e.to_string()))?,
                ),
            }
        }
    })
}

impl Pipeline {
    /// A pipeline with in-process idempotency and rate limits; see
    /// [`Self::with_shared_state`] for replicas.
    pub fn new(
        template: Channel,
        token: Channel,
        wechat: WechatClient,
        events: Arc<dyn EventSink>,
        config: &DeliveryConfig,
    ) -> Self {
        Self {
            // Traced: each call is a client span whose context the callee continues.
            template: TemplateServiceClient::new(traced(template)),
            token: TokenServiceClient::new(traced(token)),
            wechat,
            events,
            breakers: Breakers::new(config.breaker.clone()),
            retry: config.retry.clone(),
            idempotency: Arc::new(MemoryIdempotency::default()),
            limiter: Arc::new(MemoryRateLimiter::new(&config.rate_limit)),
            idempotency_window: Duration::from_secs(config.idempotency_window_secs),
            queue: Arc::new(MemoryQueue::new()),
            queue_settings: config.queue.clone(),
            sync_fallback: config.breaker.sync_fallback,
            queue_metrics: crate::queue::QueueMetrics::default(),
        }
    }

    /// Uses the given shared state (from [`shared_state`]).
    pub fn with_shared_state(mut self, shared: SharedState) -> Self {
        self.idempotency = shared.idempotency;
        self.limiter = shared.limiter;
        self.queue = shared.queue;
        self
    }

    /// The queue metrics, to register on the admin port (updated by the
    /// workers of this process).
    pub fn queue_metrics(&self) -> &crate::queue::QueueMetrics {
        &self.queue_metrics
    }

    /// The breakers, for `GetBreakerState`.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Sends one message now. A WeChat rejection is a FAILED result; a bad
    /// request, a failing upstream service, an open breaker or a rate limit
    /// is an error. Never outlives `caller_timeout`.
    pub async fn send(
        &self,
        req: SendRequest,
        trace: TraceContext,
        caller_timeout: Option<Duration>,
    ) -> Result<DeliveryResult, DeliveryError> {
        let violations = check_send(&req);
        if !violations.is_empty() {
            return Err(DeliveryError::InvalidArgument(violations));
        }
        let budget = Duration::from_millis(self.retry.total_deadline_ms);
        let budget =
            caller_timeout.map_or(budget, |t| budget.min(t.saturating_sub(DEADLINE_MARGIN)));
        let deadline = Instant::now() + budget;
        let message_id = uuid::Uuid::now_v7().simple().to_string();
        let rendered = self.render(&req, &message_id, &trace).await?;
        crate::accept::check_app(&req, &rendered)?;
        let ctx = MessageCtx {
            message_id,
            trace_id: trace.trace_id(),
            app_id: rendered.app_id.clone(),
            openid: req.openid.clone(),
            template_key: req.template_key.clone(),
            template_id: rendered.template_id.clone(),
            kind: rendered.kind,
            accepted_at: SystemTime::now(),
            data_json: rendered.data_json.clone(),
        };
        if req.idempotency_key.is_empty() {
            let result = self.admitted(&req, &ctx, &rendered, &trace, deadline).await;
            if let Ok(r) = &result {
                self.record_status(r).await;
            }
            return result;
        }
        // Keys are per app: two apps may use the same business key.
        let key = format!("{}:{}", ctx.app_id, req.idempotency_key);
        if let Some(first) = self.claim(&key, &ctx.message_id, deadline).await? {
            return Ok(first);
        }
        let result = self.admitted(&req, &ctx, &rendered, &trace, deadline).await;
        let stored = match &result {
            Ok(r) => {
                self.idempotency
                    .complete(&key, r, self.idempotency_window)
                    .await
            }
            Err(_) => self.idempotency.release(&key).await,
        };
        if let Err(e) = stored {
            tracing::error!(message_id = %ctx.message_id, error = %e, "idempotency record not stored");
        }
        result
    }

    pub(crate) async fn render(
        &self,
        req: &SendRequest,
        message_id: &str,
        trace: &TraceContext,
    ) -> Result<RenderTemplateResponse, DeliveryError> {
        let request = RenderTemplateRequest {
            key: req.template_key.clone(),
            variables: req.variables.clone(),
            openid: req.openid.clone(),
            client_msg_id: message_id.to_string(),
            url: req.url.clone(),
            miniprogram: req.miniprogram.clone(),
            page: req.page.clone(),
        };
        self.template
            .clone()
            .render_template(with_trace(request, &trace.child()))
            .await
            .map(|r| r.into_inner())
            .map_err(|status| DeliveryError::Upstream {
                service: "template",
                status,
            })
    }

    /// `Some(first result)` when the key was used before (waiting for a
    /// request still in flight), `None` when this request now owns the key.
    pub(crate) async fn claim(
        &self,
        key: &str,
        message_id: &str,
        deadline: Instant,
    ) -> Result<Option<DeliveryResult>, DeliveryError> {
        loop {
            let claim = self
                .idempotency
                .claim(key, message_id)
                .await
                .map_err(|e| DeliveryError::Backend(e.to_string()))?;
            match claim {
                Claim::Reserved => return Ok(None),
                Claim::Done(first) => return Ok(Some(first)),
                Claim::Pending(_) if Instant::now() + Duration::from_millis(20) < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Claim::Pending(_) => return Err(DeliveryError::InProgress(key.to_string())),
            }
        }
    }

    /// Keeps the result for `GetMessage`.
    async fn record_status(&self, r: &DeliveryResult) {
        if let Err(e) = self.queue.set_status(r).await {
            tracing::warn!(message_id = %r.message_id, error = %e, "status not stored");
        }
    }

    /// Rate limit, then the attempts.
    async fn admitted(
        &self,
        req: &SendRequest,
        ctx: &MessageCtx,
        rendered: &RenderTemplateResponse,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<DeliveryResult, DeliveryError> {
        let wait = self
            .limiter
            .check(&ctx.app_id)
            .await
            .map_err(|e| DeliveryError::Backend(e.to_string()))?;
        if let Some(retry_after) = wait {
            return Err(DeliveryError::RateLimited {
                app_id: ctx.app_id.clone(),
                retry_after,
            });
        }
        self.attempts(req, ctx, rendered, trace, deadline).await
    }
}
