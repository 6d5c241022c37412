//! Sending one attempt: the rendered message from the template service,
//! the app's token from the token service, the app's circuit breaker, and
//! the WeChat call itself. The trace context of the message travels to
//! each hop. What to do with the answer is [`crate::decision`]'s job.

use crate::breaker::{Breaker, Breakers};
use crate::error::DeliveryError;
use crate::message::{MessageCtx, Step};
use crate::policy::Action;
use std::time::Instant;
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

/// A request carrying `trace` (a child of the message's span) to a peer.
pub(crate) fn with_trace<T>(message: T, trace: &TraceContext) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    trace.child().inject(request.metadata_mut());
    request
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
    ) -> Result<Rendered, DeliveryError> {
        let request = RenderTemplateRequest {
            key: req.template_key.clone(),
            variables: req.variables.clone(),
            openid: req.openid.clone(),
            client_msg_id: message_id.to_string(),
            url: req.url.clone(),
            miniprogram: req.miniprogram.clone(),
            page: req.page.clone(),
        };
        let response = self
            .template
            .clone()
            .render_template(with_trace(request, trace))
            .await
            .map_err(DeliveryError::upstream("template"))?
            .into_inner();
        let api = MessageApi::try_from(response.kind)?;
        Ok(Rendered { response, api })
    }

    /// A template's settings (quiet hours).
    pub async fn template(
        &self,
        key: &str,
        trace: &TraceContext,
    ) -> Result<Template, DeliveryError> {
        let request = GetTemplateRequest {
            key: key.to_string(),
        };
        Ok(self
            .template
            .clone()
            .get_template(with_trace(request, trace))
            .await
            .map_err(DeliveryError::upstream("template"))?
            .into_inner())
    }

    /// The app's current token.
    pub async fn token(&self, app_id: &str, trace: &TraceContext) -> Result<String, DeliveryError> {
        let request = GetAccessTokenRequest {
            app_id: app_id.to_string(),
        };
        Ok(self
            .token
            .clone()
            .get_access_token(with_trace(request, trace))
            .await
            .map_err(DeliveryError::upstream("token"))?
            .into_inner()
            .access_token)
    }

    /// A new token in place of `bad`, which WeChat rejected.
    pub async fn replace_token(
        &self,
        app_id: &str,
        bad_token: String,
        trace: &TraceContext,
    ) -> Result<String, DeliveryError> {
        let request = InvalidateAccessTokenRequest {
            app_id: app_id.to_string(),
            bad_token,
        };
        Ok(self
            .token
            .clone()
            .invalidate_access_token(with_trace(request, trace))
            .await
            .map_err(DeliveryError::upstream("token"))?
            .into_inner()
            .access_token)
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
