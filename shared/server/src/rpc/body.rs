//! A response body that reports the call's final gRPC status once: from the
//! trailers when they arrive, `UNKNOWN` when the body ends without them or
//! fails, `CANCELLED` when it is dropped unfinished (the peer went away).

use super::{RpcMetrics, RpcName, grpc_status, is_server_error};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Code;
use tracing::Span;

/// Which end of the call is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// What to do when the status is known: finish the span (status code and
/// error status) and, for served calls, count it.
pub(crate) struct Finish {
    pub(crate) span: Span,
    pub(crate) side: Side,
    pub(crate) name: RpcName,
    pub(crate) started: Instant,
}

impl Finish {
    /// Wraps a call's outcome so the status is recorded when it is known:
    /// at once for a trailers-only answer, else when the body's trailers
    /// arrive. A transport error is recorded as `on_error`.
    pub(crate) fn observe<B, E>(
        self,
        result: Result<http::Response<B>, E>,
        on_error: Code,
    ) -> Result<http::Response<ObservedBody<B>>, E> {
        match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let finish = match grpc_status(&parts.headers) {
                    // Trailers-only: the status is already here.
                    Some(code) => {
                        self.done(code);
                        None
                    }
                    None => Some(self),
                };
                Ok(http::Response::from_parts(
                    parts,
                    ObservedBody::new(body, finish),
                ))
            }
            Err(e) => {
                self.done(on_error);
                Err(e)
            }
        }
    }

    pub(crate) fn done(self, code: Code) {
        self.span.record("rpc.grpc.status_code", code as i64);
        let error = match self.side {
            Side::Server => is_server_error(code),
            Side::Client => code != Code::Ok,
        };
        if error {
            self.span.record("otel.status_code", "ERROR");
        }
        if self.side == Side::Server {
            RpcMetrics::global().observe(&self.name, code, self.started.elapsed());
        }
    }
}

pin_project! {
    /// The inner body, unchanged, plus the pending [`Finish`]; no inner body
    /// for an answer the layer gave itself (trailers-only, in its headers).
    pub struct ObservedBody<B> {
        #[pin]
        inner: Option<B>,
        finish: Option<Finish>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(finish) = this.project().finish.take() {
                finish.done(Code::Cancelled);
            }
        }
    }
}

impl<B> ObservedBody<B> {
    pub(crate) fn new(inner: B, finish: Option<Finish>) -> Self {
        Self {
            inner: Some(inner),
            finish,
        }
    }

    /// An empty body: the answer is all in the headers.
    pub(crate) fn empty() -> Self {
        Self {
            inner: None,
            finish: None,
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let mut polled = inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled
            && let Some(trailers) = frame.trailers_mut()
            && this.finish.as_ref().is_some_and(|f| f.side == Side::Server)
        {
            super::server::ensure_error_info(trailers);
        }
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|t| grpc_status(t).unwrap_or(Code::Unknown)),
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(finish) = this.finish.take()
        {
            finish.done(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
