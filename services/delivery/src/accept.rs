//! Accepting async work: `SendAsync` and `SendBatch` check and render now
//! (so a bad request is refused at once, per recipient in a batch), put the
//! messages on the durable queue (delayed for `send_at` or quiet hours) and
//! answer with a message id each.

use crate::error::DeliveryError;
use crate::message::{MessageCtx, Step};
use crate::pipeline::{Pipeline, with_trace};
use crate::queue::{QueuedMessage, now_ms};
use crate::quiet::quiet_until;
use crate::request::check_send;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use wxpush_proto::v1::*;
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;

/// Most recipients in one `SendBatch`.
pub const MAX_BATCH: usize = 1000;
/// Renders of a batch in flight at once.
const RENDER_CONCURRENCY: usize = 32;

impl Pipeline {
    /// `SendAsync`: accepted into the queue, QUEUED (or DEFERRED when it
    /// waits for `send_at` or quiet hours).
    pub async fn send_async(
        &self,
        req: SendRequest,
        trace: TraceContext,
    ) -> Result<SendAsyncResponse, DeliveryError> {
        let mut violations = check_send(&SendRequest {
            send_at: None,
            ..req.clone()
        });
        if let Some(t) = &req.send_at
            && (t.nanos < 0 || t.seconds < 0)
        {
            violations.push(Violation::new("send_at", "is not a valid time"));
        }
        if !violations.is_empty() {
            return Err(DeliveryError::InvalidArgument(violations));
        }
        let not_before = self
            .not_before(&req.template_key, req.send_at.as_ref(), &trace)
            .await?;
        let message_id = uuid::Uuid::now_v7().simple().to_string();
        let rendered = self.render(&req, &message_id, &trace).await?;
        check_app(&req, &rendered)?;
        let key = (!req.idempotency_key.is_empty())
            .then(|| format!("{}:{}", rendered.app_id, req.idempotency_key));
        if let Some(key) = &key
            && let Some(first) = self
                .claim(key, &message_id, Instant::now() + Duration::from_secs(5))
                .await?
        {
            return Ok(accepted(&first));
        }
        let m = QueuedMessage::accepted(&req, &message_id, &rendered.app_id, &trace);
        let result = self
            .enqueue(&[(m, rendered)], not_before, &trace)
            .await
            .map(|mut r| r.remove(0));
        if let Some(key) = &key {
            let _ = match &result {
                Ok(r) => {
                    self.idempotency
                        .complete(key, r, self.idempotency_window)
                        .await
                }
                Err(_) => self.idempotency.release(key).await,
            };
        }
        result.map(|r| accepted(&r))
    }

    /// `SendBatch`: each valid recipient accepted, each invalid one reported.
    pub async fn send_batch(
        &self,
        req: SendBatchRequest,
        trace: TraceContext,
    ) -> Result<SendBatchResponse, DeliveryError> {
        let mut v = Vec::new();
        if req.template_key.trim().is_empty() {
            v.push(Violation::new("template_key", "is required"));
        }
        if req.recipients.is_empty() || req.recipients.len() > MAX_BATCH {
            v.push(Violation::new(
                "recipients",
                format!(
                    "{} recipients; 1 to {MAX_BATCH} allowed",
                    req.recipients.len()
                ),
            ));
        }
        if !v.is_empty() {
            return Err(DeliveryError::InvalidArgument(v));
        }
        let not_before = self
            .not_before(&req.template_key, req.send_at.as_ref(), &trace)
            .await?;
        let requests: Vec<SendRequest> = req
            .recipients
            .iter()
            .map(|r| {
                let mut variables = req.common_variables.clone();
                variables.extend(r.variables.clone());
                SendRequest {
                    app_id: req.app_id.clone(),
                    template_key: req.template_key.clone(),
                    openid: r.openid.clone(),
                    variables,
                    idempotency_key: r.idempotency_key.clone(),
                    ..Default::default()
                }
            })
            .collect();
        let checked: Vec<Result<(QueuedMessage, RenderTemplateResponse), String>> =
            futures_util::stream::iter(requests.into_iter().enumerate())
                .map(|(i, r)| {
                    let this = self.clone();
                    async move { this.check_recipient(i, &r, &trace).await }
                })
                .buffered(RENDER_CONCURRENCY)
                .collect()
                .await;
        if let Some(Err(e)) = checked
            .iter()
            .find(|c| matches!(c, Err(e) if e.starts_with("NOT_FOUND")))
        {
            return Err(DeliveryError::Upstream {
                service: "template",
                status: tonic::Status::not_found(e.trim_start_matches("NOT_FOUND ").to_string()),
            });
        }
        let mut results: Vec<BatchItemResult> = Vec::with_capacity(checked.len());
        let mut accepted = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            let openid = req.recipients[i].openid.clone();
            match c {
                Ok((m, rendered)) => {
                    results.push(BatchItemResult {
                        index: i as u32,
                        openid,
                        message_id: m.message_id.clone(),
                        ..Default::default()
                    });
                    accepted.push((m, rendered));
                }
                Err(error) => results.push(BatchItemResult {
                    index: i as u32,
                    openid,
                    status: DeliveryStatus::Failed as i32,
                    error,
                    ..Default::default()
                }),
            }
        }
        let status = self
            .enqueue(&accepted, not_before, &trace)
            .await?
            .first()
            .map_or(0, |r| r.status);
        for r in results.iter_mut().filter(|r| !r.message_id.is_empty()) {
            r.status = status;
        }
        let accepted = accepted.len() as u32;
        Ok(SendBatchResponse {
            trace_id: trace.trace_id(),
            rejected: results.len() as u32 - accepted,
            accepted,
            results,
        })
    }

    async fn check_recipient(
        &self,
        i: usize,
        req: &SendRequest,
        trace: &TraceContext,
    ) -> Result<(QueuedMessage, RenderTemplateResponse), String> {
        let prefix = format!("recipients[{i}].");
        let v = check_send(req);
        if !v.is_empty() {
            return Err(describe(&prefix, &v));
        }
        let message_id = uuid::Uuid::now_v7().simple().to_string();
        match self.render(req, &message_id, trace).await {
            Ok(rendered) => match check_app(req, &rendered) {
                Ok(()) => Ok((
                    QueuedMessage::accepted(req, &message_id, &rendered.app_id, trace),
                    rendered,
                )),
                Err(DeliveryError::InvalidArgument(v)) => Err(describe("", &v)),
                Err(e) => Err(e.to_string()),
            },
            Err(DeliveryError::Upstream { status, .. })
                if status.code() == tonic::Code::NotFound =>
            {
                Err(format!("NOT_FOUND {}", status.message()))
            }
            Err(DeliveryError::Upstream { status, .. }) => {
                let fields = wxpush_server::status::field_violations(&status);
                if fields.is_empty() {
                    Err(status.message().to_string())
                } else {
                    Err(describe(&prefix, &fields))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Puts accepted messages on the queue; each gets its status and a
    /// QUEUED / DEFERRED event.
    async fn enqueue(
        &self,
        items: &[(QueuedMessage, RenderTemplateResponse)],
        not_before: i64,
        trace: &TraceContext,
    ) -> Result<Vec<DeliveryResult>, DeliveryError> {
        let messages: Vec<QueuedMessage> = items.iter().map(|(m, _)| m.clone()).collect();
        let status = if not_before > now_ms() {
            DeliveryStatus::Deferred
        } else {
            DeliveryStatus::Queued
        };
        // Status and event first: a worker may finish the message before
        // this call returns, and its SENT must not be overwritten.
        let mut out = Vec::with_capacity(items.len());
        for (m, rendered) in items {
            let ctx = MessageCtx::for_queued(m, rendered, trace);
            let mut step = Step::new(0, status);
            if status == DeliveryStatus::Deferred {
                self.queue_metrics.deferred("schedule");
                step.errmsg = "waiting for send_at or quiet hours".into();
            }
            self.emit(&ctx, &step).await;
            let result = ctx.result(&step, 0);
            self.queue
                .set_status(&result)
                .await
                .map_err(|e| DeliveryError::Backend(e.to_string()))?;
            out.push(result);
        }
        self.queue
            .push(&messages, not_before)
            .await
            .map_err(|e| DeliveryError::Backend(e.to_string()))?;
        Ok(out)
    }

    /// When a message for this template may be sent: `send_at`, pushed to
    /// the end of the template's quiet hours if it falls inside them.
    async fn not_before(
        &self,
        key: &str,
        send_at: Option<&wxpush_proto::Timestamp>,
        trace: &TraceContext,
    ) -> Result<i64, DeliveryError> {
        let at = send_at.map_or(0, crate::queue::ts_ms).max(now_ms());
        let template = self
            .template
            .clone()
            .get_template(with_trace(
                GetTemplateRequest {
                    key: key.to_string(),
                },
                &trace.child(),
            ))
            .await
            .map_err(|status| DeliveryError::Upstream {
                service: "template",
                status,
            })?
            .into_inner();
        match template.quiet_hours {
            Some(q) => match quiet_until(&q, at) {
                Ok(until) => Ok(until.unwrap_or(at)),
                Err(e) => Err(DeliveryError::Upstream {
                    service: "template",
                    status: tonic::Status::failed_precondition(format!("template {key}: {e}")),
                }),
            },
            None => Ok(at),
        }
    }
}

pub(crate) fn check_app(
    req: &SendRequest,
    rendered: &RenderTemplateResponse,
) -> Result<(), DeliveryError> {
    if !req.app_id.is_empty() && req.app_id != rendered.app_id {
        return Err(DeliveryError::InvalidArgument(vec![Violation::new(
            "app_id",
            format!(
                "template {} belongs to app {}",
                req.template_key, rendered.app_id
            ),
        )]));
    }
    Ok(())
}

fn accepted(r: &DeliveryResult) -> SendAsyncResponse {
    SendAsyncResponse {
        message_id: r.message_id.clone(),
        trace_id: r.trace_id.clone(),
        status: r.status,
    }
}

fn describe(prefix: &str, v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("{prefix}{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}
