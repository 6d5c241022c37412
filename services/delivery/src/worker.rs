//! Queue workers inside the delivery service: they pull messages and run
//! one attempt each through the same steps as `Send` (render, token,
//! breaker, policy, events). A retry is a delayed re-queue, so no worker
//! sleeps on a backoff; while an app's breaker is open or its quota is used
//! up its messages wait (DEFERRED) and resume by themselves.

use crate::attempts::api_of;
use crate::error::DeliveryError;
use crate::message::{MessageCtx, Step};
use crate::pipeline::Pipeline;
use crate::policy::{Action, backoff};
use crate::queue::{DeadRecord, Delivery, QueuedMessage, now_ms};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;
use wxpush_proto::v1::*;
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::until_quota_reset;

/// Running workers; [`Workers::shutdown`] stops them gracefully.
pub struct Workers {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Workers {
    /// Stops reading, lets in-flight messages finish, returns. Messages not
    /// acknowledged stay in the queue for another worker.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn is_final(status: i32) -> bool {
    [
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

impl Pipeline {
    /// Starts the workers of this process.
    pub fn spawn_workers(&self) -> Workers {
        let (stop, mut stopped) = watch::channel(false);
        let pipeline = self.clone();
        let task = tokio::spawn(async move {
            let s = pipeline.queue_settings.clone();
            let consumer = uuid::Uuid::new_v4().simple().to_string();
            let permits = Arc::new(Semaphore::new(s.concurrency.max(1)));
            let mut tasks = JoinSet::new();
            let mut last_reclaim = Instant::now();
            let mut last_depth = Instant::now() - Duration::from_secs(60);
            while !*stopped.borrow() {
                while tasks.try_join_next().is_some() {}
                if let Err(e) = pipeline.queue.promote_due(now_ms()).await {
                    tracing::warn!(error = %e, "promoting delayed messages failed");
                }
                if last_depth.elapsed() >= Duration::from_secs(2) {
                    last_depth = Instant::now();
                    if let Ok(d) = pipeline.queue.depth(now_ms()).await {
                        pipeline.queue_metrics.observe(&d);
                    }
                }
                let free = permits.available_permits();
                if free == 0 {
                    tasks.join_next().await;
                    continue;
                }
                let mut batch = Vec::new();
                if last_reclaim.elapsed() >= Duration::from_millis(s.reclaim_every_ms) {
                    last_reclaim = Instant::now();
                    match pipeline
                        .queue
                        .reclaim(&consumer, Duration::from_millis(s.claim_idle_ms), free)
                        .await
                    {
                        Ok(claimed) => {
                            if !claimed.is_empty() {
                                tracing::warn!(
                                    count = claimed.len(),
                                    "claimed messages of a worker that stopped"
                                );
                            }
                            batch = claimed;
                        }
                        Err(e) => tracing::warn!(error = %e, "reclaiming stale messages failed"),
                    }
                }
                if batch.is_empty() {
                    let wait = Duration::from_millis(s.poll_ms);
                    tokio::select! {
                        pulled = pipeline.queue.pull(&consumer, free, wait) => match pulled {
                            Ok(b) => batch = b,
                            Err(e) => {
                                tracing::warn!(error = %e, "reading the queue failed");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        },
                        _ = stopped.changed() => {}
                    }
                }
                for delivery in batch {
                    let permit = permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore open");
                    let p = pipeline.clone();
                    tasks.spawn(async move {
                        p.deliver_queued(delivery).await;
                        drop(permit);
                    });
                }
            }
            while tasks.join_next().await.is_some() {}
            tracing::info!("delivery workers stopped");
        });
        Workers { stop, task }
    }

    /// One queued message, one step further; acknowledged only after that
    /// step is stored.
    async fn deliver_queued(&self, d: Delivery) {
        let id = d.id.clone();
        // The queue hop continues the trace of the accepting call.
        let mut carrier = d.message.carrier.clone();
        carrier
            .entry("traceparent".into())
            .or_insert_with(|| d.message.traceparent.clone());
        let span = wxpush_server::rpc::propagation::queue_process_span("wxpush.queue", &carrier);
        match self.step_queued(d.message).instrument(span).await {
            Ok(()) => {
                if let Err(e) = self.queue.ack(&id).await {
                    tracing::warn!(entry = %id, error = %e, "ack failed; the message will be seen again");
                }
            }
            Err(e) => {
                tracing::warn!(entry = %id, error = %e, "queue step not stored; the message will be seen again")
            }
        }
    }

    async fn step_queued(&self, mut m: QueuedMessage) -> Result<(), crate::queue::QueueError> {
        if let Some(s) = self.queue.status(&m.message_id).await?
            && is_final(s.status)
        {
            return Ok(());
        }
        let trace = TraceContext::parse(&m.traceparent).unwrap_or_else(TraceContext::new_root);
        let rendered = match self
            .render(&m.to_send_request(), &m.message_id, &trace)
            .await
        {
            Ok(r) => r,
            Err(e) => return self.upstream_failed(m, &trace, e).await,
        };
        let ctx = MessageCtx::for_queued(&m, &rendered, &trace);
        let breaker = self.breakers.get(&ctx.app_id);
        if !breaker.permits() {
            let until = now_ms()
                + breaker
                    .retry_after()
                    .max(Duration::from_millis(500))
                    .as_millis() as i64;
            return self
                .wait(&ctx, m, until, "circuit breaker open: WeChat is failing")
                .await;
        }
        let token = match self.token(&ctx, &trace, None).await {
            Ok(t) => t,
            Err(e) => return self.upstream_failed(m, &trace, e).await,
        };
        m.attempts += 1;
        let (mut step, action) = self
            .attempt_once(
                &breaker,
                api_of(&rendered),
                &token,
                &rendered,
                &trace,
                m.attempts,
            )
            .await;
        m.last_errcode = step.errcode;
        m.last_errmsg = step.errmsg.clone();
        let max = self.retry.max_attempts.max(1);
        match action {
            Action::Done => {
                self.finish(&ctx, &m, step, DeliveryStatus::Sent, false)
                    .await
            }
            Action::Fail => {
                self.finish(&ctx, &m, step, DeliveryStatus::Failed, true)
                    .await
            }
            Action::RefreshToken if !m.token_refreshed => {
                step.status = DeliveryStatus::Retrying as i32;
                self.emit(&ctx, &step).await;
                let _ = self.token(&ctx, &trace, Some(token)).await;
                m.token_refreshed = true;
                self.requeue(&ctx, &m, &step, now_ms()).await
            }
            Action::RefreshToken => {
                self.finish(&ctx, &m, step, DeliveryStatus::Failed, true)
                    .await
            }
            Action::Defer => {
                self.queue_metrics.deferred("quota");
                step.status = DeliveryStatus::Deferred as i32;
                self.emit(&ctx, &step).await;
                self.requeue(
                    &ctx,
                    &m,
                    &step,
                    now_ms() + until_quota_reset().as_millis() as i64,
                )
                .await
            }
            Action::Retry if breaker.state() == crate::breaker::State::Open => {
                // WeChat as a whole is down: wait for the breaker, do not
                // spend this message's attempts on the outage.
                self.queue_metrics.deferred("breaker");
                step.status = DeliveryStatus::Deferred as i32;
                self.emit(&ctx, &step).await;
                let until = now_ms()
                    + breaker
                        .retry_after()
                        .max(Duration::from_millis(500))
                        .as_millis() as i64;
                self.requeue(&ctx, &m, &step, until).await
            }
            Action::Retry => {
                m.failures += 1;
                if m.failures >= max {
                    self.finish(&ctx, &m, step, DeliveryStatus::Dead, true)
                        .await
                } else {
                    step.status = DeliveryStatus::Retrying as i32;
                    self.emit(&ctx, &step).await;
                    self.queue_metrics.retry();
                    let due = now_ms() + backoff(&self.retry, m.failures).as_millis() as i64;
                    self.requeue(&ctx, &m, &step, due).await
                }
            }
        }
    }

    /// The template or token service failed: transient codes wait and
    /// retry; anything else (template deleted, invalid now) fails for good.
    async fn upstream_failed(
        &self,
        mut m: QueuedMessage,
        trace: &TraceContext,
        e: DeliveryError,
    ) -> Result<(), crate::queue::QueueError> {
        let transient = matches!(&e, DeliveryError::Upstream { status, .. }
            if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::ResourceExhausted | tonic::Code::Internal));
        let ctx = MessageCtx::for_queued_unrendered(&m, trace);
        m.last_errcode = -1;
        m.last_errmsg = e.to_string();
        let mut step = Step::new(0, DeliveryStatus::Failed);
        step.after = m.attempts;
        step.errcode = -1;
        step.errmsg = e.to_string();
        if transient {
            m.failures += 1;
            if m.failures < self.retry.max_attempts.max(1) {
                step.status = DeliveryStatus::Retrying as i32;
                let due = now_ms() + backoff(&self.retry, m.failures).as_millis() as i64;
                return self.requeue(&ctx, &m, &step, due).await;
            }
            step.status = DeliveryStatus::Dead as i32;
        }
        self.emit(&ctx, &step).await;
        self.bury(&ctx, &m).await?;
        self.queue.set_status(&ctx.result(&step, m.attempts)).await
    }

    async fn wait(
        &self,
        ctx: &MessageCtx,
        m: QueuedMessage,
        until_ms: i64,
        why: &str,
    ) -> Result<(), crate::queue::QueueError> {
        let mut step = Step::new(0, DeliveryStatus::Deferred);
        step.after = m.attempts;
        step.errmsg = why.to_string();
        self.emit(ctx, &step).await;
        self.requeue(ctx, &m, &step, until_ms).await
    }

    async fn requeue(
        &self,
        ctx: &MessageCtx,
        m: &QueuedMessage,
        step: &Step,
        due_ms: i64,
    ) -> Result<(), crate::queue::QueueError> {
        self.queue.push(std::slice::from_ref(m), due_ms).await?;
        self.queue.set_status(&ctx.result(step, m.attempts)).await
    }

    async fn finish(
        &self,
        ctx: &MessageCtx,
        m: &QueuedMessage,
        mut step: Step,
        status: DeliveryStatus,
        dead_letter: bool,
    ) -> Result<(), crate::queue::QueueError> {
        step.status = status as i32;
        self.emit(ctx, &step).await;
        if dead_letter {
            self.bury(ctx, m).await?;
        }
        self.queue.set_status(&ctx.result(&step, m.attempts)).await
    }

    async fn bury(
        &self,
        ctx: &MessageCtx,
        m: &QueuedMessage,
    ) -> Result<(), crate::queue::QueueError> {
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
