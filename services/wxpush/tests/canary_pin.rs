//! A request pinned to the canary (`x-wxpush-canary`) stays pinned on every
//! hop: the delivery service forwards the header, and its caller's deadline,
//! on the calls it makes to the template and token services, so the mesh
//! (the chart's VirtualServices, checked by scripts/check-chart.py) routes
//! them to canary pods too. The template and token services here are
//! recorders in front of the suite's real ones: they note each call's
//! headers and forward it.

mod common;

use common::{Harness, shipped_to};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::template_service_server::{TemplateService, TemplateServiceServer};
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::token_service_server::{TokenService, TokenServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::rpc::propagation::CANARY_HEADER;

/// One call the recorder saw: the method, its canary header and deadline.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    canary: Option<String>,
    timeout: Option<Duration>,
}

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    suite: Channel,
}

impl Recorder {
    fn note<T>(&self, method: &'static str, request: &Request<T>) {
        let canary = request
            .metadata()
            .get(CANARY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let timeout = wxpush_server::deadline::grpc_timeout(request.metadata());
        self.seen.lock().unwrap().push(Seen {
            method,
            canary,
            timeout,
        });
    }
}

fn not_recorded<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not used by a Send"))
}

#[tonic::async_trait]
impl TemplateService for Recorder {
    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<GetTemplateResponse>, Status> {
        self.note("GetTemplate", &request);
        TemplateServiceClient::new(self.suite.clone())
            .get_template(request.into_inner())
            .await
    }
    async fn render_template(
        &self,
        request: Request<RenderTemplateRequest>,
    ) -> Result<Response<RenderTemplateResponse>, Status> {
        self.note("RenderTemplate", &request);
        TemplateServiceClient::new(self.suite.clone())
            .render_template(request.into_inner())
            .await
    }
    async fn upsert_template(
        &self,
        _: Request<UpsertTemplateRequest>,
    ) -> Result<Response<UpsertTemplateResponse>, Status> {
        not_recorded()
    }
    async fn list_templates(
        &self,
        _: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        not_recorded()
    }
    async fn delete_template(
        &self,
        _: Request<DeleteTemplateRequest>,
    ) -> Result<Response<DeleteTemplateResponse>, Status> {
        not_recorded()
    }
    async fn list_template_revisions(
        &self,
        _: Request<ListTemplateRevisionsRequest>,
    ) -> Result<Response<ListTemplateRevisionsResponse>, Status> {
        not_recorded()
    }
    async fn sync_templates(
        &self,
        _: Request<SyncTemplatesRequest>,
    ) -> Result<Response<SyncTemplatesResponse>, Status> {
        not_recorded()
    }
}

#[tonic::async_trait]
impl TokenService for Recorder {
    async fn get_access_token(
        &self,
        request: Request<GetAccessTokenRequest>,
    ) -> Result<Response<GetAccessTokenResponse>, Status> {
        self.note("GetAccessToken", &request);
        TokenServiceClient::new(self.suite.clone())
            .get_access_token(request.into_inner())
            .await
    }
    async fn invalidate_access_token(
        &self,
        _: Request<InvalidateAccessTokenRequest>,
    ) -> Result<Response<InvalidateAccessTokenResponse>, Status> {
        not_recorded()
    }
    async fn get_token_status(
        &self,
        _: Request<GetTokenStatusRequest>,
    ) -> Result<Response<GetTokenStatusResponse>, Status> {
        not_recorded()
    }
    async fn list_apps(
        &self,
        _: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        not_recorded()
    }
}

/// A recorder in front of the suite, and a delivery service (its own
/// process-like server, fresh caches) whose template and token endpoints
/// are the recorder.
async fn delivery_behind_recorder(h: &Harness) -> (Recorder, DeliveryServiceClient<Channel>) {
    let recorder = Recorder {
        seen: Arc::default(),
        suite: Channel::from_shared(h.suite.grpc_url())
            .unwrap()
            .connect_lazy(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = format!("http://{}", listener.local_addr().unwrap());
    let serving = tonic::transport::Server::builder()
        .add_service(TemplateServiceServer::new(recorder.clone()))
        .add_service(TokenServiceServer::new(recorder.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(serving);

    let mut config = wxpush_delivery::DeliveryConfig::default();
    config.wechat.base_url = h.suite.sandbox.as_ref().unwrap().api_url();
    let endpoint = wxpush_server::config::GrpcEndpoint::parse(&at).unwrap();
    config.template_endpoint = endpoint.clone();
    config.token_endpoint = endpoint;
    let component = wxpush_delivery::build(config).await.unwrap();
    let client = common::serve_delivery(component).await;
    (recorder, client)
}

#[tokio::test]
async fn a_pinned_send_pins_its_template_and_token_calls() {
    let h = Harness::start().await;
    let (recorder, mut delivery) = delivery_behind_recorder(&h).await;
    let mut request = Request::new(shipped_to("o_demo_follower"));
    request
        .metadata_mut()
        .insert(CANARY_HEADER, "always".parse().unwrap());
    request.set_timeout(Duration::from_secs(5));
    let sent = delivery
        .send(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(sent.status, DeliveryStatus::Sent as i32, "{sent:?}");

    let seen = recorder.seen.lock().unwrap().clone();
    let methods: Vec<_> = seen.iter().map(|s| s.method).collect();
    assert!(methods.contains(&"GetTemplate"), "{seen:?}");
    assert!(methods.contains(&"GetAccessToken"), "{seen:?}");
    for call in &seen {
        assert_eq!(call.canary.as_deref(), Some("always"), "{call:?}");
        let timeout = call.timeout.expect("the caller's deadline travels");
        assert!(timeout <= Duration::from_secs(5), "{call:?}");
    }
}

#[tokio::test]
async fn an_unpinned_send_is_not_pinned_downstream() {
    let h = Harness::start().await;
    let (recorder, mut delivery) = delivery_behind_recorder(&h).await;
    let sent = delivery
        .send(shipped_to("o_demo_follower"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(sent.status, DeliveryStatus::Sent as i32);
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.canary.is_none()), "{seen:?}");
}
