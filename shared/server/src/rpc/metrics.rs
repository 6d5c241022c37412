//! RED metrics of every gRPC method a process serves. One process-wide set
//! (the server layer is process-wide); each binary registers it on its admin
//! port with [`RpcMetrics::register`].
//!
//! Labels follow the usual gRPC exporter names (`grpc_service`,
//! `grpc_method`, `grpc_type`, `grpc_code`) rather than `service`, which
//! Prometheus Operator adds as a target label and would rename.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;
use tonic::Code;

use super::{RpcName, code_name};

/// Seconds; from 1 ms (a cache hit) to 10 s (a Send's whole retry budget).
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_service: String,
    grpc_method: String,
    /// `unary` or `server_stream` (TailLogs): a stream's duration is how
    /// long it stayed open, so latency panels keep to `unary`.
    grpc_type: &'static str,
    grpc_code: &'static str,
}

type HistogramFamily = Family<CallLabels, Histogram, fn() -> Histogram>;

/// One histogram of served calls by service, method, type and final code:
/// its `_count` is the request rate, errors are the series whose
/// `grpc_code` is not `OK`.
#[derive(Clone)]
pub struct RpcMetrics {
    duration: HistogramFamily,
}

impl RpcMetrics {
    /// The process's metrics, shared by every server the process runs.
    pub fn global() -> &'static RpcMetrics {
        static GLOBAL: OnceLock<RpcMetrics> = OnceLock::new();
        GLOBAL.get_or_init(|| RpcMetrics {
            duration: HistogramFamily::new_with_constructor(|| {
                Histogram::new(BUCKETS.iter().copied())
            }),
        })
    }

    /// Adds the family to a registry (the admin port's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wxpush_rpc_server_duration_seconds",
            "Time from request to final status of served gRPC calls, by service, method, type and status code",
            self.duration.clone(),
        );
    }

    pub(crate) fn observe(&self, name: &RpcName, code: Code, elapsed: Duration) {
        let labels = CallLabels {
            grpc_service: name.service.clone(),
            grpc_method: name.method.clone(),
            grpc_type: if name.is_server_stream() {
                "server_stream"
            } else {
                "unary"
            },
            grpc_code: code_name(code),
        };
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}
