//! The template service: callers send business variables (`order_id`,
//! `amount`), this service maps a business template key to an app's WeChat
//! template and turns the variables into the exact body WeChat accepts, or
//! says precisely why it would not.
//!
//! - [`spec`]: the templates file (YAML, e.g. a ConfigMap) and its checks.
//! - [`registry`]: the template registry with optimistic concurrency, over a
//!   [`store`] backend (memory or Redis).
//! - [`content`]: `{{name.DATA}}` placeholders of WeChat template content.
//! - [`rules`] and [`validate`]: WeChat's field rules, checked before sending.
//! - [`render`]: variable expansion, the WeChat body and the preview.
//! - [`sync`]: pulling an app's templates from WeChat.
//! - [`error`]: [`error::TemplateError`] and its mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.TemplateService` gRPC API.

pub mod content;
pub mod error;
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

use wxpush_server::config::BackendSettings;
use wxpush_wechat::ClientSettings;

/// Template service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct TemplateConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Admin HTTP: `/metrics` (Prometheus), `/healthz`.
    pub admin_listen: String,
    /// Templates file loaded at start-up (optional).
    pub templates_file: Option<std::path::PathBuf>,
    /// Where templates are kept: `memory` (one replica) or `redis` (shared,
    /// survives restarts).
    pub backend: BackendSettings,
    /// The token service, for SyncTemplates' access tokens.
    pub token_endpoint: String,
    /// WeChat (or the sandbox), for SyncTemplates' template lists.
    pub wechat: ClientSettings,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50052".into(),
            admin_listen: "0.0.0.0:9092".into(),
            templates_file: None,
            backend: BackendSettings::default(),
            token_endpoint: "http://127.0.0.1:50051".into(),
            wechat: ClientSettings::default(),
        }
    }
}
