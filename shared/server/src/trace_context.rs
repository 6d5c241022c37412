//! W3C Trace Context (`traceparent`) as a value: the trace id the delivery
//! log records and `DeliveryResult.trace_id` returns.
//!
//! With telemetry installed (`wxpush_telemetry::init`) the ids are
//! OpenTelemetry's: [`TraceContext::current`] is the context of the current
//! span, which the server layer ([`crate::rpc::ServerTraceLayer`]) parented
//! on the caller's `traceparent` — so the caller's trace is continued, not
//! replaced, and the log's trace id is the one exported to the collector.
//! Without it (unit tests with a plain subscriber) the context is parsed from
//! the metadata or started fresh, as before. Propagation to the next hop is
//! the layers' job; [`TraceContext::inject`] remains for the fallback.

use opentelemetry::trace::TraceContextExt;
use rand::Rng;
use std::fmt;
use tonic::metadata::{MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header name.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a trace: the trace id shared by every hop and the id of
/// the current span.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl TraceContext {
    /// A new trace with random, non-zero ids.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        while trace_id == [0; 16] {
            rng.fill(&mut trace_id);
        }
        while span_id == [0; 8] {
            rng.fill(&mut span_id);
        }
        Self {
            trace_id,
            span_id,
            sampled: true,
        }
    }

    /// Parses a `traceparent` value (version 00); `None` when malformed or
    /// when either id is all zeros, as the spec requires.
    pub fn parse(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.trim().split('-').collect();
        if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
            return None;
        }
        let version = u8::from_str_radix(parts[0], 16).ok()?;
        if version == 0 && parts.len() != 4 {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(parts[1])?.try_into().ok()?;
        let span_id: [u8; 8] = decode_hex(parts[2])?.try_into().ok()?;
        let flags: [u8; 1] = decode_hex(parts[3])?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The OpenTelemetry context of the current `tracing` span, when an
    /// OpenTelemetry subscriber is installed and a span is current.
    pub fn current() -> Option<Self> {
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| Self {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
        })
    }

    /// The context of the call being served: the current OpenTelemetry span
    /// (the server layer's, already continuing the caller's trace), else the
    /// caller's `traceparent` from the metadata, else a new root.
    pub fn from_metadata_or_new(metadata: &MetadataMap) -> Self {
        Self::current().unwrap_or_else(|| {
            metadata
                .get(TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .and_then(Self::parse)
                .unwrap_or_else(Self::new_root)
        })
    }

    /// The same trace with a new span id: the context for a child hop.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        let mut rng = rand::rng();
        while span_id == [0; 8] {
            rng.fill(&mut span_id);
        }
        Self { span_id, ..*self }
    }

    /// 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        encode_hex(&self.trace_id)
    }

    /// 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        encode_hex(&self.span_id)
    }

    /// The `traceparent` header value.
    pub fn header_value(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            u8::from(self.sampled)
        )
    }

    /// Puts this context on outgoing gRPC metadata.
    pub fn inject(&self, metadata: &mut MetadataMap) {
        if let Ok(v) = MetadataValue::try_from(self.header_value()) {
            metadata.insert(TRACEPARENT, v);
        }
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header_value())
    }
}

/// Whether `s` is a 32-hex-digit trace id (for validating query filters).
pub fn is_trace_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_spec_example() {
        let v = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let tc = TraceContext::parse(v).unwrap();
        assert_eq!(tc.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(tc.header_value(), v);
        let child = tc.child();
        assert_eq!(child.trace_id(), tc.trace_id());
        assert_ne!(child.span_id(), tc.span_id());
    }

    #[test]
    fn rejects_malformed_and_zero_ids() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trip_continues_the_trace() {
        let tc = TraceContext::new_root();
        let mut md = MetadataMap::new();
        tc.inject(&mut md);
        assert_eq!(TraceContext::from_metadata_or_new(&md), tc);
        assert!(is_trace_id(&tc.trace_id()));
    }
}
