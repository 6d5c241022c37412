//! Token service configuration.

use serde::Deserialize;
use std::path::PathBuf;
use wxpush_server::config::Secret;
use wxpush_wechat::ClientSettings;

/// Which WeChat token API to use for an app.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// `/cgi-bin/stable_token`: safe to call from several places (default).
    #[default]
    StableToken,
    /// `/cgi-bin/token`: every call issues a new token.
    Token,
}

impl TokenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMode::StableToken => "stable_token",
            TokenMode::Token => "token",
        }
    }
}

/// The kind of app, as configured.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppKindConfig {
    #[default]
    OfficialAccount,
    MiniProgram,
}

/// One WeChat app. The secret comes from exactly one source; `secret_env`
/// and `secret_file` (a mounted Kubernetes Secret) are for production,
/// `secret` inline only for `wxpush dev`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AppSpec {
    pub app_id: String,
    pub kind: AppKindConfig,
    pub secret: Option<Secret>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub token_mode: TokenMode,
}

impl AppSpec {
    /// Reads the secret from its source. The error names the source, never
    /// the value.
    pub fn resolve_secret(&self) -> Result<Secret, String> {
        match (&self.secret, &self.secret_env, &self.secret_file) {
            (Some(s), None, None) => Ok(s.clone()),
            (None, Some(var), None) => std::env::var(var)
                .map(|v| Secret::new(v.trim()))
                .map_err(|_| format!("app {}: environment variable {var} is not set", self.app_id)),
            (None, None, Some(path)) => std::fs::read_to_string(path)
                .map(|v| Secret::new(v.trim()))
                .map_err(|e| {
                    format!(
                        "app {}: cannot read secret file {}: {e}",
                        self.app_id,
                        path.display()
                    )
                }),
            (None, None, None) => Err(format!(
                "app {}: set one of secret_env, secret_file or secret",
                self.app_id
            )),
            _ => Err(format!(
                "app {}: set only one of secret_env, secret_file or secret",
                self.app_id
            )),
        }
    }
}

/// The whole token service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// gRPC listen address.
    pub listen: String,
    pub apps: Vec<AppSpec>,
    /// Fetch a new token when the cached one has less than this left.
    pub refresh_margin_secs: u64,
    pub wechat: ClientSettings,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50051".into(),
            apps: Vec::new(),
            refresh_margin_secs: 300,
            wechat: ClientSettings::default(),
        }
    }
}
