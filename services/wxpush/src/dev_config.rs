//! `wxpush dev --config FILE`: your own apps, templates and settings for
//! the suite in one process, with the embedded sandbox or against WeChat
//! itself (a test account's appID and appsecret, or another imitation).
//!
//! Loaded like every service's config (`WXPUSH_DEV__KEY=value` overrides
//! any setting); a key no setting has is refused, named by its path. Every
//! setting `wxpush dev` has is here:
//!
//! ```yaml
//! sandbox:
//!   enabled: false            # true (default): the embedded sandbox is WeChat
//!   config_file: world.yaml   # its apps and users (default: the demo world)
//! wechat:
//!   base_url: https://api.weixin.qq.com
//!   timeout_ms: 5000
//! apps:                       # default with the sandbox: its apps
//!   - app_id: wx1234567890abcdef
//!     kind: official_account
//!     secret_env: WECHAT_TEST_SECRET   # or secret_file
//! templates_file: my-templates.yaml   # default: the demo templates
//! token:
//!   refresh: { margin_secs: 600 }
//! delivery:                   # retry, breaker, rate_limit, queue, idempotency
//!   rate_limit: { per_second: 5, burst: 5 }
//! logquery:
//!   max_records: 100000
//!   retention_secs: 604800
//! ```

use crate::suite::{EmbeddedSandbox, SuiteOptions};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use wechat_sandbox::SandboxConfig;
use wxpush_delivery::config::{BreakerSettings, QueueSettings, RateLimitSettings, RetrySettings};
use wxpush_token::{AppSpec, RefreshSettings};
use wxpush_wechat::ClientSettings;

/// The environment prefix of overrides (`WXPUSH_DEV__DELIVERY__RATE_LIMIT__PER_SECOND=5`).
pub const ENV_PREFIX: &str = "WXPUSH_DEV";

/// What `wxpush dev --config` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DevConfig {
    pub sandbox: SandboxSettings,
    pub wechat: ClientSettings,
    pub apps: Vec<AppSpec>,
    pub templates_file: Option<PathBuf>,
    pub token: TokenSettings,
    pub delivery: DeliverySettings,
    pub logquery: LogQuerySettings,
    /// Who may call the suite (`auth.mode: off` unless set here; see the
    /// README's "Callers and grants").
    pub auth: wxpush_auth::AuthSettings,
}

impl Default for DevConfig {
    /// Every setting as `wxpush dev` runs without a config: callers not
    /// checked.
    fn default() -> Self {
        Self {
            sandbox: SandboxSettings::default(),
            wechat: ClientSettings::default(),
            apps: Vec::new(),
            templates_file: None,
            token: TokenSettings::default(),
            delivery: DeliverySettings::default(),
            logquery: LogQuerySettings::default(),
            auth: wxpush_auth::AuthSettings::off(),
        }
    }
}

/// The embedded sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SandboxSettings {
    pub enabled: bool,
    /// Its world (apps, users, templates, token rules) as YAML.
    pub config_file: Option<PathBuf>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            config_file: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    pub refresh: RefreshSettings,
}

/// The delivery service's settings that are not addresses or backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeliverySettings {
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    pub rate_limit: RateLimitSettings,
    pub queue: QueueSettings,
    pub idempotency_window_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let d = wxpush_delivery::DeliveryConfig::default();
        Self {
            retry: d.retry,
            breaker: d.breaker,
            rate_limit: d.rate_limit,
            queue: d.queue,
            idempotency_window_secs: d.idempotency_window_secs,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogQuerySettings {
    pub max_records: usize,
    pub retention_secs: u64,
}

impl Default for LogQuerySettings {
    fn default() -> Self {
        let l = wxpush_logquery::LogQueryConfig::default();
        Self {
            max_records: l.max_records,
            retention_secs: l.retention_secs,
        }
    }
}

impl DevConfig {
    /// Reads `path` (then `WXPUSH_DEV__*` overrides); a typo is refused.
    /// Files it names are relative to its directory.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut config: Self = wxpush_server::config::load(Some(path), ENV_PREFIX)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for file in [&mut config.templates_file, &mut config.sandbox.config_file]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(config)
    }

    /// The suite's options: `opts` (addresses, the demo) with these settings.
    /// Files it names are read now, so a missing one fails the start.
    pub fn apply(self, mut opts: SuiteOptions) -> anyhow::Result<SuiteOptions> {
        opts.sandbox = match (self.sandbox.enabled, opts.sandbox.take()) {
            (false, _) => None,
            (true, Some(mut s)) => {
                if let Some(file) = &self.sandbox.config_file {
                    s.config = SandboxConfig::from_yaml_file(file)?;
                }
                Some(s)
            }
            (true, None) => Some(EmbeddedSandbox {
                config: match &self.sandbox.config_file {
                    Some(file) => SandboxConfig::from_yaml_file(file)?,
                    None => wechat_sandbox::demo_config(),
                },
                api_listen: "127.0.0.1:0".parse()?,
                admin_listen: "127.0.0.1:0".parse()?,
            }),
        };
        if opts.sandbox.is_none() && self.apps.is_empty() {
            anyhow::bail!(
                "apps: without the sandbox, name your apps (app_id, kind, secret_env or secret_file)"
            );
        }
        opts.wechat = self.wechat;
        opts.apps = self.apps;
        if let Some(file) = &self.templates_file {
            opts.templates = wxpush_template::spec::load_file(file).map_err(anyhow::Error::msg)?;
        }
        opts.refresh = self.token.refresh;
        let d = self.delivery;
        opts.delivery = wxpush_delivery::DeliveryConfig {
            retry: d.retry,
            breaker: d.breaker,
            rate_limit: d.rate_limit,
            queue: d.queue,
            idempotency_window_secs: d.idempotency_window_secs,
            ..opts.delivery
        };
        opts.auth = self.auth;
        opts.max_log_records = self.logquery.max_records;
        opts.log_retention_secs = self.logquery.retention_secs;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_auth::AuthMode;

    fn parse(yaml: &str) -> DevConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn callers_are_checked_only_where_the_config_says_so() {
        assert_eq!(DevConfig::default().auth.mode, AuthMode::Off);
        assert_eq!(parse("apps: []\n").auth.mode, AuthMode::Off);
        let on = parse("auth:\n  trust_mesh: true\n");
        assert_eq!(on.auth.mode, AuthMode::On, "an auth section checks callers");
        assert!(on.auth.trust_mesh);
    }
}
