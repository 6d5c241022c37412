//! Sending one attempt: the message rendered from the template service's
//! render plan, the app's token from the token service (each from a
//! short-lived local copy when there is one, see [`crate::local`]), the
//! app's circuit breaker, and the WeChat call itself. The trace context of
//! the message travels to each hop. What to do with the answer is
//! [`crate::decision`]'s job.

use crate::breaker::{Breaker, Breakers};
use crate::consent::{ConsentLedger, ConsentMetrics, Subject};
use crate::error::DeliveryError;
use crate::local::{self, Copies};
use crate::message::Step;
use crate::policy::Action;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Status;
use wxpush_auth::privacy::KeyedHash;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::rpc::TracedChannel;
use wxpush_server::trace_context::TraceContext;
use wxpush_template::render::{RenderInput, render};
use wxpush_wechat::{MessageApi, WechatClient};

/// The errcode of a message refused for want of consent: WeChat's own for
/// "the user has not subscribed" (43101), which it would have answered.
pub const CONSENT_ERRCODE: i64 = 43101;

/// A message as the template service rendered it, and the WeChat API its
/// kind goes to.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub response: RenderTemplateResponse,
    pub api: MessageApi,
    pub openid: String,
    pub template_key: String,
    /// The template's `consent` (subscribe messages).
    pub consent: ConsentMode,
}

impl Rendered {
    /// The consent ledger's name for this message's user and template.
    fn subject(&self) -> Subject<'_> {
        Subject {
            app_id: &self.response.app_id,
            openid: &self.openid,
            template_id: &self.response.template_id,
        }
    }
}

/// The parts of one attempt; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    template: TemplateServiceClient<TracedChannel>,
    token: TokenServiceClient<TracedChannel>,
    wechat: WechatClient,
    breakers: Breakers,
    consent: Arc<dyn ConsentLedger>,
    tokens: Copies<String>,
    plans: Copies<Template>,
    /// How long a plan copy is used: [`local::PLAN_TTL`], or longer where
    /// change notices drop copies at once ([`Sender::notified_of_changes`]).
    plan_ttl: std::time::Duration,
    /// Hashes the values of templates' private fields before they reach
    /// the log ([`Sender::with_private_fields_key`]).
    private: KeyedHash,
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
        template: TracedChannel,
        token: TracedChannel,
        wechat: WechatClient,
        breakers: Breakers,
        consent: Arc<dyn ConsentLedger>,
    ) -> Self {
        Self {
            template: TemplateServiceClient::new(template),
            token: TokenServiceClient::new(token),
            wechat,
            breakers,
            consent,
            tokens: Copies::default(),
            plans: Copies::default(),
            plan_ttl: local::PLAN_TTL,
            private: KeyedHash::random(),
        }
    }

    /// This sender hears of every template change as it commits (the
    /// postgres backend's `LISTEN`), so it keeps plan copies for
    /// [`local::NOTIFIED_PLAN_TTL`]: fewer calls to the template service.
    /// Private fields hashed with `hash` (a configured key: every replica
    /// alike) instead of a random key.
    pub fn with_private_fields_key(mut self, hash: KeyedHash) -> Self {
        self.private = hash;
        self
    }

    /// The data the log keeps of a message: the template's private fields
    /// as keyed hashes (`hashed:` and 32 hex digits), never in clear.
    fn kept(&self, plan: &Template, data_json: String) -> String {
        if plan.private_fields.is_empty() {
            return data_json;
        }
        KeyedHash::map_values(
            &data_json,
            |field| plan.private_fields.iter().any(|p| p == field),
            |value| format!("hashed:{}", self.private.hex(value, 16)),
        )
    }

    pub fn notified_of_changes(mut self) -> Self {
        self.plan_ttl = local::NOTIFIED_PLAN_TTL;
        self
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    pub fn breaker(&self, app_id: &str) -> Breaker {
        self.breakers.get(app_id)
    }

    /// The consent ledger (`GetConsent` reads it).
    pub fn consent(&self) -> &Arc<dyn ConsentLedger> {
        &self.consent
    }

    /// Renders `req` as message `message_id` (its `client_msg_id`), with
    /// the template service's own renderer and its render plan.
    pub async fn render(
        &self,
        req: &SendRequest,
        message_id: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<Rendered, DeliveryError> {
        let plan = self.template(&req.template_key, trace, deadline).await?;
        let input = RenderInput {
            variables: &req.variables,
            openid: &req.openid,
            client_msg_id: message_id,
            url: &req.url,
            miniprogram: req.miniprogram.as_ref(),
            page: &req.page,
        };
        let rendered = render(&plan, &input).map_err(|e| DeliveryError::Upstream {
            service: "template",
            status: Status::from(e),
        })?;
        let api = MessageApi::try_from(plan.kind)?;
        let consent = ConsentMode::try_from(plan.consent).unwrap_or_default();
        let data_json = self.kept(&plan, rendered.data_json);
        let response = RenderTemplateResponse {
            body_json: rendered.body_json,
            preview: rendered.preview,
            api_path: rendered.api_path.to_string(),
            app_id: plan.app_id,
            template_id: plan.template_id,
            kind: plan.kind,
            data_json,
        };
        Ok(Rendered {
            response,
            api,
            openid: req.openid.clone(),
            template_key: req.template_key.clone(),
            consent,
        })
    }

    /// A template's render plan (fields, content as WeChat last synced it,
    /// quiet hours): a local copy (see [`crate::local`]), else the template
    /// service's.
    pub async fn template(
        &self,
        key: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<Template, DeliveryError> {
        if let Some(plan) = self.plans.get(key) {
            return Ok(plan);
        }
        let message = GetTemplateRequest {
            key: key.to_string(),
            for_render: true,
        };
        let mut client = self.template.clone();
        let call = client.get_template(request(message, trace, deadline));
        let plan = within("template", deadline, call)
            .await?
            .template
            .ok_or_else(|| {
                DeliveryError::Unsendable(format!("template service sent no template for {key:?}"))
            })?;
        self.plans.put(key, plan.clone(), self.plan_ttl);
        Ok(plan)
    }

    /// Drops the render plan copy of `key` (`None`: of every template), as
    /// the template registry's change notices say.
    pub fn template_changed(&self, key: Option<&str>) {
        match key {
            Some(key) => self.plans.forget(key),
            None => self.plans.forget_all(),
        }
    }

    /// The app's current token: a local copy (see [`crate::local`]), else
    /// the token service's.
    pub async fn token(
        &self,
        app_id: &str,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<String, DeliveryError> {
        if let Some(token) = self.tokens.get(app_id) {
            return Ok(token);
        }
        let message = GetAccessTokenRequest {
            app_id: app_id.to_string(),
        };
        let mut client = self.token.clone();
        let call = client.get_access_token(request(message, trace, deadline));
        Ok(self.keep_token(app_id, within("token", deadline, call).await?))
    }

    /// A new token in place of `bad`, which WeChat rejected.
    pub async fn replace_token(
        &self,
        app_id: &str,
        bad_token: String,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<String, DeliveryError> {
        self.tokens.forget(app_id);
        let message = InvalidateAccessTokenRequest {
            app_id: app_id.to_string(),
            bad_token,
        };
        let mut client = self.token.clone();
        let call = client.invalidate_access_token(request(message, trace, deadline));
        let answer = within("token", deadline, call).await?;
        Ok(self.keep_token(
            app_id,
            GetAccessTokenResponse {
                access_token: answer.access_token,
                expires_at: answer.expires_at,
            },
        ))
    }

    fn keep_token(&self, app_id: &str, answer: GetAccessTokenResponse) -> String {
        let expires_at = answer
            .expires_at
            .as_ref()
            .map(|t| std::time::UNIX_EPOCH + Duration::from_secs(t.seconds.max(0) as u64));
        self.tokens.put(
            app_id,
            answer.access_token.clone(),
            local::token_ttl(expires_at),
        );
        answer.access_token
    }

    /// Attempt number `attempt` of the rendered message: the step it makes
    /// (status still to be decided) and what the errcode policy reads in
    /// the answer. The breaker learns of WeChat's health. A subscribe
    /// message spends one of the user's accepted subscriptions in the
    /// consent ledger; with `consent: enforce` one must be left, else the
    /// message fails here and WeChat is not called.
    pub async fn attempt(
        &self,
        breaker: &Breaker,
        rendered: &Rendered,
        token: &str,
        trace: &TraceContext,
        attempt: u32,
    ) -> (Step, Action) {
        let subscribe = rendered.api == MessageApi::Subscribe;
        let enforce = subscribe && rendered.consent == ConsentMode::Enforce;
        if enforce {
            match self.consent.take(rendered.subject()).await {
                Ok(true) => {}
                Ok(false) => return refused_for_consent(rendered, attempt),
                // The ledger down: WeChat decides (43101 without consent).
                Err(e) => tracing::warn!(error = %e, "consent not checked"),
            }
        }
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
        // Only a subscribe message spends a consent: a template message
        // (Official Account) has none to spend and asks the ledger nothing.
        let spent = match (&outcome, enforce) {
            (Ok(_), false) if subscribe => self.consent.take(rendered.subject()).await.map(|_| ()),
            (Err(_), true) => self.consent.give_back(rendered.subject()).await,
            _ => Ok(()),
        };
        if subscribe && let Err(e) = spent {
            tracing::warn!(error = %e, "consent ledger not updated after a send");
        }
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

/// The attempt of a subscribe message refused for want of consent: FAILED
/// as WeChat would have failed it (43101), without calling WeChat.
fn refused_for_consent(rendered: &Rendered, attempt: u32) -> (Step, Action) {
    ConsentMetrics::global().refused(&rendered.response.app_id, &rendered.template_key);
    let mut step = Step::attempt(attempt);
    step.errcode = CONSENT_ERRCODE;
    step.errmsg = format!(
        "refused by wxpush: the consent ledger has no accepted subscription left for {} and template {} (consent: enforce); WeChat was not called",
        rendered.openid, rendered.response.template_id
    );
    (step, Action::Fail)
}
