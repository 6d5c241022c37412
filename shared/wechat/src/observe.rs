//! Every WeChat call observed the same way: an OpenTelemetry HTTP client
//! span (`POST /cgi-bin/message/template/send`) with `http.*` attributes,
//! `url.full` with the access token and secret redacted, `wechat.api` and
//! `wechat.errcode`, and the metrics operators alert on (calls by api,
//! errcode and result; latency by api). The request carries the span's
//! `traceparent` and the Istio headers of the call being served.

use crate::redact::redact_url;
use crate::types::WechatError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;
use tracing::Span;

/// Seconds; WeChat answers in tens of milliseconds, a timeout is 5 s.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    api: &'static str,
    /// WeChat's errcode as text (`0` on success, `-1` for transport errors).
    errcode: String,
    /// ok | errcode | http_status | timeout | transport | decode
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: &'static str,
}

type HistogramFamily = Family<ApiLabel, Histogram, fn() -> Histogram>;

/// WeChat call metrics of one client (and its clones).
#[derive(Clone, Debug)]
pub struct WechatMetrics {
    requests: Family<CallLabels, Counter>,
    duration: HistogramFamily,
}

impl Default for WechatMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: HistogramFamily::new_with_constructor(|| {
                Histogram::new(BUCKETS.iter().copied())
            }),
        }
    }
}

impl WechatMetrics {
    /// The process's WeChat call metrics: every client of the process (the
    /// token, template and delivery services in `wxpush dev`) counts into
    /// the same families, registered once.
    pub fn global() -> &'static WechatMetrics {
        static GLOBAL: std::sync::OnceLock<WechatMetrics> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(WechatMetrics::default)
    }

    /// Adds the families to a registry (the admin port's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wxpush_wechat_requests",
            "Calls to the WeChat API by api, errcode and result",
            self.requests.clone(),
        );
        registry.register(
            "wxpush_wechat_request_duration_seconds",
            "Latency of calls to the WeChat API by api",
            self.duration.clone(),
        );
    }

    fn observe(&self, api: &'static str, outcome: Result<(), &WechatError>, elapsed: Duration) {
        let (errcode, result) = match outcome {
            Ok(()) => (0, "ok"),
            Err(e) => (e.errcode(), result_of(e)),
        };
        self.requests
            .get_or_create(&CallLabels {
                api,
                errcode: errcode.to_string(),
                result,
            })
            .inc();
        self.duration
            .get_or_create(&ApiLabel { api })
            .observe(elapsed.as_secs_f64());
    }
}

fn result_of(e: &WechatError) -> &'static str {
    match e {
        WechatError::Api { .. } => "errcode",
        WechatError::HttpStatus(_) => "http_status",
        WechatError::Timeout => "timeout",
        WechatError::Decode(_) => "decode",
        WechatError::Transport(_) => "transport",
    }
}

/// The client span of one call; `url` may hold the token: it is redacted
/// before it is recorded.
pub(crate) fn span(api: &'static str, method: &str, url: &reqwest::Url) -> Span {
    tracing::info_span!(
        "wechat.http",
        otel.name = %format!("{method} {}", url.path()),
        otel.kind = "client",
        http.request.method = %method,
        url.full = %redact_url(url.as_str()),
        server.address = url.host_str().unwrap_or(""),
        server.port = url.port_or_known_default().map_or(0, i64::from),
        wechat.api = api,
        http.response.status_code = tracing::field::Empty,
        wechat.errcode = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records the outcome on the span and in the metrics. An errcode other
/// than 0 marks the span as an error, so tail sampling keeps the trace of a
/// message the user never got.
pub(crate) fn finish(
    metrics: &WechatMetrics,
    span: &Span,
    api: &'static str,
    http_status: Option<u16>,
    outcome: Result<(), &WechatError>,
    elapsed: Duration,
) {
    if let Some(status) = http_status {
        span.record("http.response.status_code", i64::from(status));
    }
    match outcome {
        Ok(()) => {
            span.record("wechat.errcode", 0i64);
        }
        Err(e) => {
            span.record("wechat.errcode", e.errcode());
            span.record("error.type", result_of(e));
            span.record("otel.status_code", "ERROR");
        }
    }
    metrics.observe(api, outcome, elapsed);
}
