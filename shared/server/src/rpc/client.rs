//! The client half: a span per outgoing call, its context injected as
//! `traceparent` / `tracestate`, and the Istio headers of the incoming call
//! forwarded, and the service's own credentials presented
//! ([`super::credentials`]). Without an OpenTelemetry subscriber (plain unit tests) the
//! request's own `traceparent`, if any, is left as it is.

use super::RpcName;
use super::body::{Finish, ObservedBody, Side};
use super::credentials::Credentials;
use super::propagation::{Forwarded, inject};
use opentelemetry::trace::TraceContextExt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::transport::Channel;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A tonic channel whose calls are traced; use it as `XxxClient<TracedChannel>`.
pub type TracedChannel = ClientTrace<Channel>;

/// Wraps a channel (lazy or connected) in [`ClientTraceLayer`].
pub fn traced(channel: Channel) -> TracedChannel {
    ClientTraceLayer::default().layer(channel)
}

/// [`traced`], presenting `credentials` (if any) on every call: a
/// service's own hops to the suite.
pub fn traced_as(channel: Channel, credentials: Option<Credentials>) -> TracedChannel {
    ClientTraceLayer { credentials }.layer(channel)
}

/// Adds [`ClientTrace`] around a gRPC client transport.
#[derive(Debug, Clone, Default)]
pub struct ClientTraceLayer {
    credentials: Option<Credentials>,
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace {
            inner,
            credentials: self.credentials.clone(),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ClientTrace<S> {
    inner: S,
    credentials: Option<Credentials>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ClientTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let name = RpcName::from_path(request.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %name.span_name(),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %name.service,
            rpc.method = %name.method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            inject(&cx, request.headers_mut());
        }
        Forwarded::current().apply_to_call(request.headers_mut());
        if let Some(c) = &self.credentials {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, c.header());
        }
        let future = span.in_scope(|| self.inner.call(request));
        let finish = Finish {
            span: span.clone(),
            side: Side::Client,
            name,
            started,
        };
        Box::pin(
            async move { finish.observe(future.instrument(span).await, tonic::Code::Unavailable) },
        )
    }
}
