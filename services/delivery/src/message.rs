//! One message's identity as it moves through the pipeline, and the
//! delivery events and results built from it.

use std::time::SystemTime;
use wxpush_proto::timestamp;
use wxpush_proto::v1::{DeliveryEvent, DeliveryResult, DeliveryStatus};

/// What stays the same across every attempt of a message.
#[derive(Debug, Clone)]
pub struct MessageCtx {
    pub message_id: String,
    pub trace_id: String,
    pub app_id: String,
    pub openid: String,
    pub template_key: String,
    pub template_id: String,
    pub kind: i32,
    pub accepted_at: SystemTime,
    pub data_json: String,
    /// Who sent it (the configured caller's name).
    pub caller: String,
}

/// The outcome of one attempt (or a status change without one).
#[derive(Debug, Clone)]
pub struct Step {
    /// 0 for a status change without a WeChat call.
    pub attempt: u32,
    pub status: DeliveryStatus,
    pub errcode: i64,
    pub errmsg: String,
    pub wechat_msgid: String,
    pub latency_ms: u32,
    /// For a status change: attempts made before it (keeps its event id
    /// distinct from an earlier change to the same status).
    pub after: u32,
}

impl Step {
    /// An attempt (1-based) whose status is still to be decided.
    pub fn attempt(attempt: u32) -> Self {
        Self {
            attempt,
            status: DeliveryStatus::Sending,
            errcode: 0,
            errmsg: String::new(),
            wechat_msgid: String::new(),
            latency_ms: 0,
            after: 0,
        }
    }

    /// A status change without a WeChat call, after `attempts` attempts.
    pub fn change(status: DeliveryStatus, attempts: u32, why: impl Into<String>) -> Self {
        Self {
            status,
            after: attempts,
            errmsg: why.into(),
            ..Self::attempt(0)
        }
    }
}

/// A new message id: time-ordered (UUIDv7), 32 hex digits.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl MessageCtx {
    /// A message accepted now from `req`, rendered as `rendered`.
    pub fn accepted(
        message_id: String,
        trace: &wxpush_server::trace_context::TraceContext,
        req: &wxpush_proto::v1::SendRequest,
        rendered: &crate::sender::Rendered,
    ) -> Self {
        Self {
            message_id,
            trace_id: trace.trace_id(),
            app_id: rendered.response.app_id.clone(),
            openid: req.openid.clone(),
            template_key: req.template_key.clone(),
            template_id: String::new(),
            kind: 0,
            accepted_at: SystemTime::now(),
            data_json: String::new(),
            caller: wxpush_server::caller::Caller::current().name().to_string(),
        }
        .rendered(rendered)
    }

    /// A queued message's context once rendered.
    pub fn for_queued(
        m: &crate::queue::QueuedMessage,
        rendered: &crate::sender::Rendered,
        trace: &wxpush_server::trace_context::TraceContext,
    ) -> Self {
        Self::for_queued_unrendered(m, trace).rendered(rendered)
    }

    /// With what rendering added: the WeChat template, kind and data.
    pub fn rendered(self, r: &crate::sender::Rendered) -> Self {
        Self {
            template_id: r.response.template_id.clone(),
            kind: r.response.kind,
            data_json: r.response.data_json.clone(),
            ..self
        }
    }

    /// A queued message's context when it could not be rendered.
    pub fn for_queued_unrendered(
        m: &crate::queue::QueuedMessage,
        trace: &wxpush_server::trace_context::TraceContext,
    ) -> Self {
        Self {
            message_id: m.message_id.clone(),
            trace_id: trace.trace_id(),
            app_id: m.app_id.clone(),
            openid: m.openid.clone(),
            template_key: m.template_key.clone(),
            template_id: String::new(),
            kind: 0,
            accepted_at: crate::queue::ms_to_time(m.accepted_at_ms),
            data_json: String::new(),
            caller: m.caller.clone(),
        }
    }

    /// The event for a step; its id makes a replay idempotent downstream.
    pub fn event(&self, step: &Step) -> DeliveryEvent {
        let event_id = if step.attempt > 0 {
            format!("{}/{}", self.message_id, step.attempt)
        } else {
            format!(
                "{}/{}/status-{}",
                self.message_id, step.after, step.status as i32
            )
        };
        DeliveryEvent {
            event_id,
            message_id: self.message_id.clone(),
            trace_id: self.trace_id.clone(),
            app_id: self.app_id.clone(),
            openid: self.openid.clone(),
            template_key: self.template_key.clone(),
            template_id: self.template_id.clone(),
            kind: self.kind,
            attempt: step.attempt,
            status: step.status.into(),
            errcode: step.errcode,
            errmsg: step.errmsg.clone(),
            wechat_msgid: step.wechat_msgid.clone(),
            latency_ms: step.latency_ms,
            accepted_at: Some(timestamp(self.accepted_at)),
            occurred_at: Some(timestamp(SystemTime::now())),
            data_json: self.data_json.clone(),
            caller: self.caller.clone(),
        }
    }

    /// The result a caller gets after `attempts` attempts ending in `step`.
    pub fn result(&self, step: &Step, attempts: u32) -> DeliveryResult {
        DeliveryResult {
            message_id: self.message_id.clone(),
            trace_id: self.trace_id.clone(),
            status: step.status.into(),
            errcode: step.errcode,
            errmsg: step.errmsg.clone(),
            wechat_msgid: step.wechat_msgid.clone(),
            attempts,
            app_id: self.app_id.clone(),
            template_key: self.template_key.clone(),
            accepted_at: Some(timestamp(self.accepted_at)),
            updated_at: Some(timestamp(SystemTime::now())),
        }
    }
}
