//! Who may call: a layer on every gRPC server ([`crate::grpc::serve`]).
//!
//! With `auth.mode: on` a call to a `wxpush.v1` method needs credentials
//! that name a configured caller (a bearer JWT, or a trusted mesh's
//! workload identity: [`wxpush_auth::Authenticator`]), else it is answered
//! UNAUTHENTICATED; a caller without the operation the method needs
//! ([`Operation::of_method`]) is answered PERMISSION_DENIED before the
//! request is read. The call then runs as its [`Caller`], so a service can
//! check the app and template it touches. Health checks and reflection pass
//! without credentials (probes and grpcurl's listing carry none).
//!
//! The credentials are taken off the request before it goes on: no handler,
//! log line or span ever holds a token. Every decision is counted by caller
//! name (a bounded label) in `wxpush_auth_calls_total`.

use super::RpcName;
use crate::caller::{Caller, denied};
use crate::failure::{Failure, Reason};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tower::{Layer, Service};
use wxpush_auth::{AuthSettings, Authenticator, Operation, SettingsError};

/// The caller label of a call whose credentials were refused.
const REFUSED: &str = "unauthenticated";

/// Adds [`Gate`] around a server's routes.
#[derive(Clone, Default)]
pub struct GateLayer {
    auth: Option<Arc<Authenticator>>,
}

impl GateLayer {
    /// From a service's `auth:` settings (`mode: off`: every call is let in
    /// as [`Caller::unchecked`]).
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, SettingsError> {
        if settings.mode == wxpush_auth::AuthMode::Off {
            tracing::warn!(
                "auth.mode is off: anyone who reaches this port may send as any app, read every log and fetch tokens"
            );
        }
        Ok(Self {
            auth: settings.authenticator()?.map(Arc::new),
        })
    }

    /// Lets every call in (`auth.mode: off`), without a warning.
    pub fn open() -> Self {
        Self::default()
    }

    /// Whether calls are checked.
    pub fn checks(&self) -> bool {
        self.auth.is_some()
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    auth: Option<Arc<Authenticator>>,
}

/// A refused call: who (as counted), the outcome label, the answer.
struct Refusal {
    who: String,
    outcome: &'static str,
    failure: Box<Failure>,
}

impl<S> Gate<S> {
    /// The caller of a call with these headers, or the refusal.
    fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, Refusal> {
        let Some(auth) = &self.auth else {
            return Ok(Caller::unchecked());
        };
        let (_, grant) = auth.identify(headers).map_err(|e| Refusal {
            who: REFUSED.to_string(),
            outcome: "unauthenticated",
            failure: Box::new(Failure::new(
                tonic::Code::Unauthenticated,
                Reason::Unauthenticated,
                e.to_string(),
            )),
        })?;
        if let Some(op) = Operation::of_method(path)
            && !grant.operations.contains(&op)
        {
            return Err(Refusal {
                who: grant.name.clone(),
                outcome: "permission_denied",
                failure: Box::new(denied(&grant.name, &format!("{op} (for any app)"))),
            });
        }
        Ok(Caller::granted(Arc::clone(grant)))
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Gate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if !path.starts_with("/wxpush.v1.") {
            return Box::pin(self.inner.call(request));
        }
        let name = RpcName::from_path(path);
        let admitted = self.admit(path, request.headers());
        let headers = request.headers_mut();
        headers.remove(http::header::AUTHORIZATION);
        headers.remove("x-forwarded-client-cert");
        match admitted {
            Ok(caller) => {
                GateMetrics::global().count(caller.name(), &name, "allowed");
                tracing::Span::current().record("wxpush.caller", caller.name());
                let future = self.inner.call(request);
                Box::pin(caller.scope(future))
            }
            Err(Refusal {
                who,
                outcome,
                failure,
            }) => {
                GateMetrics::global().count(&who, &name, outcome);
                // Counted above; a debug line only, so a flood of bad
                // credentials cannot fill the log.
                tracing::debug!(caller = %who, method = %name.span_name(), reason = %failure.reason().as_str(), "call refused");
                let status: tonic::Status = (*failure).into();
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    caller: String,
    grpc_service: String,
    grpc_method: String,
    outcome: &'static str,
}

/// Calls let in or refused, by caller name, method and outcome.
#[derive(Clone, Default)]
pub struct GateMetrics {
    calls: Family<GateLabels, Counter>,
}

impl GateMetrics {
    /// The process's counts (the gate is process-wide).
    pub fn global() -> &'static GateMetrics {
        static GLOBAL: OnceLock<GateMetrics> = OnceLock::new();
        GLOBAL.get_or_init(GateMetrics::default)
    }

    /// Adds the family to a registry (the admin port's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wxpush_auth_calls",
            "Calls to wxpush.v1 methods by caller (its configured name; unauthenticated when the credentials were refused, anonymous with auth off), method and outcome (allowed, unauthenticated, permission_denied)",
            self.calls.clone(),
        );
    }

    fn count(&self, caller: &str, name: &RpcName, outcome: &'static str) {
        self.calls
            .get_or_create(&GateLabels {
                caller: caller.to_string(),
                grpc_service: name.service.clone(),
                grpc_method: name.method.clone(),
                outcome,
            })
            .inc();
    }
}
