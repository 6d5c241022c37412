//! `Send`: one message now, while the caller waits. The walk of a message:
//! checks, render (template service), idempotency key, rate limit, then
//! attempts until [`decide`] says it is final, or hands it to the queue
//! (DEFERRED) while WeChat cannot take it. Every attempt and status change
//! becomes a delivery event through the [`crate::ledger::Ledger`].

use crate::breaker::State;
use crate::decision::{Next, Outcome, Path, Tally, decide};
use crate::error::DeliveryError;
use crate::intake::Intake;
use crate::ledger::hold_until_ms;
use crate::message::{MessageCtx, Step};
use crate::policy::backoff;
use crate::queue::QueuedMessage;
use crate::request::check_send;
use crate::sender::Rendered;
use std::time::{Duration, Instant};
use wxpush_proto::v1::*;
use wxpush_server::trace_context::TraceContext;

impl Intake {
    /// Sends one message now. A WeChat rejection is a FAILED result; a bad
    /// request, a failing upstream service, a rate limit or (with the
    /// `unavailable` fallback) an open breaker is an error. Never outlives
    /// `caller_timeout`.
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
        let deadline = self.deadline(caller_timeout);
        let (message_id, rendered, key) = self.new_message(&req, &trace, deadline).await?;
        let ctx = MessageCtx::accepted(message_id, &trace, &req, &rendered);
        if let Some(key) = &key
            && let Some(first) = self.claim(key, &ctx.message_id, deadline).await?
        {
            return Ok(first);
        }
        let result = async {
            self.admit(&ctx.app_id).await?;
            self.attempts(&req, &ctx, &rendered, &trace, deadline).await
        }
        .await;
        if let Some(key) = &key {
            self.settle_key(key, &result).await;
        }
        result
    }

    /// Attempts until a final status, the hand-over to the queue, or a
    /// refusal. Dropping the future (the caller gave up) stops them.
    async fn attempts(
        &self,
        req: &SendRequest,
        ctx: &MessageCtx,
        rendered: &Rendered,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<DeliveryResult, DeliveryError> {
        let breaker = self.sender.breaker(&ctx.app_id);
        let mut tally = Tally::default();
        let mut token: Option<String> = None;
        loop {
            let pause = backoff(&self.retry, tally.failures + 1);
            let (outcome, mut step) = if breaker.permits() {
                let current = match token.take() {
                    Some(t) => t,
                    None => self.sender.token(&ctx.app_id, trace, deadline).await?,
                };
                tally.attempts += 1;
                let (step, action) = self
                    .sender
                    .attempt(&breaker, rendered, &current, trace, tally.attempts)
                    .await;
                token = Some(current);
                (Outcome::Answered(action), step)
            } else {
                (Outcome::Blocked, blocked(tally.attempts))
            };
            let path = Path::Sync {
                out_of_time: Instant::now() + pause >= deadline,
                fallback: self.fallback,
            };
            let open = breaker.state() == State::Open;
            let d = decide(outcome, tally, path, open, self.retry.max_attempts);
            tally = d.tally;
            step.status = d.status;
            let finished = matches!(d.next, Next::Finish { .. });
            if d.logged && !finished {
                self.ledger.emit(ctx, &step).await;
            }
            match d.next {
                Next::Finish { .. } => {
                    let result = ctx.result(&step, tally.attempts);
                    if let Err(e) = self.ledger.finish(ctx, &step, d.logged, &result).await {
                        tracing::warn!(message_id = %ctx.message_id, error = %e, "status not stored");
                    }
                    return Ok(result);
                }
                Next::RefreshToken => {
                    let bad = token.take().unwrap_or_default();
                    token = Some(
                        self.sender
                            .replace_token(&ctx.app_id, bad, trace, deadline)
                            .await?,
                    );
                }
                Next::Backoff => tokio::time::sleep(pause).await,
                Next::Wait(hold) => {
                    // Degrade, never drop: the queue sends it once WeChat can.
                    let mut m = QueuedMessage::accepted(req, &ctx.message_id, &ctx.app_id, trace);
                    m.set_tally(tally);
                    m.last_errcode = step.errcode;
                    m.last_errmsg = step.errmsg.clone();
                    let until = hold_until_ms(hold, &breaker);
                    return Ok(self.ledger.hold(ctx, &m, &step, until).await?);
                }
                Next::Refuse(hold) => {
                    return Err(DeliveryError::refused(hold, &ctx.app_id, &breaker));
                }
            }
        }
    }
}

/// The step of a message the breaker let no call through for.
pub(crate) fn blocked(attempts: u32) -> Step {
    let mut step = Step::change(
        DeliveryStatus::Deferred,
        attempts,
        "circuit breaker open: WeChat is failing; nothing sent",
    );
    step.errcode = -1;
    step
}
