//! The whole suite in one process: the four services on one gRPC port, on
//! in-memory backends, and (optionally) an embedded WeChat sandbox. This is
//! `wxpush dev`, and what the integration tests start.
//!
//! Delivery reaches template and token over real gRPC on the same port, just
//! as it would across pods; its events reach logquery over an in-process bus.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wechat_sandbox::{Sandbox, SandboxConfig};
use wxpush_delivery::pipeline::lazy_channel;
use wxpush_delivery::{DeliveryConfig, DeliveryGrpc, Pipeline};
use wxpush_events::MemoryBus;
use wxpush_logquery::{LogQueryGrpc, LogStore, MemoryLogStore, Tail};
use wxpush_metrics::SharedRegistry;
use wxpush_proto::v1::Template;
use wxpush_proto::v1::{
    delivery_service_server, log_query_service_server, template_service_server,
    token_service_server,
};
use wxpush_template::{TemplateGrpc, TemplateRegistry};
use wxpush_token::store::MemoryTokenStore;
use wxpush_token::{AppSpec, RefreshSettings, TokenCache, TokenGrpc};
use wxpush_wechat::{ClientSettings, WechatClient};

/// An embedded sandbox: its config and where to listen.
#[derive(Debug, Clone)]
pub struct EmbeddedSandbox {
    pub config: SandboxConfig,
    pub api_listen: SocketAddr,
    pub admin_listen: SocketAddr,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The one gRPC port serving all four services (port 0: any free port).
    pub grpc_listen: SocketAddr,
    /// Start a sandbox and point the suite's WeChat client at it.
    pub sandbox: Option<EmbeddedSandbox>,
    /// WeChat client settings; `base_url` is replaced by the embedded
    /// sandbox's when there is one.
    pub wechat: ClientSettings,
    /// Apps for the token service; empty with a sandbox means its demo apps.
    pub apps: Vec<AppSpec>,
    pub templates: Vec<Template>,
    /// Token refresh settings (the token store is in memory).
    pub refresh: RefreshSettings,
    pub max_log_records: usize,
    /// Retry, breaker, rate-limit and idempotency settings (memory backend).
    pub delivery: DeliveryConfig,
    /// One admin HTTP port (`/metrics`, `/healthz`) with every registry of
    /// the suite; `None`: no admin port.
    pub admin_listen: Option<SocketAddr>,
}

impl SuiteOptions {
    /// The demo suite: sandbox with demo apps and users, demo templates.
    pub fn demo(
        grpc_listen: SocketAddr,
        sandbox_api: SocketAddr,
        sandbox_admin: SocketAddr,
    ) -> Self {
        Self {
            grpc_listen,
            sandbox: Some(EmbeddedSandbox {
                config: wechat_sandbox::demo_config(),
                api_listen: sandbox_api,
                admin_listen: sandbox_admin,
            }),
            wechat: ClientSettings::default(),
            apps: Vec::new(),
            templates: crate::demo::templates(),
            refresh: RefreshSettings::default(),
            max_log_records: 100_000,
            delivery: DeliveryConfig::default(),
            admin_listen: None,
        }
    }

    /// The demo suite on free loopback ports (tests).
    pub fn demo_on_free_ports() -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        Self::demo(any, any, any)
    }
}

/// A running suite.
pub struct Suite {
    /// Where the four services answer.
    pub grpc_addr: SocketAddr,
    /// Where `/metrics` and `/healthz` answer, when asked for.
    pub admin_addr: Option<SocketAddr>,
    /// Every metric family of the suite (what the admin port serves).
    pub metrics: SharedRegistry,
    /// The embedded sandbox, if any.
    pub sandbox: Option<Sandbox>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    ingest: JoinHandle<()>,
    /// The live tail, closed first on shutdown.
    tail: Tail,
    refresher: JoinHandle<()>,
    admin: Option<JoinHandle<()>>,
    workers: wxpush_delivery::worker::Workers,
}

impl Suite {
    /// Starts everything and returns once the gRPC port is bound.
    pub async fn start(mut opts: SuiteOptions) -> anyhow::Result<Self> {
        let sandbox = match &opts.sandbox {
            Some(s) => Some(Sandbox::start(s.config.clone(), s.api_listen, s.admin_listen).await?),
            None => None,
        };
        if let Some(sb) = &sandbox {
            opts.wechat.base_url = sb.api_url();
            if opts.apps.is_empty() {
                opts.apps =
                    crate::demo::apps(&opts.sandbox.as_ref().expect("sandbox options").config);
            }
        }
        let listener = wxpush_server::grpc::bind(opts.grpc_listen).await?;
        let grpc_addr = listener.local_addr()?;
        let self_url = format!("http://{grpc_addr}");

        let wechat = WechatClient::new(&opts.wechat)?;
        let wechat_metrics = wechat.metrics().clone();
        let tokens = TokenCache::new(
            &opts.apps,
            wechat.clone(),
            Arc::new(MemoryTokenStore::new()),
            opts.refresh.clone(),
        )
        .map_err(anyhow::Error::msg)?;
        let refresher = tokens.spawn_refresher();
        let registry = TemplateRegistry::new();
        registry
            .seed(opts.templates.clone())
            .await
            .map_err(|e| anyhow::anyhow!("demo templates: {e}"))?;
        // SyncTemplates gets its tokens from the token service on this same
        // port, over real gRPC, as it would across pods.
        let template_grpc =
            TemplateGrpc::new(registry).with_sync(lazy_channel(&self_url)?, wechat.clone());
        let bus = MemoryBus::new(10_000);
        let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new(
            opts.max_log_records,
            wxpush_logquery::LogQueryConfig::default().retention(),
        ));
        let tail = Tail::default();
        let ingest =
            wxpush_logquery::ingest::spawn(Arc::new(bus.source()), store.clone(), tail.clone());
        let pipeline = Pipeline::new(
            lazy_channel(&self_url)?,
            lazy_channel(&self_url)?,
            wechat,
            Arc::new(bus),
            &opts.delivery,
        );

        let metrics = SharedRegistry::new();
        metrics.register_with(|r| {
            wxpush_server::rpc::RpcMetrics::global().register(r);
            wechat_metrics.register(r);
            tokens.metrics().register(r);
            pipeline.breakers().metrics().register(r);
            pipeline.queue_metrics().register(r);
            wxpush_logquery::metrics::LogQueryMetrics::global().register(r);
        });
        let workers = pipeline.spawn_workers();
        let routes = tonic::service::Routes::new(TokenGrpc::new(tokens).into_server())
            .add_service(template_grpc.into_server())
            .add_service(DeliveryGrpc::new(pipeline).into_server())
            .add_service(LogQueryGrpc::new(store, tail.clone()).into_server());
        let (stop, stopped) = oneshot::channel::<()>();
        let (admin_addr, admin) = match opts.admin_listen {
            Some(addr) => {
                let (addr, task) = serve_admin(addr, metrics.clone()).await?;
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        let server = tokio::spawn(wxpush_server::grpc::serve(
            routes,
            &[
                token_service_server::SERVICE_NAME,
                template_service_server::SERVICE_NAME,
                delivery_service_server::SERVICE_NAME,
                log_query_service_server::SERVICE_NAME,
            ],
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            grpc_addr,
            admin_addr,
            metrics,
            admin,
            sandbox,
            stop,
            server,
            ingest,
            tail,
            refresher,
            workers,
        })
    }

    /// `http://host:port` of the gRPC server, for clients.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Stops the server (letting in-flight calls finish) and the sandbox.
    pub async fn shutdown(self) {
        self.workers.shutdown().await;
        // Open TailLogs streams end, so the server's drain does not wait on them.
        self.tail.close();
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.ingest.abort();
        self.refresher.abort();
        if let Some(admin) = self.admin {
            admin.abort();
        }
        if let Some(sb) = self.sandbox {
            sb.shutdown().await;
        }
    }
}

/// Binds the admin port and serves `/metrics` and `/healthz` until aborted.
async fn serve_admin(
    addr: SocketAddr,
    metrics: SharedRegistry,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = wxpush_server::grpc::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = wxpush_metrics::serve_admin(listener, metrics, std::future::pending()).await
        {
            tracing::error!(error = %e, "admin HTTP server failed");
        }
    });
    Ok((bound, task))
}
