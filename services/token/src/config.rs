//! Token service configuration.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use wxpush_server::config::{BackendSettings, Secret, SecretSource};
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
    /// The one source of the secret, without reading it (`--check-config`).
    pub fn secret_source(&self) -> Result<SecretSource<'_>, String> {
        SecretSource::one_of(
            &format!("app {}", self.app_id),
            "secret",
            self.secret.as_ref(),
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        )
    }

    /// Reads the secret from its source. The error names the source, never
    /// the value.
    pub fn resolve_secret(&self) -> Result<Secret, String> {
        self.secret_source()?.read(&format!("app {}", self.app_id))
    }
}

/// How and when tokens are refreshed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RefreshSettings {
    /// The background refresher fetches a new token when the cached one has
    /// less than this left, so callers never wait for a refresh.
    pub margin_secs: u64,
    /// A caller is handed a cached token only with at least this left;
    /// otherwise it waits for a fetch (cold start, after an outage).
    pub min_validity_secs: u64,
    /// How often the background refresher looks at every app (and picks up
    /// tokens other replicas fetched).
    pub check_interval_ms: u64,
    /// The cross-replica refresh lock expires after this, should its holder die.
    pub lock_ttl_ms: u64,
    /// How long a caller waits for another replica's fetch to land.
    pub lock_wait_ms: u64,
    /// Most WeChat token fetches per app per Beijing day; past it, refuse
    /// (RESOURCE_EXHAUSTED) so a bug cannot burn WeChat's daily quota.
    pub daily_fetch_budget: u32,
    /// Attempts per fetch on transient errors (-1, network, HTTP 5xx).
    pub fetch_attempts: u32,
    /// First backoff between attempts; doubles each time.
    pub retry_backoff_ms: u64,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            margin_secs: 300,
            min_validity_secs: 30,
            check_interval_ms: 1_000,
            lock_ttl_ms: 10_000,
            lock_wait_ms: 5_000,
            daily_fetch_budget: 500,
            fetch_attempts: 3,
            retry_backoff_ms: 200,
        }
    }
}

/// The whole token service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP address: `/metrics` (Prometheus) and `/healthz`.
    pub admin_listen: SocketAddr,
    /// Who may call (`auth.mode`, the callers' credentials and grants)
    /// and what this service presents on its own calls to the suite.
    pub auth: wxpush_auth::AuthSettings,
    pub apps: Vec<AppSpec>,
    pub refresh: RefreshSettings,
    /// `memory` (one replica) or `redis` (shared by replicas).
    pub backend: BackendSettings,
    pub wechat: ClientSettings,
    /// Whether an app may carry its secret inline (`secret:`). Never from a
    /// config file or the environment: only `wxpush dev` sets it, for the
    /// sandbox's demo apps, so a production config cannot leak a secret
    /// into a ConfigMap.
    #[serde(skip)]
    pub allow_inline_secrets: bool,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            auth: wxpush_auth::AuthSettings::default(),
            apps: Vec::new(),
            refresh: RefreshSettings::default(),
            backend: BackendSettings::default(),
            wechat: ClientSettings::default(),
            allow_inline_secrets: false,
        }
    }
}

wxpush_server::listen_on_fields!(TokenConfig);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AppSpec {
        AppSpec {
            app_id: "wx1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn secret_comes_from_exactly_one_source_and_errors_never_show_it() {
        let path = std::env::temp_dir().join(format!("wxpush-secret-{}", std::process::id()));
        std::fs::write(&path, "from-file-secret\n").unwrap();
        let from_file = AppSpec {
            secret_file: Some(path.clone()),
            ..spec()
        };
        assert_eq!(
            from_file.resolve_secret().unwrap().expose(),
            "from-file-secret"
        );

        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("WXPUSH_TEST_SECRET_7F2", " from-env ") };
        let from_env = AppSpec {
            secret_env: Some("WXPUSH_TEST_SECRET_7F2".into()),
            ..spec()
        };
        assert_eq!(from_env.resolve_secret().unwrap().expose(), "from-env");

        let missing = AppSpec {
            secret_env: Some("WXPUSH_TEST_SECRET_UNSET_9A".into()),
            ..spec()
        };
        assert!(
            missing
                .resolve_secret()
                .unwrap_err()
                .contains("WXPUSH_TEST_SECRET_UNSET_9A")
        );
        let both = AppSpec {
            secret: Some(Secret::new("inline-secret")),
            secret_file: Some(path.clone()),
            ..spec()
        };
        let err = both.resolve_secret().unwrap_err();
        assert!(
            err.contains("only one") && !err.contains("inline-secret"),
            "{err}"
        );
        assert!(spec().resolve_secret().is_err());
        std::fs::remove_file(path).unwrap();
    }
}
