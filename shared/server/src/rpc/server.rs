//! The server half: a span per served call that continues the caller's
//! trace, and the RPC metrics. Health checks are counted but not traced
//! (Kubernetes probes would otherwise fill the trace store).

use super::RpcName;
use super::body::{Finish, ObservedBody, Side};
use super::propagation::{Forwarded, extract};
use opentelemetry::trace::TraceContextExt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Adds [`ServerTrace`] around a service (tonic `Routes`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTraceLayer;

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace { inner }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
}

/// The server span of one call: `service/method`, kind server, `rpc.*`
/// attributes, parented on the caller's context when it sent one.
fn server_span(name: &RpcName, headers: &http::HeaderMap) -> Span {
    if name.service == "grpc.health.v1.Health" {
        return Span::none();
    }
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %name.span_name(),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %name.service,
        rpc.method = %name.method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        wxpush.caller = tracing::field::Empty,
    );
    let parent = extract(headers);
    // No (valid) traceparent: a new root, never whatever span happens to be
    // current on the connection task.
    let parent = if parent.span().span_context().is_valid() {
        parent
    } else {
        opentelemetry::Context::new()
    };
    let _ = span.set_parent(parent);
    span
}

/// Longest `grpc-message` an answer carries (percent-encoded bytes).
pub const MAX_MESSAGE_HEADER: usize = 1024;

/// Cuts an error message that quotes a caller's input (an id, a key) at
/// [`MAX_MESSAGE_HEADER`]: one 100 KB id echoed in a NOT_FOUND exceeds the
/// client's header limit, and the client then drops the whole connection
/// with every other call on it.
fn cap_message(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    let bytes = value.as_bytes();
    if bytes.len() <= MAX_MESSAGE_HEADER {
        return;
    }
    // Never inside a `%XX` escape.
    let mut cut = MAX_MESSAGE_HEADER;
    while cut > 0 && bytes[cut.saturating_sub(2)..cut].contains(&b'%') {
        cut -= 1;
    }
    let mut capped = bytes[..cut].to_vec();
    capped.extend_from_slice(b"%E2%80%A6"); // …
    if let Ok(v) = http::HeaderValue::from_bytes(&capped) {
        headers.insert("grpc-message", v);
    }
}

/// How long before the caller's deadline the layer gives up and answers
/// DEADLINE_EXCEEDED itself: tonic's own timer would end the call at the
/// deadline with CANCELLED, which is not what the gRPC status-code guide
/// owes a caller whose deadline passed.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(20);

/// The trailers-only answer for a call that ran out of its caller's time.
fn deadline_exceeded<B>() -> http::Response<ObservedBody<B>> {
    let status: tonic::Status = crate::failure::Failure::new(
        tonic::Code::DeadlineExceeded,
        crate::failure::Reason::DeadlineExceeded,
        "the caller's deadline passed before the answer was ready",
    )
    .into();
    let mut response = http::Response::new(ObservedBody::empty());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    let _ = status.add_header(response.headers_mut());
    response
}

/// Gives an error answer without `grpc-status-details-bin` (made by tonic,
/// tower or hyper rather than a service's error mapping: a body that does
/// not decode, an unknown method, a deadline) the `ErrorInfo` every wxpush
/// error carries, its reason from the code ([`crate::failure::for_code`]).
pub(crate) fn ensure_error_info(headers: &mut http::HeaderMap) {
    let Some(code) = super::grpc_status(headers) else {
        return;
    };
    if code == tonic::Code::Ok || headers.contains_key("grpc-status-details-bin") {
        return;
    }
    let message = headers
        .get("grpc-message")
        .map(|v| {
            percent_encoding::percent_decode(v.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let reason = crate::failure::for_code(code);
    let status: tonic::Status = crate::failure::Failure::new(code, reason, message).into();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
    if let Ok(v) = http::HeaderValue::from_str(&encoded) {
        headers.insert("grpc-status-details-bin", v);
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ServerTrace<S>
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

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let name = RpcName::from_path(request.uri().path());
        let span = server_span(&name, request.headers());
        let forwarded = Forwarded::from_headers(request.headers());
        let give_up = forwarded
            .deadline()
            .map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        let future = span.in_scope(|| self.inner.call(request));
        let finish = Finish {
            span: span.clone(),
            side: Side::Server,
            name,
            started,
        };
        Box::pin(async move {
            let answer = forwarded.scope(future.instrument(span));
            let result = match give_up {
                Some(at) => match tokio::time::timeout_at(at.into(), answer).await {
                    Ok(result) => result,
                    Err(_) => {
                        finish.done(tonic::Code::DeadlineExceeded);
                        return Ok(deadline_exceeded());
                    }
                },
                None => answer.await,
            };
            let result = result.map(|mut response| {
                cap_message(response.headers_mut());
                ensure_error_info(response.headers_mut());
                response
            });
            finish.observe(result, tonic::Code::Internal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_answer_is_deadline_exceeded_with_its_reason() {
        let response = deadline_exceeded::<()>();
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(
            crate::failure::reason(&status),
            Some(crate::failure::Reason::DeadlineExceeded)
        );
        assert_eq!(response.headers()["content-type"], "application/grpc");
    }

    #[test]
    fn an_error_without_details_gets_an_error_info() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", "12".parse().unwrap());
        headers.insert("grpc-message", "no%20such%20method".parse().unwrap());
        ensure_error_info(&mut headers);
        let status = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(
            crate::failure::reason(&status),
            Some(crate::failure::Reason::MethodUnknown)
        );
        // An answer that has details keeps them; OK gets none.
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", "0".parse().unwrap());
        ensure_error_info(&mut ok);
        assert!(!ok.contains_key("grpc-status-details-bin"));
    }

    #[test]
    fn a_long_message_is_cut_outside_an_escape() {
        let mut headers = http::HeaderMap::new();
        let long = "%20".repeat(2000);
        headers.insert("grpc-message", long.parse().unwrap());
        cap_message(&mut headers);
        let capped = headers["grpc-message"].to_str().unwrap();
        assert!(capped.len() <= MAX_MESSAGE_HEADER + 9);
        assert!(capped.ends_with("%20%E2%80%A6"), "{capped}");
        let mut short = http::HeaderMap::new();
        short.insert("grpc-message", "not found".parse().unwrap());
        cap_message(&mut short);
        assert_eq!(short["grpc-message"], "not found");
    }
}
