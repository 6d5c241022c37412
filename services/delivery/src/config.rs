//! Delivery service configuration.

use serde::Deserialize;
use wxpush_wechat::ClientSettings;

/// The whole delivery service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// gRPC listen address.
    pub listen: String,
    /// The template service, e.g. `http://wxpush-template:50052`.
    pub template_endpoint: String,
    /// The token service, e.g. `http://wxpush-token:50051`.
    pub token_endpoint: String,
    pub wechat: ClientSettings,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50053".into(),
            template_endpoint: "http://127.0.0.1:50052".into(),
            token_endpoint: "http://127.0.0.1:50051".into(),
            wechat: ClientSettings::default(),
        }
    }
}
