//! Sending one attempt: the rendered message from the template service,
//! the app's token from the token service, the app's circuit breaker, and
//! the WeChat call itself. The trace context of the message travels to
//! each hop. What to do with the answer is [`crate::decision`]'s job.

use crate::breaker::{Breaker, Breakers};
use crate::error::DeliveryError;
use crate::message::{MessageCtx, Step};
use crate::policy::Action;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::Status;
use tonic::transport::Channel;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::rpc::{TracedChannel, traced};
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::{MessageApi, WechatClient};

/// A message as the template service rendered it, and the WeChat API its
/// kind goes to.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub response: RenderTemplateResponse,
    pub api: MessageApi,
}

/// The parts of one attempt; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    template: TemplateServiceClient<TracedChannel>,
    token: TokenServiceClient<TracedChannel>,
    wechat: WechatClient,
    breakers: Breakers,
}

/// A request to a peer carrying `trace` (a child of the message's span)
/// and what is left of the budget as its `grpc-timeout`.
fn request<T>(message: T, trace: &TraceContext, deadline: Instant) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    trace.child().inject(request.metadata_mut());
    request.set_timeout(remaining(deadline));
    request
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// A call to `service` that answers by `deadline` or fails with
/// DEADLINE_EXCEEDED: bounded here too, since a channel still dialling (a
/// stalled peer) starts tonic's own timer only once connected.
async fn within<T>(
    service: &'static str,
    deadline: Instant,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, DeliveryError> {
    let out_of_time = || DeliveryError::Upstream {
        service,
        status: Status::deadline_exceeded("no answer within the send's budget"),
    };
    match tokio::time::timeout(remaining(deadline), call).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        // tonic's own timer (from the grpc-timeout we set) answers CANCELLED.
        Ok(Err(_)) if Instant::now() >= deadline => Err(out_of_time()),
        Ok(Err(status)) => Err(DeliveryError::Upstream { service, status }),
        Err(_) => Err(out_of_time()),
    }
}

impl Sender {
    /// Calls to the template and token services over `template` and
    /// `token` (each call a client span the callee continues), WeChat
    /// through `wechat`, guarded by `breakers`.
    pub fn new(
        template: Channel,
        token: Channel,
        wechat: WechatClient,
        breakers: Breakers,
    ) -> Self {
        Self {
            template: TemplateServiceClient::new(traced(template)),
            token: TokenServiceClient::new(traced(token)),
            wechat,
            breakers,
        }
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    pub fn breaker(&self, app_id: &str) -> Breaker {
        self.breakers.get(app_id)
    }

    /// Renders `req` as message `message_id` (its `client_msg_id`).
    pub async fn render(
        &self,
        req: &SendRequest,
        message_id: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<Rendered, DeliveryError> {
        let message = RenderTemplateRequest {
            key: req.template_key.clone(),
            variables: req.variables.clone(),
            openid: req.openid.clone(),
            client_msg_id: message_id.to_string(),
            url: req.url.clone(),
            miniprogram: req.miniprogram.clone(),
            page: req.page.clone(),
        };
        let mut client = self.template.clone();
        let call = client.render_template(request(message, trace, deadline));
        let response = within("template", deadline, call).await?;
        let api = MessageApi::try_from(response.kind)?;
        Ok(Rendered { response, api })
    }

    /// A template's settings (quiet hours).
    pub async fn template(
        &self,
        key: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<Template, DeliveryError> {
        let message = GetTemplateRequest {
            key: key.to_string(),
        };
        let mut client = self.template.clone();
        let call = client.get_template(request(message, trace, deadline));
        within("template", deadline, call).await
    }

    /// The app's current token.
    pub async fn token(
        &self,
        app_id: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<String, DeliveryError> {
        let message = GetAccessTokenRequest {
            app_id: app_id.to_string(),
        };
        let mut client = self.token.clone();
        let call = client.get_access_token(request(message, trace, deadline));
        Ok(within("token", deadline, call).await?.access_token)
    }

    /// A new token in place of `bad`, which WeChat rejected.
    pub async fn replace_token(
        &self,
        app_id: &str,
        bad_token: String,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<String, DeliveryError> {
        let message = InvalidateAccessTokenRequest {
            app_id: app_id.to_string(),
            bad_token,
        };
        let mut client = self.token.clone();
        let call = client.invalidate_access_token(request(message, trace, deadline));
        Ok(within("token", deadline, call).await?.access_token)
    }

    /// Attempt number `attempt` of the rendered message: the step it makes
    /// (status still to be decided) and what the errcode policy reads in
    /// the answer. The breaker learns of WeChat's health.
    pub async fn attempt(
        &self,
        breaker: &Breaker,
        rendered: &Rendered,
        token: &str,
        trace: &TraceContext,
        attempt: u32,
    ) -> (Step, Action) {
        let started = Instant::now();
        let outcome = self
            .wechat
            .send_message(
                rendered.api,
                token,
                &rendered.response.body_json,
                Some(&trace.child()),
            )
            .await
            .map(|r| r.msgid);
        let mut step = Step::attempt(attempt);
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
}

/// Logs an attempt or status change of a message (the text log; the
/// delivery event is the record).
pub(crate) fn log_step(ctx: &MessageCtx, step: &Step) {
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
