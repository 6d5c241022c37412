//! Carrying a trace across a hop: HTTP/gRPC headers, the Istio/Envoy
//! headers an application must forward itself, and a plain key/value
//! carrier for the queue (a message stores the trace of the call that
//! queued it, and the worker continues it).
//!
//! The W3C TraceContext propagator is installed process-wide by
//! `wxpush-telemetry`; these functions use whichever propagator is global.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use std::collections::HashMap;
use std::future::Future;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header that pins a request to the canary pods (the chart's
/// VirtualServices route it to the `canary` subset of every service).
pub const CANARY_HEADER: &str = "x-wxpush-canary";

/// Headers forwarded unchanged from the incoming call to every outgoing
/// call made on its behalf, the queue hop included: Envoy's (Istio's), to
/// join its spans into the trace and correlate access logs; W3C `baggage`;
/// and [`CANARY_HEADER`], so a request pinned to the canary stays on canary
/// pods through delivery → template → token.
pub const FORWARDED_HEADERS: [&str; 10] = [
    CANARY_HEADER,
    "baggage",
    "x-request-id",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
];

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The remote context the caller sent (`traceparent`, `tracestate`).
pub fn extract(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
}

/// Writes `cx` as `traceparent` / `tracestate` (replacing any present).
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    });
}

/// Writes the current span's context and the forwarded Istio headers into
/// an outgoing HTTP request's headers (the WeChat call). Returns whether a
/// trace context was written (false without an OpenTelemetry subscriber).
pub fn inject_current(headers: &mut HeaderMap) -> bool {
    let cx = Span::current().context();
    let valid = cx.span().span_context().is_valid();
    if valid {
        inject(&cx, headers);
    }
    Forwarded::current().apply(headers);
    valid
}

/// What of the call being served travels to the calls made on its behalf:
/// the [`FORWARDED_HEADERS`] it carried, and its deadline (`grpc-timeout`),
/// so no inner call outlives the caller.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    headers: Vec<(HeaderName, HeaderValue)>,
    deadline: Option<std::time::Instant>,
}

tokio::task_local! {
    static FORWARDED: Forwarded;
}

impl Forwarded {
    /// Picks the [`FORWARDED_HEADERS`] and the deadline out of an incoming
    /// request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            headers: FORWARDED_HEADERS
                .iter()
                .filter_map(|name| {
                    let v = headers.get(*name)?;
                    Some((HeaderName::from_static(name), v.clone()))
                })
                .collect(),
            deadline: headers
                .get(crate::deadline::GRPC_TIMEOUT)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::deadline::parse)
                .map(|t| std::time::Instant::now() + t),
        }
    }

    /// The forwarded headers stored with a queued message (no deadline: the
    /// worker gives each step its own budget).
    pub fn from_pairs(pairs: &HashMap<String, String>) -> Self {
        Self {
            deadline: None,
            ..Self::from_headers(&carrier_headers(pairs))
        }
    }

    /// The served call's deadline, if the caller set one.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline
    }

    /// Those of the call this task serves (empty outside one).
    pub fn current() -> Self {
        FORWARDED.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `fut` with these as the current ones.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        FORWARDED.scope(self, fut).await
    }

    /// Adds the headers to an outgoing request (an HTTP one too: WeChat).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
    }

    /// Adds the headers to an outgoing gRPC call, and the time left of the
    /// served call's deadline as its `grpc-timeout` (or the call's own
    /// timeout, when that is shorter).
    pub fn apply_to_call(&self, headers: &mut HeaderMap) {
        self.apply(headers);
        let Some(deadline) = self.deadline else {
            return;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let own = headers
            .get(crate::deadline::GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::deadline::parse);
        if own.is_none_or(|own| left < own)
            && let Ok(v) = HeaderValue::from_str(&crate::deadline::encode(left))
        {
            headers.insert(crate::deadline::GRPC_TIMEOUT, v);
        }
    }

    /// As plain pairs (to store in a queued message).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect()
    }
}

/// The queue hop, producer side: the current trace (and Istio headers) as
/// string pairs to store with a queued message, e.g. in a `traceparent`
/// field. Call it inside the `SendAsync` handler (its server span is
/// current).
pub fn current_carrier() -> HashMap<String, String> {
    let mut map = HeaderMap::new();
    inject_current(&mut map);
    map.iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// A queued message's carrier as headers (pairs that are no valid header
/// are left out).
fn carrier_headers(carrier: &HashMap<String, String>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in carrier {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    headers
}

/// The queue hop, consumer side: a span for processing one queued message
/// that continues the trace stored with it (`carrier` from
/// [`current_carrier`], or just `{"traceparent": ...}`). Run the delivery
/// inside it (`.instrument(span)`); `TraceContext::current()` then has the
/// trace id of the `SendAsync` call, which the log records.
pub fn queue_process_span(queue: &str, carrier: &HashMap<String, String>) -> Span {
    let headers = carrier_headers(carrier);
    let span = tracing::info_span!(
        "queue.process",
        otel.name = %format!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "wxpush",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(extract(&headers));
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_the_istio_headers() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-request-id", HeaderValue::from_static("r-1"));
        incoming.insert(
            "b3",
            HeaderValue::from_static("80f198ee56343ba8-e457b5a2e4d86bd1-1"),
        );
        incoming.insert("authorization", HeaderValue::from_static("Bearer x"));
        let fwd = Forwarded::from_headers(&incoming);
        let mut out = HeaderMap::new();
        fwd.apply(&mut out);
        assert_eq!(out.get("x-request-id").unwrap(), "r-1");
        assert!(out.get("b3").is_some());
        assert!(out.get("authorization").is_none());
        assert_eq!(fwd.to_pairs().len(), 2);
    }

    #[test]
    fn the_canary_pin_and_the_deadline_reach_the_inner_call() {
        let mut incoming = HeaderMap::new();
        incoming.insert(CANARY_HEADER, HeaderValue::from_static("always"));
        incoming.insert("baggage", HeaderValue::from_static("team=pay"));
        incoming.insert("grpc-timeout", HeaderValue::from_static("2S"));
        let fwd = Forwarded::from_headers(&incoming);
        let mut out = HeaderMap::new();
        fwd.apply_to_call(&mut out);
        assert_eq!(out[CANARY_HEADER], "always");
        assert_eq!(out["baggage"], "team=pay");
        let left = crate::deadline::parse(out["grpc-timeout"].to_str().unwrap()).unwrap();
        assert!(
            left <= std::time::Duration::from_secs(2)
                && left > std::time::Duration::from_millis(1500)
        );
        // A shorter timeout of the inner call's own stays.
        let mut own = HeaderMap::new();
        own.insert("grpc-timeout", HeaderValue::from_static("100m"));
        fwd.apply_to_call(&mut own);
        assert_eq!(own["grpc-timeout"], "100m");
        // The queue hop keeps the pin, not the deadline.
        let stored: HashMap<String, String> = fwd.to_pairs().into_iter().collect();
        let mut after_queue = HeaderMap::new();
        Forwarded::from_pairs(&stored).apply_to_call(&mut after_queue);
        assert_eq!(after_queue[CANARY_HEADER], "always");
        assert!(after_queue.get("grpc-timeout").is_none());
    }

    #[tokio::test]
    async fn forwarded_headers_are_scoped_to_the_call() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-request-id", HeaderValue::from_static("r-2"));
        let seen = Forwarded::from_headers(&incoming)
            .scope(async { Forwarded::current().to_pairs() })
            .await;
        assert_eq!(seen, vec![("x-request-id".to_string(), "r-2".to_string())]);
        assert!(Forwarded::current().to_pairs().is_empty());
    }
}
