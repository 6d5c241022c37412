//! Issue 19: requests one unauthenticated caller could use to crash, pin or
//! fill the suite, each refused or bounded now; a test per item, against the
//! whole suite over real gRPC.

mod common;

use common::{Harness, shipped_to, vars};
use std::time::Duration;
use tonic::Code;
use wxpush::SuiteOptions;
use wxpush_proto::v1::*;
use wxpush_server::status::field_violations;

fn refused_fields(status: tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    field_violations(&status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Item 2: a 75 KB `SendBatch` (common variables copied into 1 000
/// recipients) put 56 MiB into Redis; a `send_at` of 9999-12-31 was parked
/// for good; a replay could name any number of ids.
#[tokio::test]
async fn item2_a_small_batch_cannot_fill_the_queue() {
    let h = Harness::start().await;
    let common: Vec<(String, String)> = (0..75)
        .map(|i| (format!("pad{i}"), "x".repeat(1000)))
        .collect();
    let batch = SendBatchRequest {
        template_key: "order_shipped".into(),
        common_variables: common.into_iter().collect(),
        recipients: (0..1000)
            .map(|i| BatchRecipient {
                openid: format!("o_{i}"),
                variables: vars(&[("order_id", "1")]),
                idempotency_key: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    let err = h.delivery().send_batch(batch).await.unwrap_err();
    assert_eq!(refused_fields(err), ["recipients"]);

    let mut far = SendAsyncRequest::from(shipped_to("o_demo_follower"));
    far.send_at = Some(wxpush_proto::Timestamp {
        seconds: 253_402_300_799,
        nanos: 0,
    });
    let err = h.delivery().send_async(far).await.unwrap_err();
    assert_eq!(refused_fields(err), ["send_at"]);

    let err = h
        .delivery()
        .replay_dead_letters(ReplayDeadLettersRequest {
            message_ids: (0..1001).map(|i| format!("m{i}")).collect(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused_fields(err), ["message_ids"]);
    h.suite.shutdown().await;
}

/// Item 8: only the sync path called the rate limiter; SendAsync,
/// SendBatch and replays sent as fast as the workers could.
#[tokio::test]
async fn item8_async_sends_keep_the_rate_limit() {
    let mut opts = SuiteOptions::demo_on_free_ports();
    opts.delivery.rate_limit.per_second = 20.0;
    opts.delivery.rate_limit.burst = 1;
    let h = Harness::start_with(opts).await;
    let mut ids = Vec::new();
    for _ in 0..15 {
        let r = h.send_async(shipped_to("o_demo_follower")).await;
        ids.push(r.message_id);
    }
    for id in &ids {
        let r = h.settled(id, Duration::from_secs(20)).await;
        assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    }
    let paced = h
        .suite
        .metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("wxpush_queue_deferred_total") && l.contains("rate_limit"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(paced > 0.0, "the workers never waited for the limiter");
    h.suite.shutdown().await;
}

/// Item 7: with the template process stalled, a `Send` hung 20 s and more
/// although its budget is 10 s: inner calls carried no deadline and a
/// channel still dialling had no timeout. A delivery whose template
/// service accepts connections and never answers now fails the call with
/// DEADLINE_EXCEEDED from its own budget (here 300 ms).
#[tokio::test]
async fn item7_a_stalled_template_service_cannot_hold_a_send() {
    let h = Harness::start().await;
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_addr = stalled.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            held.push(socket);
        }
    });
    let mut config = wxpush_delivery::DeliveryConfig::default();
    config.retry.total_deadline_ms = 300;
    config.template_endpoint =
        wxpush_server::config::GrpcEndpoint::parse(&format!("http://{stalled_addr}")).unwrap();
    config.token_endpoint =
        wxpush_server::config::GrpcEndpoint::parse(&h.suite.grpc_url()).unwrap();
    let component = wxpush_delivery::build(config).await.unwrap();
    let mut delivery = common::serve_delivery(component).await;
    // A guard against a hang, far beyond the budget; not a timing check.
    let guard = Duration::from_secs(60);
    let sync = tokio::time::timeout(guard, delivery.send(shipped_to("o_demo_follower")))
        .await
        .expect("Send answered");
    let err = sync.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("template"), "{err:?}");
    let queued = tokio::time::timeout(
        guard,
        delivery.send_async(SendAsyncRequest::from(shipped_to("o_demo_follower"))),
    )
    .await
    .expect("SendAsync answered");
    assert_eq!(queued.unwrap_err().code(), Code::DeadlineExceeded);
    h.suite.shutdown().await;
}

/// Item 6: a POST to `/evil.Svc1/M1` created new metric series and span
/// names per distinct path. Fifty made-up paths now leave no trace of their
/// names in the metrics.
#[tokio::test]
async fn item6_made_up_paths_mint_no_metric_series() {
    let h = Harness::start().await;
    for i in 0..50 {
        let mut grpc = tonic::client::Grpc::new(h.channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/evil.Svc{i}/M{i}").parse().unwrap();
        let codec = tonic_prost::ProstCodec::<GetMessageRequest, GetMessageRequest>::default();
        let answer = grpc
            .unary(
                tonic::Request::new(GetMessageRequest::default()),
                path,
                codec,
            )
            .await;
        assert_eq!(answer.unwrap_err().code(), Code::Unimplemented);
    }
    let text = h.suite.metrics.encode();
    assert!(!text.contains("evil"), "metrics name a made-up path");
    assert!(text.contains(r#"service="unknown""#), "counted as unknown");
    h.suite.shutdown().await;
}

/// Item 5: one connection could open any number of `TailLogs` streams
/// (1 000 streams: +17 MB, then +136 MB once a batch arrived that they did
/// not read). A replica now serves at most 100 at once; the next is
/// RESOURCE_EXHAUSTED, and a closed one frees its place.
#[tokio::test]
async fn item5_tail_streams_are_bounded() {
    let h = Harness::start().await;
    let mut open = Vec::new();
    for _ in 0..wxpush_logquery::tail::MAX_STREAMS {
        let stream = h
            .logs()
            .tail_logs(TailLogsRequest::default())
            .await
            .expect("a stream within the limit");
        open.push(stream.into_inner());
    }
    let over = h.logs().tail_logs(TailLogsRequest::default()).await;
    assert_eq!(over.unwrap_err().code(), Code::ResourceExhausted);
    drop(open.pop());
    let mut again = None;
    for _ in 0..100 {
        // The server notices the closed stream on its own schedule.
        match h.logs().tail_logs(TailLogsRequest::default()).await {
            Ok(s) => {
                again = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(again.is_some(), "a closed stream frees its place");
    drop(open);
    h.suite.shutdown().await;
}
