//! Accepting messages: the checks every request passes, idempotency (one
//! send per key, across replicas) and the app's rate limit, before a
//! message is sent now ([`crate::send`]) or queued ([`crate::accept`]).

use crate::config::{RetrySettings, SyncFallback};
use crate::error::DeliveryError;
use crate::idempotency::{Claim, IdempotencyStore, record_key};
use crate::ledger::Ledger;
use crate::message::new_id;
use crate::ratelimit::RateLimiter;
use crate::sender::{Rendered, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_auth::Operation;
use wxpush_proto::v1::{DeliveryResult, SendRequest};
use wxpush_server::caller::Caller;
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;

/// Margin kept from the caller's deadline so the answer still reaches it.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);
// The send answers (FAILED, or handed to the queue) before the server layer
// gives up on the call for it (`wxpush_server::rpc::DEADLINE_MARGIN`).
const _: () =
    assert!(DEADLINE_MARGIN.as_millis() > wxpush_server::rpc::DEADLINE_MARGIN.as_millis());

/// How often a request waits for a key another request holds.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// The accepting side of the service; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    pub(crate) sender: Sender,
    pub(crate) ledger: Ledger,
    idempotency: Arc<dyn IdempotencyStore>,
    limiter: Arc<dyn RateLimiter>,
    pub(crate) retry: RetrySettings,
    pub(crate) fallback: SyncFallback,
    idempotency_window: Duration,
}

impl Intake {
    pub fn new(
        sender: Sender,
        ledger: Ledger,
        idempotency: Arc<dyn IdempotencyStore>,
        limiter: Arc<dyn RateLimiter>,
        config: &crate::DeliveryConfig,
    ) -> Self {
        Self {
            sender,
            ledger,
            idempotency,
            limiter,
            retry: config.retry.clone(),
            fallback: config.breaker.sync_fallback,
            idempotency_window: Duration::from_secs(config.idempotency_window_secs),
        }
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// When a call must be answered: the configured budget
    /// (`retry.total_deadline_ms`), or the caller's `grpc-timeout` less a
    /// margin for the answer to reach it, if sooner.
    pub(crate) fn deadline(&self, caller_timeout: Option<Duration>) -> Instant {
        let budget = Duration::from_millis(self.retry.total_deadline_ms);
        let budget =
            caller_timeout.map_or(budget, |t| budget.min(t.saturating_sub(DEADLINE_MARGIN)));
        Instant::now() + budget
    }

    /// A new message from a checked request: its id, the message rendered
    /// (a template of another app than the request names is refused), and
    /// the record key of its idempotency key, if it has one.
    pub(crate) async fn new_message(
        &self,
        req: &SendRequest,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<(String, Rendered, Option<String>), DeliveryError> {
        let message_id = new_id();
        let rendered = self
            .sender
            .render(req, &message_id, trace, deadline)
            .await?;
        check_app(req, &rendered)?;
        let key = (!req.idempotency_key.is_empty())
            .then(|| record_key(&rendered.response.app_id, &req.idempotency_key));
        Ok((message_id, rendered, key))
    }

    /// `Some(first result)` when the key was used before (waiting until
    /// `deadline` for a request still in flight), `None` when this request
    /// now owns the key.
    pub(crate) async fn claim(
        &self,
        key: &str,
        message_id: &str,
        deadline: Instant,
    ) -> Result<Option<DeliveryResult>, DeliveryError> {
        loop {
            match self.idempotency.claim(key, message_id).await? {
                Claim::Reserved => return Ok(None),
                Claim::Done(first) => return Ok(Some(first)),
                Claim::Pending(_) if Instant::now() + CLAIM_POLL < deadline => {
                    tokio::time::sleep(CLAIM_POLL).await;
                }
                Claim::Pending(_) => return Err(DeliveryError::InProgress(key.to_string())),
            }
        }
    }

    /// Keeps the key's result for the window, or frees the key when the
    /// request failed as an RPC (nothing was accepted, a retry may go).
    pub(crate) async fn settle_key(
        &self,
        key: &str,
        result: &Result<DeliveryResult, DeliveryError>,
    ) {
        let stored = match result {
            Ok(r) => {
                self.idempotency
                    .complete(key, r, self.idempotency_window)
                    .await
            }
            Err(_) => self.idempotency.release(key).await,
        };
        if let Err(e) = stored {
            tracing::error!(key, error = %e, "idempotency record not stored");
        }
    }

    /// Counts one send against the app's rate limit, or refuses it.
    pub(crate) async fn admit(&self, app_id: &str) -> Result<(), DeliveryError> {
        match self.limiter.check(app_id).await? {
            None => Ok(()),
            Some(retry_after) => Err(DeliveryError::RateLimited {
                app_id: app_id.to_string(),
                retry_after,
            }),
        }
    }
}

/// A template of another app than the one the request names is refused,
/// and so is a send the caller has no grant for (its app and template).
pub(crate) fn check_app(req: &SendRequest, rendered: &Rendered) -> Result<(), DeliveryError> {
    let app_id = &rendered.response.app_id;
    if !req.app_id.is_empty() && &req.app_id != app_id {
        return Err(DeliveryError::InvalidArgument(vec![Violation::new(
            "app_id",
            format!("template {} belongs to app {app_id}", req.template_key),
        )]));
    }
    Caller::current()
        .check(Operation::Send, app_id, Some(&req.template_key))
        .map_err(DeliveryError::Denied)
}
