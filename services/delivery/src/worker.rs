//! Queue workers inside the delivery service: they take messages from the
//! queue and move each one step: render, token, breaker, one attempt, then
//! what [`decide`] says, exactly as a sync `Send` would. A retry is a
//! delayed re-queue, so no worker sleeps on a backoff; while an app's
//! breaker is open or its quota is used up its messages wait (DEFERRED)
//! and resume by themselves.

use crate::breaker::State;
use crate::config::{OnUncertain, QueueSettings, RetrySettings};
use crate::decision::{Hold, Next, Outcome, Path, decide};
use crate::error::DeliveryError;
use crate::ledger::{Ledger, hold_until_ms};
use crate::message::{MessageCtx, Step};
use crate::policy::backoff;
use crate::queue::{Delivery, QueueError, QueuedMessage, is_final, now_ms};
use crate::ratelimit::RateLimiter;
use crate::send::blocked;
use crate::sender::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use wxpush_proto::v1::*;
use wxpush_server::shutdown::Shutdown;
use wxpush_server::trace_context::TraceContext;

/// How often the queue depth metrics are refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(2);
/// Pause after the queue backend failed.
const BACKEND_PAUSE: Duration = Duration::from_millis(500);
/// The errmsg of a message reported as uncertain.
pub const UNCERTAIN: &str = "uncertain: the last attempt may or may not have reached WeChat (its worker stopped during the call); not sent again (queue.on_uncertain: report); replay it to send it again";

/// The workers of this process; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    sender: Sender,
    ledger: Ledger,
    limiter: Arc<dyn RateLimiter>,
    retry: RetrySettings,
    settings: QueueSettings,
}

impl Worker {
    pub fn new(
        sender: Sender,
        ledger: Ledger,
        limiter: Arc<dyn RateLimiter>,
        config: &crate::DeliveryConfig,
    ) -> Self {
        Self {
            sender,
            ledger,
            limiter,
            retry: config.retry.clone(),
            settings: config.queue.clone(),
        }
    }

    /// Works the queue until `drain` fires, then lets in-flight messages
    /// finish. Messages not acknowledged stay queued for other replicas.
    pub async fn run(self, drain: Shutdown) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut last_depth = Instant::now() - DEPTH_EVERY;
        let queue = self.ledger.queue.clone();
        while !drain.fired() {
            while tasks.try_join_next().is_some() {}
            if let Err(e) = queue.promote_due(now_ms()).await {
                tracing::warn!(error = %e, "promoting delayed messages failed");
            }
            if last_depth.elapsed() >= DEPTH_EVERY {
                last_depth = Instant::now();
                if let Ok(d) = queue.depth(now_ms()).await {
                    self.ledger.metrics().observe(&d);
                }
            }
            let free = permits.available_permits();
            if free == 0 {
                tasks.join_next().await;
                continue;
            }
            let batch = tokio::select! {
                batch = queue.next_batch(free) => batch,
                _ = drain.wait() => break,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the queue failed");
                    tokio::time::sleep(BACKEND_PAUSE).await;
                    continue;
                }
            };
            for delivery in batch {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let worker = self.clone();
                tasks.spawn(async move {
                    worker.deliver(delivery).await;
                    drop(permit);
                });
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("delivery workers stopped");
    }

    /// One queued message, one step further; acknowledged only after that
    /// step is stored.
    async fn deliver(&self, d: Delivery) {
        let id = d.id.clone();
        // The queue hop continues the trace of the accepting call.
        let mut carrier = d.message.carrier.clone();
        carrier
            .entry("traceparent".into())
            .or_insert_with(|| d.message.traceparent.clone());
        let span = wxpush_server::rpc::propagation::queue_process_span("wxpush.queue", &carrier);
        // The accepting call's canary pin and baggage go on with it.
        let forwarded = wxpush_server::rpc::propagation::Forwarded::from_pairs(&carrier);
        match forwarded.scope(self.step(d.message).instrument(span)).await {
            Ok(()) => {
                if let Err(e) = self.ledger.queue.ack(&id).await {
                    tracing::warn!(entry = %id, error = %e, "ack failed; the message will be seen again");
                }
            }
            Err(e) => {
                tracing::warn!(entry = %id, error = %e, "queue step not stored; the message will be seen again");
                self.ledger.queue.release(&id);
            }
        }
    }

    async fn step(&self, mut m: QueuedMessage) -> Result<(), QueueError> {
        if let Some(s) = self.ledger.queue.status(&m.message_id).await?
            && is_final(s.status)
        {
            return Ok(());
        }
        let trace = TraceContext::parse(&m.traceparent).unwrap_or_else(TraceContext::new_root);
        // One step has the budget of a sync send.
        let deadline = Instant::now() + Duration::from_millis(self.retry.total_deadline_ms);
        let rendered = match self
            .sender
            .render(&m.to_send_request(), &m.message_id, &trace, deadline)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let ctx = MessageCtx::for_queued_unrendered(&m, &trace);
                return self.upstream_failed(&ctx, m, e).await;
            }
        };
        let ctx = MessageCtx::for_queued(&m, &rendered, &trace);
        // No client_msg_id for this API: WeChat cannot absorb a resend.
        let unabsorbed = ctx.kind == MessageKind::Subscribe as i32;
        if unabsorbed && let Some((step, begun)) = self.uncertain(&m).await? {
            // The attempt was made, whatever came of it: a replay of the
            // dead letter then sends without being held as uncertain again.
            m.attempts = begun;
            return self
                .conclude(&ctx, m, step, Next::Finish { dead_letter: true }, now_ms())
                .await;
        }
        let breaker = self.sender.breaker(&ctx.app_id);
        let mut used_token = None;
        // The rate limit first: a half-open breaker's probe slot is not
        // taken by a message that would not be sent anyway.
        let limited = match self.limiter.check(&ctx.app_id).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "rate limit backend failed; pacing by a short wait");
                Some(crate::breaker::MIN_HOLD)
            }
        };
        let (outcome, mut step) = if let Some(wait) = limited {
            let why = "over the app's send rate limit";
            (
                Outcome::Limited(wait),
                Step::change(DeliveryStatus::Deferred, m.attempts, why),
            )
        } else if breaker.permits() {
            let token = match self.sender.token(&ctx.app_id, &trace, deadline).await {
                Ok(t) => t,
                Err(e) => return self.upstream_failed(&ctx, m, e).await,
            };
            if unabsorbed {
                self.ledger
                    .queue
                    .begin_attempt(&m.message_id, m.attempts + 1)
                    .await?;
            }
            let (step, action) = self
                .sender
                .attempt(&breaker, &rendered, &token, &trace, m.attempts + 1)
                .await;
            m.attempts += 1;
            used_token = Some(token);
            (Outcome::Answered(action), step)
        } else {
            (Outcome::Blocked, blocked(m.attempts))
        };
        let open = breaker.state() == State::Open;
        let d = decide(
            outcome,
            m.tally(),
            Path::Queued,
            open,
            self.retry.max_attempts,
        );
        step.status = d.status;
        m.set_tally(d.tally);
        if d.next == Next::RefreshToken
            && let Some(bad) = used_token
            && let Err(e) = self
                .sender
                .replace_token(&ctx.app_id, bad, &trace, deadline)
                .await
        {
            // The next attempt meets the bad token again and fails for good.
            tracing::warn!(message_id = %m.message_id, error = %e, "token not replaced");
        }
        let due = match d.next {
            Next::Finish { .. } | Next::RefreshToken => now_ms(),
            Next::Backoff => now_ms() + backoff(&self.retry, m.failures).as_millis() as i64,
            Next::Wait(hold) | Next::Refuse(hold) => hold_until_ms(hold, &breaker),
        };
        self.conclude(&ctx, m, step, d.next, due).await
    }

    /// A message whose last begun attempt has no stored outcome: its worker
    /// died while WeChat had it, and whether the user got it is unknown.
    /// `Some((step, attempt))` to report it instead of sending again (the
    /// template's `queue.on_uncertain`); `None` to go on (resend, or
    /// nothing unsure).
    async fn uncertain(&self, m: &QueuedMessage) -> Result<Option<(Step, u32)>, QueueError> {
        let Some(begun) = self.ledger.queue.begun_attempt(&m.message_id).await? else {
            return Ok(None);
        };
        if begun <= m.attempts {
            return Ok(None);
        }
        match self.settings.on_uncertain.for_template(&m.template_key) {
            OnUncertain::Resend => {
                self.ledger.metrics().uncertain("resend");
                tracing::warn!(message_id = %m.message_id, "uncertain send: sending again (on_uncertain: resend)");
                Ok(None)
            }
            OnUncertain::Report => {
                self.ledger.metrics().uncertain("report");
                tracing::warn!(message_id = %m.message_id, "uncertain send: not sent again (on_uncertain: report)");
                let mut step = Step::change(DeliveryStatus::Dead, begun, UNCERTAIN);
                step.errcode = -1;
                Ok(Some((step, begun)))
            }
        }
    }

    /// The template or token service failed: transient failures wait and
    /// retry within the budget; anything else fails the message for good.
    async fn upstream_failed(
        &self,
        ctx: &MessageCtx,
        mut m: QueuedMessage,
        e: DeliveryError,
    ) -> Result<(), QueueError> {
        let outcome = Outcome::Upstream {
            transient: e.is_transient(),
        };
        let d = decide(
            outcome,
            m.tally(),
            Path::Queued,
            false,
            self.retry.max_attempts,
        );
        m.set_tally(d.tally);
        let mut step = Step::change(d.status, m.attempts, e.to_string());
        step.errcode = -1;
        let due = now_ms() + backoff(&self.retry, m.failures).as_millis() as i64;
        self.conclude(ctx, m, step, d.next, due).await
    }

    /// Records the step, then finishes the message (dead-lettering it if
    /// the decision says so) or puts it back in the queue, due at `due`.
    async fn conclude(
        &self,
        ctx: &MessageCtx,
        mut m: QueuedMessage,
        step: Step,
        next: Next,
        due: i64,
    ) -> Result<(), QueueError> {
        m.last_errcode = step.errcode;
        m.last_errmsg = step.errmsg.clone();
        match next {
            Next::Backoff => self.ledger.metrics().retry(),
            Next::Wait(Hold::Breaker) => self.ledger.metrics().deferred("breaker"),
            Next::Wait(Hold::Quota) => self.ledger.metrics().deferred("quota"),
            Next::Wait(Hold::Rate(_)) => self.ledger.metrics().deferred("rate_limit"),
            Next::Finish { .. } | Next::RefreshToken | Next::Refuse(_) => {}
        }
        // The event is written beside the status and the queue, not before.
        let stored = async {
            match next {
                Next::Finish { dead_letter } => {
                    if dead_letter {
                        self.ledger.bury(ctx, &m).await?;
                    }
                    self.ledger.settle(&ctx.result(&step, m.attempts)).await
                }
                Next::RefreshToken | Next::Backoff | Next::Wait(_) | Next::Refuse(_) => {
                    self.ledger.hold(ctx, &m, &step, due).await.map(|_| ())
                }
            }
        };
        let ((), stored) = tokio::join!(self.ledger.emit(ctx, &step), stored);
        stored
    }
}
