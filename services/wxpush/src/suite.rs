//! The whole suite in one process: the four services on one gRPC port, on
//! in-memory backends, and (optionally) an embedded WeChat sandbox. This is
//! `wxpush dev`, and what the integration tests start.
//!
//! Each service is built exactly as its own binary builds it (`build`), and
//! the four components run in one process on one port. Delivery reaches
//! template and token over real gRPC on that port, just as it would across
//! pods; its events reach logquery over an in-process bus. With
//! `callbacks_listen`, the callback endpoint runs too and the sandbox pushes
//! WeChat's receipts to it over HTTP, as WeChat would; they reach logquery
//! over an in-process stream.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use wechat_sandbox::{Sandbox, SandboxConfig};
use wxpush_delivery::DeliveryConfig;
use wxpush_events::MemoryBus;
use wxpush_events::callbacks::MemoryPushes;
use wxpush_logquery::{InProcess, LogQueryConfig};
use wxpush_metrics::SharedRegistry;
use wxpush_proto::v1::Template;
use wxpush_server::config::GrpcEndpoint;
use wxpush_server::process::{self, Listeners, Running};
use wxpush_server::shutdown::Shutdown;
use wxpush_template::TemplateConfig;
use wxpush_token::{AppSpec, RefreshSettings, TokenConfig};
use wxpush_wechat::ClientSettings;

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
    /// Log records older than this are dropped.
    pub log_retention_secs: u64,
    /// Retry, breaker, rate-limit and idempotency settings (memory backend).
    pub delivery: DeliveryConfig,
    /// One admin HTTP port (`/metrics`, `/healthz`) with every registry of
    /// the suite; `None`: no admin port.
    pub admin_listen: Option<SocketAddr>,
    /// WeChat's pushes: the callback endpoint listens here and the embedded
    /// sandbox's apps push their receipts and subscription events to it
    /// (`wxpush dev`); `None`, or no sandbox: no callback endpoint.
    pub callbacks_listen: Option<SocketAddr>,
    /// Who may call the suite's port; `wxpush dev`'s default is
    /// `mode: off` (with a warning at start). With `mode: on` the suite's
    /// own hops present `call_as`.
    pub auth: wxpush_auth::AuthSettings,
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
            log_retention_secs: LogQueryConfig::default().retention_secs,
            delivery: DeliveryConfig::default(),
            admin_listen: None,
            callbacks_listen: None,
            auth: wxpush_auth::AuthSettings::off(),
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
    /// Where WeChat's pushes are received (`/wechat/callback/{app_id}`),
    /// when asked for.
    pub callbacks_addr: Option<SocketAddr>,
    /// The apps pushing there, with the Token and EncodingAESKey made for
    /// them at start.
    pub callback_apps: Vec<wxpush_callback::config::CallbackApp>,
    drain: watch::Sender<bool>,
    running: Running,
}

impl Suite {
    /// Starts everything and returns once the gRPC port is bound.
    pub async fn start(mut opts: SuiteOptions) -> anyhow::Result<Self> {
        // The callback endpoint is bound first: the sandbox is told where
        // to push.
        let callbacks = match opts.callbacks_listen.filter(|_| opts.sandbox.is_some()) {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let url = format!("http://{}/wechat/callback", listener.local_addr()?);
                let mut wiring = crate::callbacks::Wiring::new(&url);
                if let Some(s) = &mut opts.sandbox {
                    wiring.point(&mut s.config);
                }
                Some((listener, wiring))
            }
            None => None,
        };
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
        let listeners = Listeners::bind(opts.grpc_listen, opts.admin_listen).await?;
        // Every service reaches the others on this same port, over real
        // gRPC, as it would across pods.
        let this = GrpcEndpoint::parse(&format!("http://{}", listeners.grpc_addr()))
            .map_err(anyhow::Error::msg)?;
        let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let token = wxpush_token::build(TokenConfig {
            listen: any,
            admin_listen: any,
            apps: opts.apps,
            refresh: opts.refresh,
            wechat: opts.wechat.clone(),
            // The sandbox's demo apps carry their secrets inline.
            allow_inline_secrets: true,
            auth: opts.auth.clone(),
            ..Default::default()
        })
        .await?;
        let template = wxpush_template::build_seeded(
            TemplateConfig {
                token_endpoint: this.clone(),
                wechat: opts.wechat.clone(),
                auth: opts.auth.clone(),
                ..Default::default()
            },
            opts.templates,
        )
        .await?;
        // Delivery's events reach logquery over an in-process bus; WeChat's
        // pushes reach the log and delivery over an in-process stream.
        let bus = MemoryBus::new(10_000);
        let pushes = MemoryPushes::new(wxpush_callback::handoff::MEMORY_KEEPS);
        let delivery = wxpush_delivery::build_with_streams(
            DeliveryConfig {
                template_endpoint: this.clone(),
                token_endpoint: this,
                wechat: opts.wechat,
                auth: opts.auth.clone(),
                ..opts.delivery
            },
            wxpush_delivery::InProcess {
                events: Some(Arc::new(bus.clone())),
                pushes: callbacks.is_some().then(|| Arc::new(pushes.reader()) as _),
            },
        )
        .await?;
        let logquery = wxpush_logquery::build_with_sources(
            LogQueryConfig {
                max_records: opts.max_log_records,
                retention_secs: opts.log_retention_secs,
                ..Default::default()
            },
            InProcess {
                events: Some(Arc::new(bus.source())),
                pushes: callbacks.is_some().then(|| Arc::new(pushes.reader()) as _),
            },
        )
        .await?;
        let mut components = vec![token, template, delivery, logquery];
        let (mut callbacks_addr, mut callback_apps) = (None, Vec::new());
        if let Some((listener, wiring)) = callbacks {
            callbacks_addr = Some(listener.local_addr()?);
            callback_apps = wiring.config().apps;
            components.push(wxpush_callback::build_on(
                wiring.config(),
                pushes,
                listener,
            )?);
        }
        let (drain, signal) = Shutdown::manual();
        let gate = wxpush_server::rpc::GateLayer::from_settings(&opts.auth)?;
        let running = process::start(components, listeners, gate, signal).await?;
        Ok(Self {
            grpc_addr: running.grpc_addr,
            admin_addr: running.admin_addr,
            metrics: running.metrics.clone(),
            sandbox,
            callbacks_addr,
            callback_apps,
            drain,
            running,
        })
    }

    /// `http://host:port` of the gRPC server, for clients.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Stops the suite the way SIGTERM stops a process: the server drains,
    /// workers finish what they hold, tasks end; then the sandbox.
    pub async fn shutdown(self) {
        self.drain.send_replace(true);
        if let Err(e) = self.running.wait().await {
            tracing::warn!(error = %e, "suite stopped with an error");
        }
        if let Some(sb) = self.sandbox {
            sb.shutdown().await;
        }
    }
}
