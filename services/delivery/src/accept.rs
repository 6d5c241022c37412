//! Accepting async work: `SendAsync` and `SendBatch` check and render now
//! (so a bad request is refused at once, per recipient in a batch), put the
//! messages on the durable queue (delayed for `send_at` or quiet hours) and
//! answer with a message id each.

use crate::error::DeliveryError;
use crate::intake::{Intake, check_app};
use crate::message::{MessageCtx, Step, new_id};
use crate::queue::{QueueError, QueuedMessage, now_ms};
use crate::quiet::quiet_until;
use crate::request::{check_send, check_send_async, check_send_at, check_template_key};
use crate::sender::Rendered;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use wxpush_proto::v1::*;
use wxpush_server::failure::Failure;
use wxpush_server::limits::{MAX_BATCH_VARIABLE_BYTES, check_variables, variable_bytes};
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;

/// Most recipients in one `SendBatch`.
pub const MAX_BATCH: usize = 1000;
/// Renders of a batch in flight at once.
const RENDER_CONCURRENCY: usize = 32;
/// How long `SendAsync` waits for a request holding the same key.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// Why one recipient of a batch was not accepted.
enum Refusal {
    /// This recipient only: reported in its item, as the error a Send of
    /// it alone would have given.
    Item(Failure),
    /// The whole batch (its template does not exist).
    Batch(DeliveryError),
}

impl Intake {
    /// `SendAsync`: accepted into the queue, QUEUED (or DEFERRED when it
    /// waits for `send_at` or quiet hours).
    pub async fn send_async(
        &self,
        req: SendAsyncRequest,
        trace: TraceContext,
        caller_timeout: Option<Duration>,
    ) -> Result<SendAsyncResponse, DeliveryError> {
        let deadline = self.deadline(caller_timeout);
        let (req, send_at) = req.into_parts();
        let violations = check_send_async(&req, send_at.as_ref(), now_ms() / 1000);
        if !violations.is_empty() {
            return Err(DeliveryError::InvalidArgument(violations));
        }
        let not_before = self
            .not_before(&req.template_key, send_at.as_ref(), &trace, deadline)
            .await?;
        let (message_id, rendered, key) = self.new_message(&req, &trace, deadline).await?;
        if let Some(key) = &key
            && let Some(first) = self
                .claim(key, &message_id, deadline.min(Instant::now() + CLAIM_WAIT))
                .await?
        {
            return Ok(accepted(&first));
        }
        let m = QueuedMessage::accepted(&req, &message_id, &rendered.response.app_id, &trace);
        let result = self
            .enqueue(&[(m, rendered)], not_before, &trace)
            .await
            .map(|mut r| r.remove(0));
        if let Some(key) = &key {
            self.settle_key(key, &result).await;
        }
        result.map(|r| accepted(&r))
    }

    /// `SendBatch`: each valid recipient accepted, each invalid one reported.
    pub async fn send_batch(
        &self,
        req: SendBatchRequest,
        trace: TraceContext,
        caller_timeout: Option<Duration>,
    ) -> Result<SendBatchResponse, DeliveryError> {
        let deadline = self.deadline(caller_timeout);
        let mut v = Vec::new();
        check_template_key(&req.template_key, &mut v);
        if req.recipients.is_empty() || req.recipients.len() > MAX_BATCH {
            v.push(Violation::new(
                "recipients",
                format!(
                    "{} recipients; 1 to {MAX_BATCH} allowed",
                    req.recipients.len()
                ),
            ));
        }
        check_batch(&req, now_ms() / 1000, &mut v);
        if !v.is_empty() {
            return Err(DeliveryError::InvalidArgument(v));
        }
        let not_before = self
            .not_before(&req.template_key, req.send_at.as_ref(), &trace, deadline)
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
        let mut checked: Vec<Result<(QueuedMessage, Rendered), Refusal>> =
            futures_util::stream::iter(requests.into_iter().enumerate())
                .map(|(i, r)| {
                    let this = self.clone();
                    async move { this.check_recipient(i, &r, &trace, deadline).await }
                })
                .buffered(RENDER_CONCURRENCY)
                .collect()
                .await;
        // A missing template, or one the caller may not send, fails the
        // whole batch before anything is queued.
        if let Some(i) = checked
            .iter()
            .position(|c| matches!(c, Err(Refusal::Batch(_))))
            && let Err(Refusal::Batch(e)) = checked.swap_remove(i)
        {
            return Err(e);
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
                Err(Refusal::Item(failure)) => results.push(BatchItemResult {
                    index: i as u32,
                    openid,
                    status: DeliveryStatus::Failed.into(),
                    error: Some(failure.into_rpc_status()),
                    ..Default::default()
                }),
                Err(Refusal::Batch(e)) => return Err(e),
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
        deadline: Instant,
    ) -> Result<(QueuedMessage, Rendered), Refusal> {
        // Field paths as the batch names them: recipients[3].openid.
        let item = |e: DeliveryError| match e {
            DeliveryError::InvalidArgument(v) => Refusal::Item(Failure::invalid(&within(i, v))),
            e => {
                let failure = e.failure();
                if failure.code() == tonic::Code::InvalidArgument {
                    Refusal::Item(Failure::invalid(&within(i, failure.violations().to_vec())))
                } else {
                    Refusal::Item(failure)
                }
            }
        };
        let v = check_send(req);
        if !v.is_empty() {
            return Err(item(DeliveryError::InvalidArgument(v)));
        }
        let message_id = new_id();
        let rendered = match self.sender.render(req, &message_id, trace, deadline).await {
            Ok(r) => r,
            Err(DeliveryError::Upstream { service, status })
                if status.code() == tonic::Code::NotFound =>
            {
                return Err(Refusal::Batch(DeliveryError::Upstream { service, status }));
            }
            Err(e) => return Err(item(e)),
        };
        match check_app(req, &rendered) {
            Ok(()) => Ok((
                QueuedMessage::accepted(req, &message_id, &rendered.response.app_id, trace),
                rendered,
            )),
            // A batch has one template: no grant for it refuses them all.
            Err(e @ DeliveryError::Denied(_)) => Err(Refusal::Batch(e)),
            Err(e) => Err(item(e)),
        }
    }

    /// Puts accepted messages on the queue; each gets its status and a
    /// QUEUED / DEFERRED event first (a worker may finish a message before
    /// this call returns, and its SENT must not be overwritten).
    async fn enqueue(
        &self,
        items: &[(QueuedMessage, Rendered)],
        not_before: i64,
        trace: &TraceContext,
    ) -> Result<Vec<DeliveryResult>, DeliveryError> {
        let (status, why) = if not_before > now_ms() {
            (
                DeliveryStatus::Deferred,
                "waiting for send_at or quiet hours",
            )
        } else {
            (DeliveryStatus::Queued, "")
        };
        // Every item's event and status at once: on Redis they share one
        // connection's writes instead of two round trips per item.
        let recorded = items.iter().map(|(m, rendered)| async move {
            let ctx = MessageCtx::for_queued(m, rendered, trace);
            if status == DeliveryStatus::Deferred {
                self.ledger.metrics().deferred("schedule");
            }
            let step = Step::change(status, 0, why);
            let result = ctx.result(&step, 0);
            self.ledger.finish(&ctx, &step, true, &result).await?;
            Ok::<_, QueueError>(result)
        });
        // Every item is written to the end (none is cut off half-written
        // when another fails); any failure fails the call, nothing queued.
        let out = futures_util::future::join_all(recorded)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let messages: Vec<QueuedMessage> = items.iter().map(|(m, _)| m.clone()).collect();
        self.ledger.queue.push(&messages, not_before).await?;
        Ok(out)
    }

    /// When a message for this template may be sent: `send_at`, pushed to
    /// the end of the template's quiet hours if it falls inside them.
    async fn not_before(
        &self,
        key: &str,
        send_at: Option<&wxpush_proto::Timestamp>,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<i64, DeliveryError> {
        let at = send_at.map_or(0, crate::queue::ts_ms).max(now_ms());
        let template = self.sender.template(key, trace, deadline).await?;
        match template.quiet_hours {
            Some(q) => match quiet_until(&q, at) {
                Ok(until) => Ok(until.unwrap_or(at)),
                Err(e) => Err(DeliveryError::Unsendable(format!(
                    "template {key}: quiet hours: {e}"
                ))),
            },
            None => Ok(at),
        }
    }
}

/// The whole batch's bounds, checked before anything is copied per
/// recipient: the common variables, what the queue would hold for all
/// recipients together, and `send_at`.
fn check_batch(req: &SendBatchRequest, now_secs: i64, v: &mut Vec<Violation>) {
    check_variables("common_variables", &req.common_variables, v);
    let common = variable_bytes(&req.common_variables);
    let total: usize = req
        .recipients
        .iter()
        .map(|r| common + variable_bytes(&r.variables))
        .sum();
    if total > MAX_BATCH_VARIABLE_BYTES {
        v.push(Violation::new(
            "recipients",
            format!(
                "{total} bytes of variables over all recipients (common variables count once per \
                 recipient), at most {MAX_BATCH_VARIABLE_BYTES} allowed"
            ),
        ));
    }
    check_send_at(req.send_at.as_ref(), now_secs, v);
}

fn accepted(r: &DeliveryResult) -> SendAsyncResponse {
    SendAsyncResponse {
        message_id: r.message_id.clone(),
        trace_id: r.trace_id.clone(),
        status: r.status,
    }
}

/// A recipient's violations named as fields of the batch request.
fn within(i: usize, v: Vec<Violation>) -> Vec<Violation> {
    v.into_iter()
        .map(|v| Violation::new(format!("recipients[{i}].{}", v.field), v.description))
        .collect()
}
