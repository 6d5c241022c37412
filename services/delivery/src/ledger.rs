//! Everything recorded about a message, in one place for every path: its
//! delivery events (what logquery indexes), its live status (`GetMessage`),
//! its place in the queue when it waits, and its dead letter.
//!
//! Order matters where a worker may race the writer: a status is stored
//! before the message is queued, so a worker's later SENT is never
//! overwritten by an earlier QUEUED.

use crate::breaker::Breaker;
use crate::decision::Hold;
use crate::message::{MessageCtx, Step};
use crate::queue::{DeadRecord, Queue, QueueError, QueueMetrics, QueuedMessage, now_ms};
use std::sync::Arc;
use wxpush_events::EventSink;
use wxpush_proto::v1::DeliveryResult;

/// A delivery event's publish tries, each with the pause after it fails:
/// one more try covers a dropped connection being redialled, and no more,
/// so a Redis outage costs a sync caller little of its deadline.
const PUBLISH_RETRIES: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(100),
    std::time::Duration::ZERO,
];

/// The stores a message's record lives in; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    events: Arc<dyn EventSink>,
    pub(crate) queue: Arc<dyn Queue>,
    metrics: QueueMetrics,
}

impl Ledger {
    pub fn new(events: Arc<dyn EventSink>, queue: Arc<dyn Queue>, metrics: QueueMetrics) -> Self {
        Self {
            events,
            queue,
            metrics,
        }
    }

    /// The queue metrics (updated by this process's workers and intake).
    pub fn metrics(&self) -> &QueueMetrics {
        &self.metrics
    }

    /// Publishes the step's delivery event, trying again after a failure
    /// (a publish that timed out may have landed: the log folds a repeated
    /// event once). A last failure is logged, not returned: the attempt
    /// happened whether or not its event was stored.
    pub async fn emit(&self, ctx: &MessageCtx, step: &Step) {
        log_step(ctx, step);
        let event = ctx.event(step);
        for (n, pause) in PUBLISH_RETRIES.iter().enumerate() {
            match self.events.publish(event.clone()).await {
                Ok(()) => return,
                Err(e) if n + 1 < PUBLISH_RETRIES.len() => {
                    tracing::warn!(message_id = %ctx.message_id, error = %e, "delivery event not published; trying again");
                    tokio::time::sleep(*pause).await;
                }
                Err(e) => {
                    tracing::error!(message_id = %ctx.message_id, error = %e, "delivery event not published");
                }
            }
        }
    }

    /// Stores the message's live status (a final one is never replaced by
    /// a live one: see [`Queue::set_status`]); a SENT one is found again by
    /// its WeChat msgid when WeChat's receipt comes.
    pub async fn settle(&self, result: &DeliveryResult) -> Result<(), QueueError> {
        self.queue.set_status(result).await.map(|_| ())
    }

    /// A step that ends in a status: its event (when `logged`) and the
    /// status are written together, neither waiting for the other (on
    /// Redis both go out on the connection they share, in one write).
    pub async fn finish(
        &self,
        ctx: &MessageCtx,
        step: &Step,
        logged: bool,
        result: &DeliveryResult,
    ) -> Result<(), QueueError> {
        let event = async {
            if logged {
                self.emit(ctx, step).await;
            }
        };
        let ((), settled) = tokio::join!(event, self.settle(result));
        settled
    }

    /// Puts the message (back) in the queue, due at `due_ms`, with the
    /// status its last step gave it.
    pub async fn hold(
        &self,
        ctx: &MessageCtx,
        m: &QueuedMessage,
        step: &Step,
        due_ms: i64,
    ) -> Result<DeliveryResult, QueueError> {
        let result = ctx.result(step, m.attempts);
        // Already final (another worker finished a copy of it): nothing to
        // wait for, and nothing to queue again.
        if self.queue.set_status(&result).await? {
            self.queue.push(std::slice::from_ref(m), due_ms).await?;
        }
        Ok(result)
    }

    /// An operator's replay: the message is live again (over its final
    /// status) and queued, due now.
    pub async fn reopen(
        &self,
        ctx: &MessageCtx,
        m: &QueuedMessage,
        step: &Step,
    ) -> Result<(), QueueError> {
        self.queue.reopen(&ctx.result(step, m.attempts)).await?;
        self.queue.push(std::slice::from_ref(m), now_ms()).await
    }

    /// Keeps the message as a dead letter for operators to replay.
    pub async fn bury(&self, ctx: &MessageCtx, m: &QueuedMessage) -> Result<(), QueueError> {
        tracing::warn!(message_id = %m.message_id, app_id = %m.app_id, errcode = m.last_errcode, "message dead-lettered");
        self.queue
            .bury(&DeadRecord {
                message: m.clone(),
                template_id: ctx.template_id.clone(),
                trace_id: ctx.trace_id.clone(),
                dead_at_ms: now_ms(),
            })
            .await
    }
}

/// When a message held back should be looked at again (ms since the
/// epoch): the breaker's next probe, the daily quota's reset, or when the
/// rate limiter lets it go.
pub(crate) fn hold_until_ms(hold: Hold, breaker: &Breaker) -> i64 {
    match hold {
        Hold::Breaker => breaker.hold_until_ms(),
        Hold::Quota => now_ms() + wxpush_wechat::until_quota_reset().as_millis() as i64,
        Hold::Rate(wait) => now_ms() + wait.as_millis() as i64,
    }
}

/// Logs an attempt or status change of a message (the text log; the
/// delivery event is the record).
fn log_step(ctx: &MessageCtx, step: &Step) {
    tracing::info!(
        message_id = %ctx.message_id,
        trace_id = %ctx.trace_id,
        app_id = %ctx.app_id,
        template_key = %ctx.template_key,
        attempt = step.attempt,
        status = step.status.as_str_name(),
        errcode = step.errcode,
        latency_ms = step.latency_ms,
        "delivery attempt"
    );
}
