//! One message through the pipeline: render (template service), token (token
//! service), WeChat send, delivery event. The trace context of the incoming
//! call travels to each hop.

use crate::error::DeliveryError;
use crate::request::check_send;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tonic::transport::{Channel, Endpoint};
use wxpush_events::EventSink;
use wxpush_proto::timestamp;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::{MessageApi, WechatClient};

/// The delivery pipeline, shared by the gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    template: TemplateServiceClient<Channel>,
    token: TokenServiceClient<Channel>,
    wechat: WechatClient,
    events: Arc<dyn EventSink>,
}

/// A lazily connecting channel, so services can start in any order.
pub fn lazy_channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(endpoint.to_string())?.connect_lazy())
}

fn with_trace<T>(message: T, trace: &TraceContext) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    trace.inject(request.metadata_mut());
    request
}

impl Pipeline {
    pub fn new(
        template: Channel,
        token: Channel,
        wechat: WechatClient,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Self {
            template: TemplateServiceClient::new(template),
            token: TokenServiceClient::new(token),
            wechat,
            events,
        }
    }

    /// Sends one message now. A WeChat rejection is a FAILED result; only a
    /// bad request or a failing upstream service is an error.
    pub async fn send(
        &self,
        req: SendRequest,
        trace: TraceContext,
    ) -> Result<DeliveryResult, DeliveryError> {
        let violations = check_send(&req);
        if !violations.is_empty() {
            return Err(DeliveryError::InvalidArgument(violations));
        }
        let accepted_at = SystemTime::now();
        let message_id = uuid::Uuid::now_v7().simple().to_string();

        let rendered = self
            .template
            .clone()
            .render_template(with_trace(
                RenderTemplateRequest {
                    key: req.template_key.clone(),
                    variables: req.variables.clone(),
                    openid: req.openid.clone(),
                    client_msg_id: message_id.clone(),
                    url: req.url.clone(),
                    miniprogram: req.miniprogram.clone(),
                    page: req.page.clone(),
                },
                &trace.child(),
            ))
            .await
            .map_err(|status| DeliveryError::Upstream {
                service: "template",
                status,
            })?
            .into_inner();
        if !req.app_id.is_empty() && req.app_id != rendered.app_id {
            return Err(DeliveryError::InvalidArgument(vec![Violation::new(
                "app_id",
                format!(
                    "template {} belongs to app {}",
                    req.template_key, rendered.app_id
                ),
            )]));
        }
        let token = self
            .token
            .clone()
            .get_access_token(with_trace(
                GetAccessTokenRequest {
                    app_id: rendered.app_id.clone(),
                },
                &trace.child(),
            ))
            .await
            .map_err(|status| DeliveryError::Upstream {
                service: "token",
                status,
            })?
            .into_inner();

        let api = if rendered.kind == MessageKind::Subscribe as i32 {
            MessageApi::Subscribe
        } else {
            MessageApi::Template
        };
        let started = Instant::now();
        let outcome = self
            .wechat
            .send_message(
                api,
                &token.access_token,
                &rendered.body_json,
                Some(&trace.child()),
            )
            .await;
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;

        let (status, errcode, errmsg, wechat_msgid) = match outcome {
            Ok(receipt) => (DeliveryStatus::Sent, 0, "ok".to_string(), receipt.msgid),
            Err(e) => (
                DeliveryStatus::Failed,
                e.errcode(),
                e.errmsg(),
                String::new(),
            ),
        };
        tracing::info!(
            message_id = %message_id,
            trace_id = %trace.trace_id(),
            app_id = %rendered.app_id,
            template_key = %req.template_key,
            status = status.as_str_name(),
            errcode,
            latency_ms,
            "delivery attempt"
        );

        let now = SystemTime::now();
        let event = DeliveryEvent {
            event_id: format!("{message_id}/1"),
            message_id: message_id.clone(),
            trace_id: trace.trace_id(),
            app_id: rendered.app_id.clone(),
            openid: req.openid.clone(),
            template_key: req.template_key.clone(),
            template_id: rendered.template_id.clone(),
            kind: rendered.kind,
            attempt: 1,
            status: status as i32,
            errcode,
            errmsg: errmsg.clone(),
            wechat_msgid: wechat_msgid.clone(),
            latency_ms,
            accepted_at: Some(timestamp(accepted_at)),
            occurred_at: Some(timestamp(now)),
            data_json: rendered.data_json.clone(),
        };
        if let Err(e) = self.events.publish(event).await {
            tracing::error!(message_id = %message_id, error = %e, "delivery event not published");
        }

        Ok(DeliveryResult {
            message_id,
            trace_id: trace.trace_id(),
            status: status as i32,
            errcode,
            errmsg,
            wechat_msgid,
            attempts: 1,
            app_id: rendered.app_id,
            template_key: req.template_key,
            accepted_at: Some(timestamp(accepted_at)),
            updated_at: Some(timestamp(now)),
        })
    }
}
