//! The attempts of one message: token, the breaker, the WeChat call, the
//! errcode policy, backoff, and a delivery event per attempt.

use crate::config::SyncFallback;
use crate::error::DeliveryError;
use crate::message::{MessageCtx, Step};
use crate::pipeline::{Pipeline, with_trace};
use crate::policy::{Action, backoff};
use crate::queue::{QueuedMessage, now_ms};
use std::time::Duration;
use std::time::Instant;
use wxpush_proto::v1::*;
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::{MessageApi, until_quota_reset};

impl Pipeline {
    /// Attempts until SENT, a permanent failure, the attempt budget or the
    /// deadline. Dropping the future (the caller gave up) stops them.
    pub(crate) async fn attempts(
        &self,
        req: &SendRequest,
        ctx: &MessageCtx,
        rendered: &RenderTemplateResponse,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<DeliveryResult, DeliveryError> {
        let api = api_of(rendered);
        let breaker = self.breakers.get(&ctx.app_id);
        let mut token = self.token(ctx, trace, None).await?;
        let mut token_refreshed = false;
        let mut attempt = 0;
        loop {
            if !breaker.permits() {
                if self.sync_fallback == SyncFallback::Queue {
                    // Degrade, never drop: the queue delivers it once WeChat
                    // is back.
                    let until = now_ms()
                        + breaker
                            .retry_after()
                            .max(Duration::from_millis(500))
                            .as_millis() as i64;
                    return self.defer_to_queue(req, ctx, trace, attempt, until).await;
                }
                if attempt > 0 {
                    let mut step = Step::new(0, DeliveryStatus::Failed);
                    step.after = attempt;
                    step.errcode = -1;
                    step.errmsg = "circuit breaker opened; no further attempts".into();
                    self.emit(ctx, &step).await;
                }
                return Err(DeliveryError::BreakerOpen {
                    app_id: ctx.app_id.clone(),
                    retry_after: breaker.retry_after(),
                });
            }
            attempt += 1;
            let (mut step, action) = self
                .attempt_once(&breaker, api, &token, rendered, trace, attempt)
                .await;
            let backoff_for_next = backoff(&self.retry, attempt);
            let out_of_attempts = attempt >= self.retry.max_attempts.max(1);
            let out_of_time = Instant::now() + backoff_for_next >= deadline;
            step.status = match action {
                Action::Done => DeliveryStatus::Sent,
                Action::Fail => DeliveryStatus::Failed,
                Action::Defer => DeliveryStatus::Deferred,
                Action::RefreshToken if !token_refreshed && !out_of_time => {
                    DeliveryStatus::Retrying
                }
                Action::Retry if !out_of_attempts && !out_of_time => DeliveryStatus::Retrying,
                Action::RefreshToken | Action::Retry => DeliveryStatus::Failed,
            } as i32;
            tracing::info!(
                message_id = %ctx.message_id,
                trace_id = %ctx.trace_id,
                app_id = %ctx.app_id,
                template_key = %ctx.template_key,
                attempt,
                status = DeliveryStatus::try_from(step.status).map(|s| s.as_str_name()).unwrap_or("?"),
                errcode = step.errcode,
                latency_ms = step.latency_ms,
                "delivery attempt"
            );
            self.emit(ctx, &step).await;
            match action {
                Action::Done | Action::Fail => return Ok(ctx.result(&step, attempt)),
                Action::Defer => {
                    return Err(DeliveryError::QuotaExhausted {
                        app_id: ctx.app_id.clone(),
                        retry_after: until_quota_reset(),
                    });
                }
                _ if step.status == DeliveryStatus::Failed as i32 => {
                    return Ok(ctx.result(&step, attempt));
                }
                Action::RefreshToken => {
                    token = self.token(ctx, trace, Some(token)).await?;
                    token_refreshed = true;
                }
                Action::Retry => tokio::time::sleep(backoff_for_next).await,
            }
        }
    }

    /// Hands a sync message to the queue while the breaker is open: DEFERRED.
    async fn defer_to_queue(
        &self,
        req: &SendRequest,
        ctx: &MessageCtx,
        trace: &TraceContext,
        attempts: u32,
        until_ms: i64,
    ) -> Result<DeliveryResult, DeliveryError> {
        let m = QueuedMessage {
            attempts,
            ..QueuedMessage::accepted(req, &ctx.message_id, &ctx.app_id, trace)
        };
        let mut step = Step::new(0, DeliveryStatus::Deferred);
        step.after = attempts;
        step.errmsg = "circuit breaker open: queued for delivery when WeChat recovers".into();
        let result = ctx.result(&step, attempts);
        self.emit(ctx, &step).await;
        self.queue
            .set_status(&result)
            .await
            .map_err(|e| DeliveryError::Backend(e.to_string()))?;
        self.queue
            .push(std::slice::from_ref(&m), until_ms)
            .await
            .map_err(|e| DeliveryError::Backend(e.to_string()))?;
        Ok(result)
    }

    /// One WeChat call: the step it makes (status still to be decided) and
    /// what the policy says to do next; the breaker learns of WeChat's health.
    pub(crate) async fn attempt_once(
        &self,
        breaker: &crate::breaker::Breaker,
        api: MessageApi,
        token: &str,
        rendered: &RenderTemplateResponse,
        trace: &TraceContext,
        attempt: u32,
    ) -> (Step, Action) {
        let started = Instant::now();
        let outcome = self
            .wechat
            .send_message(api, token, &rendered.body_json, Some(&trace.child()))
            .await
            .map(|r| r.msgid);
        let mut step = Step::new(attempt, DeliveryStatus::Sending);
        step.latency_ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        let action = Action::after(&outcome);
        match outcome {
            Ok(msgid) => {
                step.wechat_msgid = msgid;
                step.errmsg = "ok".into();
            }
            Err(e) => {
                step.errcode = e.errcode();
                step.errmsg = e.errmsg();
            }
        }
        if action.counts_against_wechat() {
            breaker.unhealthy();
        } else {
            breaker.healthy();
        }
        (step, action)
    }

    /// The app's token, or (with `bad`) a replacement for a rejected one.
    pub(crate) async fn token(
        &self,
        ctx: &MessageCtx,
        trace: &TraceContext,
        bad: Option<String>,
    ) -> Result<String, DeliveryError> {
        let mut client = self.token.clone();
        let response = match bad {
            None => {
                client
                    .get_access_token(with_trace(
                        GetAccessTokenRequest {
                            app_id: ctx.app_id.clone(),
                        },
                        &trace.child(),
                    ))
                    .await
            }
            Some(bad_token) => {
                client
                    .invalidate_access_token(with_trace(
                        InvalidateAccessTokenRequest {
                            app_id: ctx.app_id.clone(),
                            bad_token,
                        },
                        &trace.child(),
                    ))
                    .await
            }
        };
        response
            .map(|r| r.into_inner().access_token)
            .map_err(|status| DeliveryError::Upstream {
                service: "token",
                status,
            })
    }

    pub(crate) async fn emit(&self, ctx: &MessageCtx, step: &Step) {
        if let Err(e) = self.events.publish(ctx.event(step)).await {
            tracing::error!(message_id = %ctx.message_id, error = %e, "delivery event not published");
        }
    }
}

/// The WeChat API a rendered message goes to.
pub(crate) fn api_of(rendered: &RenderTemplateResponse) -> MessageApi {
    if rendered.kind == MessageKind::Subscribe as i32 {
        MessageApi::Subscribe
    } else {
        MessageApi::Template
    }
}
