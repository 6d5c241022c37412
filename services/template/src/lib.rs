//! The template service: callers send business variables (`order_id`,
//! `amount`), this service maps a business template key to an app's WeChat
//! template and turns the variables into the exact body WeChat accepts, or
//! says precisely why it would not.
//!
//! - [`spec`]: the templates file (YAML, e.g. a ConfigMap) and its checks.
//! - [`registry`]: the template store with optimistic concurrency.
//! - [`render`]: variable expansion, the WeChat body and the preview.
//! - [`error`]: [`error::TemplateError`] and its mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.TemplateService` gRPC API.

pub mod error;
pub mod registry;
pub mod render;
pub mod service;
pub mod spec;

pub use registry::TemplateRegistry;
pub use service::TemplateGrpc;

/// Template service configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct TemplateConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Templates file loaded at start-up (optional).
    pub templates_file: Option<std::path::PathBuf>,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50052".into(),
            templates_file: None,
        }
    }
}
