//! WeChat's pushes are traced like every other hop: the callback endpoint's
//! server span (a trace of its own: WeChat sends no trace context) is the
//! parent of the spans in which the log and delivery process the push, all
//! exported over OTLP to a real receiver (`mock-collector`).
//!
//! Its own test file: the tracer provider and the subscriber are
//! process-wide.

mod common;

use common::{Harness, shipped_to};
use mock_collector::{MockServer, Protocol};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::time::Duration;
use wxpush_proto::v1::DeliveryStatus;
use wxpush_telemetry::TelemetryConfig;

const RECEIVE: &str = "POST /wechat/callback/{app_id}";
const PROCESS: &str = "process wxpush.callbacks";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_is_one_trace_from_the_endpoint_to_its_readers() {
    let collector = MockServer::builder()
        .protocol(Protocol::Grpc)
        .port(0)
        .start()
        .await
        .expect("mock collector starts");
    let telemetry = wxpush_telemetry::init_with(TelemetryConfig {
        otlp_endpoint: Some(format!("http://{}", collector.addr())),
        environment: "test".into(),
        ..TelemetryConfig::from_env("wxpush-otel-callbacks-test", "0.0.0-test")
    });
    assert!(telemetry.exporting());
    let h = Harness::start_with_callbacks().await;
    let sent = h.send(shipped_to("o_demo_follower")).await;
    assert_eq!(sent.status, DeliveryStatus::Sent as i32);

    // The receipt's push is processed by logquery and by delivery.
    let wanted = |c: &mock_collector::MockCollector| {
        c.spans()
            .iter()
            .filter(|s| s.span().name == PROCESS)
            .count()
            >= 2
    };
    // The push comes a moment after the send: flush until its readers'
    // spans are out (15 s at most).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut telemetry = telemetry;
    loop {
        telemetry = tokio::task::spawn_blocking(move || {
            telemetry.force_flush();
            telemetry
        })
        .await
        .unwrap();
        if collector
            .wait_until(wanted, Duration::from_millis(500))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no spans of the push's readers"
        );
    }
    let spans: Vec<Span> = collector
        .with_collector(|c| c.spans().iter().map(|s| s.span().clone()).collect())
        .await;
    let receive: Vec<&Span> = spans.iter().filter(|s| s.name == RECEIVE).collect();
    assert_eq!(receive.len(), 1, "one push, one receive span");
    let receive = receive[0];
    assert_eq!(receive.kind, SpanKind::Server as i32);
    let readers: Vec<&Span> = spans.iter().filter(|s| s.name == PROCESS).collect();
    assert!(readers.len() >= 2, "{readers:?}");
    for r in readers {
        assert_eq!(
            r.trace_id, receive.trace_id,
            "a reader's span in another trace"
        );
        assert_eq!(r.parent_span_id, receive.span_id);
        assert_eq!(r.kind, SpanKind::Consumer as i32);
    }
    h.suite.shutdown().await;
    drop(telemetry);
}
