//! Helpers shared by the suite's integration tests: start the demo suite on
//! free loopback ports and talk to it over real gRPC and HTTP.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use wechat_sandbox::{AdminClient, Fault, Outage};
use wxpush::{Suite, SuiteOptions};
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::*;

/// The sandbox path every template message send goes to.
pub const SEND_PATH: &str = "/cgi-bin/message/template/send";

/// Template sends answered with `errcode`, `times` times (`None`: always).
pub fn send_fault(errcode: i64, times: Option<u32>) -> Fault {
    Fault {
        path: SEND_PATH.into(),
        errcode: Some(errcode),
        times,
        ..Default::default()
    }
}

/// WeChat down for template sends (HTTP 503).
pub fn send_outage() -> Fault {
    Fault {
        path: SEND_PATH.into(),
        outage: Some(Outage::Http5xx { status: 503 }),
        ..Default::default()
    }
}

/// Every template send takes `ms` longer.
pub fn send_latency(ms: u64) -> Fault {
    Fault {
        path: SEND_PATH.into(),
        latency_ms: ms,
        ..Default::default()
    }
}

pub struct Harness {
    pub suite: Suite,
    pub channel: Channel,
    pub admin: AdminClient,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(SuiteOptions::demo_on_free_ports()).await
    }

    /// The demo suite with `wxpush dev`'s callback endpoint, the sandbox
    /// pushing WeChat's receipts and subscription events to it.
    pub async fn start_with_callbacks() -> Self {
        let mut opts = SuiteOptions::demo_on_free_ports();
        opts.callbacks_listen = Some("127.0.0.1:0".parse().unwrap());
        Self::start_with(opts).await
    }

    pub async fn start_with(opts: SuiteOptions) -> Self {
        assert!(opts.sandbox.is_some(), "start_without_sandbox");
        Self::start_without_sandbox(opts).await
    }

    /// The suite as `opts` say, its WeChat wherever they point (`admin`:
    /// the embedded sandbox's, else a client of nothing).
    pub async fn start_without_sandbox(opts: SuiteOptions) -> Self {
        let suite = Suite::start(opts).await.expect("suite starts");
        let channel = Channel::from_shared(suite.grpc_url())
            .unwrap()
            .connect()
            .await
            .expect("connects");
        let admin = AdminClient::new(
            suite
                .sandbox
                .as_ref()
                .map_or_else(|| "http://127.0.0.1:9".to_string(), |s| s.admin_url()),
        );
        Self {
            suite,
            channel,
            admin,
        }
    }

    /// Adds a fault to the sandbox.
    pub async fn inject(&self, fault: Fault) {
        self.admin.set_fault(&fault).await.expect("fault injected");
    }

    pub fn delivery(&self) -> DeliveryServiceClient<Channel> {
        DeliveryServiceClient::new(self.channel.clone())
    }

    /// A sync `Send` that must not fail as an RPC: its result.
    pub async fn send(&self, req: SendRequest) -> DeliveryResult {
        self.delivery()
            .send(req)
            .await
            .expect("Send")
            .into_inner()
            .result
            .expect("a Send answer carries its result")
    }

    /// A sync `Send` that must end SENT: its message id.
    pub async fn sent(&self, req: SendRequest) -> String {
        sent_via(&mut self.delivery(), req).await
    }

    /// A `SendAsync` that must be accepted.
    pub async fn send_async(&self, req: SendRequest) -> SendAsyncResponse {
        self.delivery()
            .send_async(SendAsyncRequest::from(req))
            .await
            .expect("SendAsync")
            .into_inner()
    }

    pub fn logs(&self) -> LogQueryServiceClient<Channel> {
        LogQueryServiceClient::new(self.channel.clone())
    }

    /// Polls QueryLogs until exactly one record matches (ingestion is async).
    pub async fn find_one(&self, filter: LogFilter) -> LogRecord {
        for _ in 0..100 {
            let page = self
                .logs()
                .query_logs(QueryLogsRequest {
                    filter: Some(filter.clone()),
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
                .expect("QueryLogs")
                .into_inner();
            match page.records.len() {
                0 => tokio::time::sleep(Duration::from_millis(50)).await,
                1 => return page.records.into_iter().next().unwrap(),
                n => panic!("expected one record for {filter:?}, found {n}"),
            }
        }
        panic!("no record for {filter:?} within 5 s")
    }
}

impl Harness {
    /// The template service's client.
    pub fn templates(&self) -> TemplateServiceClient<Channel> {
        TemplateServiceClient::new(self.channel.clone())
    }

    /// A stored template.
    pub async fn template(&self, key: &str) -> Template {
        self.templates()
            .get_template(GetTemplateRequest {
                key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .template
            .unwrap()
    }

    /// Template `from` created again as `to` after `edit`; the answer.
    pub async fn copy_template(
        &self,
        from: &str,
        to: &str,
        edit: impl FnOnce(&mut Template),
    ) -> Result<Template, tonic::Status> {
        let mut t = self.template(from).await;
        t.key = to.into();
        t.version = 0;
        edit(&mut t);
        let stored = self
            .templates()
            .upsert_template(UpsertTemplateRequest {
                template: Some(t),
                expected_version: 0,
            })
            .await?;
        Ok(stored.into_inner().template.unwrap())
    }
}

impl Harness {
    /// Polls GetMessage until the message's status is final (SENT, FAILED,
    /// DEAD) or `timeout` passes; returns the last status seen.
    pub async fn settled(&self, message_id: &str, timeout: Duration) -> DeliveryResult {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let r = self
                .delivery()
                .get_message(GetMessageRequest {
                    message_id: message_id.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .result
                .expect("a GetMessage answer carries its result");
            let done = [
                DeliveryStatus::Sent,
                DeliveryStatus::Failed,
                DeliveryStatus::Dead,
            ]
            .iter()
            .any(|s| *s as i32 == r.status);
            if done || std::time::Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A valid order_shipped request to `openid`.
pub fn shipped_to(openid: &str) -> SendRequest {
    SendRequest {
        template_key: "order_shipped".into(),
        openid: openid.into(),
        variables: vars(&[
            ("order_id", "SF1234567"),
            ("ship_time", "2026-11-23 10:00"),
            ("carrier", "顺丰速运"),
        ]),
        ..Default::default()
    }
}

/// A valid order_status (subscribe) request to `openid`.
pub fn status_to(openid: &str) -> SendRequest {
    SendRequest {
        template_key: "order_status".into(),
        openid: openid.into(),
        variables: vars(&[
            ("order_id", "SF1234567"),
            ("status", "已发货"),
            ("amount", "128.50"),
        ]),
        ..Default::default()
    }
}

/// The record of `message_id` in the log at `logs` once its status is
/// `want` (30 s at most: the production log ingests in batches).
pub async fn logged_as(
    logs: &mut LogQueryServiceClient<Channel>,
    message_id: &str,
    want: DeliveryStatus,
) -> LogRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = logs
            .query_logs(QueryLogsRequest {
                filter: Some(LogFilter {
                    message_id: message_id.into(),
                    ..Default::default()
                }),
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let last = page.records.into_iter().next();
        if let Some(r) = &last
            && r.status == want as i32
        {
            return last.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{message_id} is {:?} in the log, not {want:?}",
            last.map(|r| r.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves `component` (a delivery service built by the test) on a free
/// loopback port, callers unchecked, until the test ends; its client.
pub async fn serve_delivery(
    component: wxpush_server::component::Component,
) -> DeliveryServiceClient<Channel> {
    let listeners = wxpush_server::process::Listeners::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    // Its trigger dropped, the drain signal never fires.
    let (_, never) = wxpush_server::shutdown::Shutdown::manual();
    let running = wxpush_server::process::start(
        vec![component],
        listeners,
        wxpush_server::rpc::GateLayer::open(),
        never,
    )
    .await
    .unwrap();
    // Dropping `running` leaves its tasks running.
    DeliveryServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .unwrap()
}

/// A sync `Send` through `delivery` (any deployment) that must end SENT:
/// its message id.
pub async fn sent_via(delivery: &mut DeliveryServiceClient<Channel>, req: SendRequest) -> String {
    let r = delivery
        .send(req)
        .await
        .expect("Send")
        .into_inner()
        .result
        .expect("a Send answer carries its result");
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    r.message_id
}
