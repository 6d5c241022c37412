//! The template service: callers send business variables (`order_id`,
//! `amount`), this service maps a business template key to an app's WeChat
//! template and turns the variables into the exact body WeChat accepts, or
//! says precisely why it would not.
//!
//! - [`spec`]: the templates file (YAML, e.g. a ConfigMap) and its checks.
//! - [`registry`]: the template registry with optimistic concurrency, over a
//!   [`store`] backend (memory or Redis); [`recovery`]: last-known copies and
//!   the rebuild after the store lost its data.
//! - [`content`]: `{{name.DATA}}` placeholders of WeChat template content.
//! - [`rules`] and [`validate`]: WeChat's field rules, checked before sending.
//! - [`render`]: variable expansion, the WeChat body and the preview.
//! - [`sync`]: pulling an app's templates from WeChat.
//! - [`error`]: [`error::TemplateError`] and its mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.TemplateService` gRPC API.
//!
//! [`build`] puts them together as one component.

pub mod content;
pub mod error;
pub mod recovery;
pub mod registry;
pub mod render;
pub mod rules;
pub mod service;
pub mod spec;
pub mod store;
pub mod sync;
pub mod validate;

pub use registry::TemplateRegistry;
pub use service::TemplateGrpc;
pub use store::TemplateStore;

use std::net::SocketAddr;
use wxpush_proto::v1::Template;
use wxpush_server::component::Component;
use wxpush_server::config::{BackendSettings, GrpcEndpoint};
use wxpush_wechat::ClientSettings;

/// Template service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct TemplateConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP: `/metrics` (Prometheus), `/healthz`.
    pub admin_listen: SocketAddr,
    /// Who may call (`auth.mode`, the callers' credentials and grants)
    /// and what this service presents on its own calls to the suite.
    pub auth: wxpush_auth::AuthSettings,
    /// Templates file loaded at start-up (optional).
    pub templates_file: Option<std::path::PathBuf>,
    /// Where templates are kept: `memory` (one replica) or `redis` (shared,
    /// survives restarts).
    pub backend: BackendSettings,
    /// The token service, for SyncTemplates' access tokens.
    pub token_endpoint: GrpcEndpoint,
    /// WeChat (or the sandbox), for SyncTemplates' template lists.
    pub wechat: ClientSettings,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            auth: wxpush_auth::AuthSettings::default(),
            templates_file: None,
            backend: BackendSettings::default(),
            token_endpoint: GrpcEndpoint::parse("http://127.0.0.1:50051").expect("a valid default"),
            wechat: ClientSettings::default(),
        }
    }
}

wxpush_server::listen_on_fields!(TemplateConfig);

/// How often each replica checks whether the store lost its data.
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The template service from its config: the registry on its backend,
/// seeded from `templates_file` before serving (read and checked here, so
/// a missing or bad file fails the build and `--check-config`).
pub async fn build(config: TemplateConfig) -> anyhow::Result<Component> {
    let seed = match &config.templates_file {
        Some(path) => spec::load_file(path).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    build_seeded(config, seed).await
}

/// [`build`] with the templates to seed given (`wxpush dev`'s demo set).
pub async fn build_seeded(
    config: TemplateConfig,
    seed: Vec<Template>,
) -> anyhow::Result<Component> {
    let registry = TemplateRegistry::open(&config.backend).await?;
    let wechat = wxpush_wechat::WechatClient::new(&config.wechat)?;
    let token = wxpush_server::grpc::peer(&config.token_endpoint, &config.auth)
        .map_err(anyhow::Error::msg)?;
    let grpc = TemplateGrpc::new(registry.clone()).with_sync(token, wechat);
    let count = seed.len();
    let watched = registry.clone();
    let mut component = Component::new("wxpush-template").checks_redis(&config.backend);
    if config.backend.kind == wxpush_server::config::BackendKind::Postgres {
        // The schema before the seeding below; replicas take turns.
        let url = config
            .backend
            .postgres_url()
            .map_err(anyhow::Error::msg)?
            .to_string();
        component = component.on_start(async move {
            store::postgres::MIGRATIONS.apply_at(&url).await?;
            Ok(())
        });
    }
    Ok(component
        .on_start(async move {
            registry
                .seed(seed)
                .await
                .map_err(|e| anyhow::anyhow!("seeding templates: {e}"))?;
            tracing::info!(count, "templates seeded");
            Ok(())
        })
        // Every second: did the store lose its data (Redis restarted
        // empty)? Then rebuild it, without a restart of anything.
        .task(move |drain| async move {
            let stop = drain.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                }
                if let Err(e) = watched.recover_if_lost().await {
                    tracing::debug!(error = %e, "template store check failed; trying again");
                }
            }
        })
        .grpc(grpc.into_server())
        .shared_metrics("wechat", |r| {
            wxpush_wechat::WechatMetrics::global().register(r)
        }))
}
