//! gRPC observability written once, as tower layers every server and client
//! in wxpush goes through:
//!
//! - [`ServerTraceLayer`] (added by [`crate::grpc::serve`]): continues the
//!   caller's W3C trace (`traceparent` / `tracestate`) in a server span named
//!   per the OpenTelemetry RPC conventions (`wxpush.v1.DeliveryService/Send`)
//!   with `rpc.*` attributes and the final gRPC status code, and counts the
//!   call in [`RpcMetrics`] (requests, errors, duration by service, method
//!   and code).
//! - [`ClientTraceLayer`] ([`traced`] wraps a `Channel`): a client span per
//!   outgoing call whose context is injected into the request, so the callee's
//!   server span is its child.
//! - [`GateLayer`] (added by [`crate::grpc::serve`], inside the trace
//!   layer): who is calling and whether it may ([`crate::caller`]).
//! - [`propagation`]: header carriers, the Istio/Envoy headers (`b3`,
//!   `x-b3-*`, `x-request-id`) forwarded from the incoming call to every
//!   outgoing one, and the queue hop (a trace carried inside a message).
//!
//! The status of a gRPC call is known only at the end of the response: in the
//! headers of a trailers-only answer (every error of a unary call) or in the
//! trailers after the body. [`body::ObservedBody`] watches for it, so spans
//! and metrics are finished exactly once with the real code, also for
//! streams (`TailLogs`) and cancelled calls.

pub mod body;
mod client;
pub mod credentials;
mod gate;
mod metrics;
pub mod propagation;
mod server;

pub use client::{ClientTrace, ClientTraceLayer, TracedChannel, traced, traced_as};
pub use credentials::Credentials;
pub use gate::{Gate, GateLayer, GateMetrics};
pub use metrics::RpcMetrics;
pub use server::{DEADLINE_MARGIN, ServerTrace, ServerTraceLayer};

use tonic::Code;

/// A gRPC method as named by its request path `/pkg.Service/Method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcName {
    /// `wxpush.v1.DeliveryService`
    pub service: String,
    /// `Send`
    pub method: String,
    /// Whether the server answers with a stream (TailLogs, health Watch,
    /// reflection).
    pub streams: bool,
}

impl RpcName {
    /// Names a request path. Only the methods wxpush serves (its own
    /// services, health, reflection) keep their names; any other path
    /// becomes service and method `unknown`, so a caller posting to
    /// `/evil.Svc1/M1`, `/evil.Svc2/M1`... cannot mint metric series or span
    /// names.
    pub fn from_path(path: &str) -> Self {
        match (
            path.trim_start_matches('/').split_once('/'),
            known_methods().get(path),
        ) {
            (Some((service, method)), Some(streams)) => Self {
                service: service.to_string(),
                method: method.to_string(),
                streams: *streams,
            },
            _ => Self {
                service: "unknown".into(),
                method: "unknown".into(),
                streams: false,
            },
        }
    }

    /// Whether the server side streams (the `grpc_type` label).
    pub fn is_server_stream(&self) -> bool {
        self.streams
    }

    /// The span name: `service/method`.
    pub fn span_name(&self) -> String {
        format!("{}/{}", self.service, self.method)
    }
}

/// `/pkg.Service/Method` of every method of the descriptor sets wxpush
/// serves (its own API, `grpc.health.v1` and server reflection), and
/// whether the server streams its answer.
fn known_methods() -> &'static std::collections::HashMap<String, bool> {
    static KNOWN: std::sync::OnceLock<std::collections::HashMap<String, bool>> =
        std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        use prost::Message;
        let mut known = std::collections::HashMap::new();
        for set in [
            wxpush_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let files = prost_types::FileDescriptorSet::decode(set)
                .expect("the embedded descriptor sets decode")
                .file;
            for f in files {
                for s in &f.service {
                    for m in &s.method {
                        known.insert(
                            format!("/{}.{}/{}", f.package(), s.name(), m.name()),
                            m.server_streaming(),
                        );
                    }
                }
            }
        }
        for version in ["v1", "v1alpha"] {
            known.insert(
                format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"),
                true,
            );
        }
        known
    })
}

/// The canonical upper-case name of a gRPC code (`INVALID_ARGUMENT`), as
/// used in metric labels.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `grpc-status` of a header or trailer map, if present.
pub(crate) fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// Whether a server span with this code is an error, per the OpenTelemetry
/// gRPC conventions (a client's mistake such as INVALID_ARGUMENT is not the
/// server's error); every non-OK code is an error for a client span.
pub(crate) fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_path_and_stay_bounded() {
        let n = RpcName::from_path("/wxpush.v1.DeliveryService/Send");
        assert_eq!(n.service, "wxpush.v1.DeliveryService");
        assert_eq!(n.method, "Send");
        assert_eq!(n.span_name(), "wxpush.v1.DeliveryService/Send");
        for junk in ["/", "", "/a/b/c", "/onlyservice", "//m"] {
            assert_eq!(RpcName::from_path(junk).service, "unknown", "{junk}");
        }
        // Issue 19, item 6: a path no service serves names nothing.
        for evil in ["/evil.Svc1/M1", "/wxpush.v1.DeliveryService/Nope"] {
            assert_eq!(RpcName::from_path(evil).span_name(), "unknown/unknown");
        }
        assert_eq!(
            RpcName::from_path("/grpc.health.v1.Health/Check").method,
            "Check"
        );
    }

    #[test]
    fn codes_have_canonical_names_and_error_classes() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert!(is_server_error(Code::Internal));
        assert!(!is_server_error(Code::InvalidArgument));
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", "3".parse().unwrap());
        assert_eq!(grpc_status(&h), Some(Code::InvalidArgument));
    }
}
