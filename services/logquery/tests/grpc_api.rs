//! The API over real gRPC on both backends: TailLogs delivers a matching
//! record within 1 s of its event and nothing else; bad requests are
//! INVALID_ARGUMENT naming the field.

mod common;

use common::{Backend, Kind, ts};
use std::time::{Duration, Instant};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use wxpush_logquery::{LogQueryGrpc, Tail, ingest};
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::status::field_violations;

struct Running {
    client: LogQueryServiceClient<Channel>,
    _backend: Backend,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start(kind: Kind) -> Running {
    let backend = Backend::start(kind).await;
    let tail = Tail::default();
    let ingest = ingest::spawn(backend.source().await, backend.store.clone(), tail.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = LogQueryGrpc::new(backend.store.clone(), tail).into_server();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        client: LogQueryServiceClient::new(channel),
        _backend: backend,
        tasks: vec![ingest, server],
    }
}

fn event(id: &str, openid: &str) -> DeliveryEvent {
    let now = ts(wxpush_logquery::store::now_micros());
    DeliveryEvent {
        event_id: format!("{id}/1"),
        message_id: id.into(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        app_id: "wx_demo_oa".into(),
        openid: openid.into(),
        template_key: "order_shipped".into(),
        attempt: 1,
        status: DeliveryStatus::Sent as i32,
        accepted_at: now,
        occurred_at: now,
        ..Default::default()
    }
}

async fn tail_delivers_only_matching_records_within_a_second(kind: Kind) {
    let mut rt = start(kind).await;
    let sink = rt._backend.sink.clone();
    let mut stream = rt
        .client
        .tail_logs(TailLogsRequest {
            filter: Some(LogFilter {
                openid: "o_watched".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("TailLogs")
        .into_inner();
    for round in 0..3 {
        sink.publish(event(&format!("other{round}"), "o_other"))
            .await
            .unwrap();
        let sent = Instant::now();
        sink.publish(event(&format!("mine{round}"), "o_watched"))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), stream.message())
            .await
            .expect("a matching record within 1 s")
            .expect("stream ok")
            .expect("stream open");
        assert_eq!(
            got.message_id,
            format!("mine{round}"),
            "only the matching record"
        );
        assert_eq!(got.openid, "o_watched");
        assert!(sent.elapsed() < Duration::from_secs(1));
    }
    sink.publish(event("other-last", "o_other")).await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(nothing.is_err(), "nothing that does not match: {nothing:?}");
    // The records are in the log too.
    let page = rt
        .client
        .query_logs(QueryLogsRequest {
            filter: Some(LogFilter {
                openid: "o_other".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 4);
}

#[tokio::test]
async fn memory_tail_logs_over_grpc() {
    tail_delivers_only_matching_records_within_a_second(Kind::Memory).await;
}

#[tokio::test]
async fn redis_tail_logs_over_grpc() {
    tail_delivers_only_matching_records_within_a_second(Kind::Redis).await;
}

fn violated(r: Result<impl std::fmt::Debug, tonic::Status>) -> Vec<String> {
    let status = r.expect_err("INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    field_violations(&status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn bad_requests_name_their_field(kind: Kind) {
    let rt = start(kind).await;
    let mut c = rt.client.clone();
    let q = |page_size, page_token: &str, filter| QueryLogsRequest {
        filter,
        page_size,
        page_token: page_token.into(),
    };
    assert_eq!(
        violated(c.query_logs(q(10_000, "", None)).await),
        ["page_size"]
    );
    assert_eq!(
        violated(c.query_logs(q(10, "not-a-token!", None)).await),
        ["page_token"]
    );
    let inverted = Some(LogFilter {
        time_range: Some(TimeRange {
            start: ts(2_000_000),
            end: ts(1_000_000),
        }),
        ..Default::default()
    });
    assert_eq!(
        violated(c.query_logs(q(10, "", inverted.clone())).await),
        ["filter.time_range"]
    );
    assert_eq!(
        violated(c.tail_logs(TailLogsRequest { filter: inverted }).await),
        ["filter.time_range"]
    );
    assert_eq!(
        violated(c.get_stats(GetStatsRequest::default()).await),
        ["time_range.start", "time_range.end"]
    );
    assert_eq!(
        violated(
            c.get_message_history(GetMessageHistoryRequest::default())
                .await
        ),
        ["message_id"]
    );
    let missing = c
        .get_message_history(GetMessageHistoryRequest {
            message_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A valid page size at the limit is fine.
    assert!(c.query_logs(q(500, "", None)).await.is_ok());
}

#[tokio::test]
async fn memory_bad_requests_are_invalid_argument_naming_the_field() {
    bad_requests_name_their_field(Kind::Memory).await;
}

#[tokio::test]
async fn redis_bad_requests_are_invalid_argument_naming_the_field() {
    bad_requests_name_their_field(Kind::Redis).await;
}
