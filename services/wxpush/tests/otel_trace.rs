//! A Send through the whole suite with telemetry on, exported over OTLP/gRPC
//! to a real OTLP receiver (`mock-collector`): one trace per message, spans
//! from delivery, template, token and the WeChat call linked parent to
//! child, the delivery log's trace id equal to the exported one, a caller's
//! `traceparent` continued, and no token or secret on any span.
//!
//! Its own test file: the tracer provider and the subscriber are
//! process-wide.

mod common;

use common::{Harness, shipped_to};
use mock_collector::{MockServer, Protocol};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::time::Duration;
use wxpush_proto::v1::{DeliveryStatus, LogFilter, SendAsyncRequest};
use wxpush_telemetry::TelemetryConfig;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const ASYNC_TRACE: &str = "6cf92f3577b34da6a3ce929d0e0e4799";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value_text(&kv.value))
}

/// The one span of `trace` named `name`.
fn one<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span {name} in trace {trace}, found {}; spans: {:#?}",
        found.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

fn assert_child(child: &Span, parent: &Span) {
    assert_eq!(
        hex(&child.parent_span_id),
        hex(&parent.span_id),
        "{} should be a child of {}",
        child.name,
        parent.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_is_one_trace_across_every_hop_exported_over_otlp() {
    let collector = MockServer::builder()
        .protocol(Protocol::Grpc)
        .port(0)
        .start()
        .await
        .expect("mock collector starts");
    let telemetry = wxpush_telemetry::init_with(TelemetryConfig {
        otlp_endpoint: Some(format!("http://{}", collector.addr())),
        environment: "test".into(),
        ..TelemetryConfig::from_env("wxpush-otel-test", "0.0.0-test")
    });
    assert!(telemetry.exporting());
    let h = Harness::start().await;

    // 1: the caller sends its own traceparent: continued, not replaced.
    let mut request = tonic::Request::new(shipped_to("o_demo_follower"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "req-otel-1".parse().unwrap());
    let continued = h
        .delivery()
        .send(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(continued.status, DeliveryStatus::Sent as i32);
    assert_eq!(continued.trace_id, CALLER_TRACE);

    // 2: no traceparent: a new trace, still OpenTelemetry's ids.
    let fresh = h.send(shipped_to("o_demo_follower2")).await;
    assert_eq!(fresh.status, DeliveryStatus::Sent as i32);
    assert_ne!(fresh.trace_id, CALLER_TRACE);
    assert_eq!(fresh.trace_id.len(), 32);

    // 3: SendAsync: the queued delivery continues the caller's trace.
    let mut request = tonic::Request::new(SendAsyncRequest::from(shipped_to("o_demo_follower")));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{ASYNC_TRACE}-{CALLER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let queued = h.delivery().send_async(request).await.unwrap().into_inner();
    assert_eq!(queued.trace_id, ASYNC_TRACE);
    let r = h.settled(&queued.message_id, Duration::from_secs(10)).await;
    assert_eq!(
        r.status,
        DeliveryStatus::Sent as i32,
        "async message not sent: {r:?}"
    );
    let async_record = h
        .find_one(LogFilter {
            message_id: queued.message_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(async_record.trace_id, ASYNC_TRACE);

    // The log records carry the same trace ids.
    for result in [&continued, &fresh] {
        let record = h
            .find_one(LogFilter {
                message_id: result.message_id.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(record.trace_id, result.trace_id);
    }

    let flushed = tokio::task::spawn_blocking(move || {
        telemetry.force_flush();
        telemetry
    })
    .await
    .unwrap();
    let wanted = |c: &mock_collector::MockCollector| {
        c.spans()
            .iter()
            .filter(|s| s.span().name.starts_with("POST /cgi-bin/message/"))
            .count()
            >= 3
    };
    collector
        .wait_until(wanted, Duration::from_secs(10))
        .await
        .expect("spans of the three sends arrive");
    // Server spans end a moment after their client's answer is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flushed = tokio::task::spawn_blocking(move || {
        flushed.force_flush();
        flushed
    })
    .await
    .unwrap();

    let (spans, resources): (Vec<Span>, Vec<Vec<KeyValue>>) = collector
        .with_collector(|c| {
            c.spans()
                .iter()
                .map(|s| (s.span().clone(), s.resource_attrs().to_vec()))
                .unzip()
        })
        .await;

    for trace in [CALLER_TRACE, fresh.trace_id.as_str()] {
        let send = one(&spans, trace, "wxpush.v1.DeliveryService/Send");
        assert_eq!(send.kind, SpanKind::Server as i32);
        assert_eq!(
            attr(&send.attributes, "rpc.system").as_deref(),
            Some("grpc")
        );
        assert_eq!(
            attr(&send.attributes, "rpc.service").as_deref(),
            Some("wxpush.v1.DeliveryService")
        );
        assert_eq!(
            attr(&send.attributes, "rpc.method").as_deref(),
            Some("Send")
        );
        assert_eq!(
            attr(&send.attributes, "rpc.grpc.status_code").as_deref(),
            Some("0")
        );
        // Who called: the configured caller's name (wxpush dev checks no
        // caller).
        assert_eq!(
            attr(&send.attributes, "wxpush.caller").as_deref(),
            Some("anonymous")
        );
        // The first Send finds delivery's copies of the render plan and the
        // token cold and asks their owners, in its trace; the second uses
        // the copies (delivery/src/local.rs) and makes no such hop.
        let first = trace == CALLER_TRACE;
        for (service, method) in [
            ("wxpush.v1.TemplateService", "GetTemplate"),
            ("wxpush.v1.TokenService", "GetAccessToken"),
        ] {
            let name = format!("{service}/{method}");
            let hop: Vec<&Span> = spans
                .iter()
                .filter(|s| hex(&s.trace_id) == trace && s.name == name)
                .collect();
            if !first {
                assert!(hop.is_empty(), "{name} in {trace}: the copy was not used");
                continue;
            }
            let client = hop
                .iter()
                .find(|s| s.kind == SpanKind::Client as i32)
                .unwrap_or_else(|| panic!("client span {name} in {trace}"));
            let server = hop
                .iter()
                .find(|s| s.kind == SpanKind::Server as i32)
                .unwrap_or_else(|| panic!("server span {name} in {trace}"));
            assert_child(client, send);
            assert_child(server, client);
            assert_eq!(
                attr(&server.attributes, "rpc.grpc.status_code").as_deref(),
                Some("0")
            );
        }
        let wechat = one(&spans, trace, "POST /cgi-bin/message/template/send");
        assert_eq!(wechat.kind, SpanKind::Client as i32);
        assert_child(wechat, send);
        assert_eq!(
            attr(&wechat.attributes, "wechat.errcode").as_deref(),
            Some("0")
        );
        assert_eq!(
            attr(&wechat.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(
            attr(&wechat.attributes, "http.request.method").as_deref(),
            Some("POST")
        );
        let url = attr(&wechat.attributes, "url.full").expect("url.full");
        assert!(url.contains("access_token=REDACTED"), "{url}");
    }
    // The caller's span is the parent of the delivery server span.
    let send = one(&spans, CALLER_TRACE, "wxpush.v1.DeliveryService/Send");
    assert_eq!(hex(&send.parent_span_id), CALLER_SPAN);
    let send2 = one(&spans, &fresh.trace_id, "wxpush.v1.DeliveryService/Send");
    assert!(
        send2.parent_span_id.is_empty(),
        "a new trace starts at the root"
    );

    // The async message: SendAsync, then the queue hop, then WeChat, one trace.
    let accept = one(&spans, ASYNC_TRACE, "wxpush.v1.DeliveryService/SendAsync");
    assert_eq!(hex(&accept.parent_span_id), CALLER_SPAN);
    let process = one(&spans, ASYNC_TRACE, "process wxpush.queue");
    assert_eq!(process.kind, SpanKind::Consumer as i32);
    assert_child(process, accept);
    let wechat = one(&spans, ASYNC_TRACE, "POST /cgi-bin/message/template/send");
    assert_child(wechat, process);

    // One trace per message: nothing of message 2 in the caller's trace.
    let sends_in_caller_trace = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CALLER_TRACE && s.name.starts_with("POST "))
        .count();
    assert_eq!(sends_in_caller_trace, 1);

    // Resource attributes name the service and environment.
    let resource = &resources[0];
    assert_eq!(
        attr(resource, "service.name").as_deref(),
        Some("wxpush-otel-test")
    );
    assert_eq!(
        attr(resource, "deployment.environment").as_deref(),
        Some("test")
    );
    assert_eq!(
        attr(resource, "service.version").as_deref(),
        Some("0.0.0-test")
    );

    // No token the sandbox issued and no app secret anywhere on a span.
    let issued = h.admin.issued_tokens().await.unwrap();
    assert!(!issued.is_empty());
    let secrets: Vec<String> = wechat_sandbox::demo_config()
        .apps
        .into_iter()
        .map(|a| a.secret)
        .collect();
    let everything = format!("{spans:?}{resources:?}");
    for token in &issued {
        assert!(
            !everything.contains(token.as_str()),
            "a token reached a span"
        );
    }
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret reached a span"
        );
    }

    h.suite.shutdown().await;
    flushed.shutdown().await;
    collector.shutdown().await.unwrap();
}
