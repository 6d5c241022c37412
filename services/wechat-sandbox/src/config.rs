//! Sandbox configuration: which apps exist, their templates and users, and the token rules.
//!
//! Everything here loads from YAML so `wxpush dev` and benchmarks can describe their own world;
//! [`demo_config`] is the built-in world that the suite's tests rely on.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::push::{CallbackConfig, UserReceipt};

/// The whole world the sandbox imitates: apps, token rules and the dedup window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// The apps (official accounts and mini programs) that can fetch tokens and send messages.
    pub apps: Vec<AppConfig>,
    /// Token lifetime, grace and limits, configurable because several are unconfirmed upstream.
    pub token: TokenRules,
    /// How long the same openid + client_msg_id is answered idempotently (WeChat: ~10 minutes).
    pub dedup_window_secs: u64,
    /// Received messages kept for the admin API (the newest; the counters
    /// count every one), so a long benchmark does not grow the sandbox.
    pub keep_messages: usize,
}

/// Received messages kept by default: about 100 MB at most.
pub const KEEP_MESSAGES: usize = 100_000;

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            apps: Vec::new(),
            token: TokenRules::default(),
            dedup_window_secs: 600,
            keep_messages: KEEP_MESSAGES,
        }
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read sandbox config {path}: {source}")]
    Read {
        /// The file that was read.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for a [`SandboxConfig`].
    #[error("invalid sandbox config {path}: {source}")]
    Parse {
        /// The file that was parsed.
        path: String,
        /// The YAML error.
        source: serde_yaml_ng::Error,
    },
    /// The file parsed but describes an impossible world (e.g. a duplicate appid).
    #[error("invalid sandbox config: {0}")]
    Invalid(String),
}

impl SandboxConfig {
    /// Loads a configuration from a YAML file, so dev setups and benchmarks can bring their own apps.
    pub fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses a configuration from YAML text (the file-less variant of [`Self::from_yaml_file`]).
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        let config: SandboxConfig =
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
                path: "<string>".to_string(),
                source,
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects configurations the sandbox cannot serve unambiguously.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for app in &self.apps {
            if app.appid.is_empty() {
                return Err(ConfigError::Invalid("an app has an empty appid".into()));
            }
            if !seen.insert(app.appid.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate appid {}",
                    app.appid
                )));
            }
            if let Some(callback) = &app.callback {
                callback
                    .validate(&app.appid, app.kind == AppKind::MiniProgram)
                    .map_err(ConfigError::Invalid)?;
            }
        }
        Ok(())
    }

    /// Finds an app by appid.
    pub fn app(&self, appid: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.appid == appid)
    }
}

/// Which WeChat product an app is; decides which message API it may call (else 48001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// 公众号: template messages.
    #[default]
    OfficialAccount,
    /// 小程序: subscribe messages.
    MiniProgram,
}

/// One app: credentials, templates and known users.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AppConfig {
    /// The app's appid.
    pub appid: String,
    /// The app secret checked by the token APIs.
    pub secret: String,
    /// Official account or mini program.
    pub kind: AppKind,
    /// The app's private templates.
    pub templates: Vec<TemplateConfig>,
    /// The users (openids) known to the app.
    pub users: Vec<UserConfig>,
    /// Where WeChat pushes receipts and subscription events (none: no pushes).
    pub callback: Option<CallbackConfig>,
}

impl AppConfig {
    /// Finds a template by id.
    pub fn template(&self, template_id: &str) -> Option<&TemplateConfig> {
        self.templates.iter().find(|t| t.template_id == template_id)
    }

    /// Finds a user by openid.
    pub fn user(&self, openid: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.openid == openid)
    }
}

/// A private template, as listed by the template-list APIs and used to validate `data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateConfig {
    /// The template id used in send requests.
    pub template_id: String,
    /// Human title.
    pub title: String,
    /// Content with `{{NAME.DATA}}` placeholders.
    pub content: String,
    /// Example filled content.
    pub example: String,
    /// Mini program only: 2 one-time, 3 long-term.
    #[serde(rename = "type")]
    pub template_type: u32,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            template_id: String::new(),
            title: String::new(),
            content: String::new(),
            example: String::new(),
            template_type: 2,
        }
    }
}

/// A user of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UserConfig {
    /// The user's openid for this app.
    pub openid: String,
    /// Official account: whether the user follows the account (else 43004).
    pub follows: bool,
    /// Mini program: one-time consents left per template_id (none left → 43101).
    pub subscriptions: HashMap<String, u32>,
    /// What a message to this user ends as, in its receipt.
    pub receipt: UserReceipt,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            openid: String::new(),
            follows: true,
            subscriptions: HashMap::new(),
            receipt: UserReceipt::Success,
        }
    }
}

/// Token lifetime and limits; configurable because several values are unconfirmed upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenRules {
    /// Lifetime of a new token (WeChat: 7200).
    pub expires_in_secs: u64,
    /// How long a replaced token keeps working before 40001.
    pub grace_secs: u64,
    /// Last part of a stable token's life in which a normal-mode call gets a new one.
    pub stable_renew_window_secs: u64,
    /// `/cgi-bin/token` calls per app per Beijing day before 45009.
    pub daily_token_limit: u32,
    /// Forced stable refreshes per app per Beijing day before 45009.
    pub force_refresh_daily_limit: u32,
    /// Minimum seconds between forced stable refreshes (else 45011).
    pub force_refresh_min_interval_secs: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            expires_in_secs: 7200,
            grace_secs: 300,
            stable_renew_window_secs: 300,
            daily_token_limit: 2000,
            force_refresh_daily_limit: 20,
            force_refresh_min_interval_secs: 30,
        }
    }
}

/// The built-in demo world that `wxpush dev` and the suite's tests rely on (exact values).
pub fn demo_config() -> SandboxConfig {
    let user = |openid: &str, follows: bool| UserConfig {
        openid: openid.into(),
        follows,
        ..UserConfig::default()
    };
    let ends_as = |openid: &str, receipt: UserReceipt| UserConfig {
        openid: openid.into(),
        receipt,
        ..UserConfig::default()
    };
    let subscriber = |openid: &str, n: u32| UserConfig {
        openid: openid.into(),
        subscriptions: HashMap::from([("MP_ORDER_STATUS_p8Qx".to_string(), n)]),
        ..UserConfig::default()
    };
    SandboxConfig {
        apps: vec![
            AppConfig {
                appid: "wx_demo_oa".into(),
                secret: "demo-oa-secret-7f3a9c".into(),
                kind: AppKind::OfficialAccount,
                templates: vec![TemplateConfig {
                    template_id: "OA_ORDER_SHIPPED_k3J9".into(),
                    title: "订单发货提醒".into(),
                    content: "订单编号:{{character_string1.DATA}}\n发货时间:{{time2.DATA}}\n物流公司:{{thing3.DATA}}".into(),
                    example: "订单编号:SF1234567\n发货时间:2026-11-22 10:00\n物流公司:顺丰速运".into(),
                    template_type: 2,
                }],
                users: vec![
                    user("o_demo_follower", true),
                    user("o_demo_follower2", true),
                    user("o_demo_unfollowed", false),
                    // Follows, but has refused the account's messages: WeChat
                    // accepts a send, and its receipt says "user block".
                    ends_as("o_demo_blocker", UserReceipt::UserBlock),
                    ends_as("o_demo_unreachable", UserReceipt::SystemFailed),
                ],
                callback: None,
            },
            AppConfig {
                appid: "wx_demo_mp".into(),
                secret: "demo-mp-secret-2b8e41".into(),
                kind: AppKind::MiniProgram,
                templates: vec![TemplateConfig {
                    template_id: "MP_ORDER_STATUS_p8Qx".into(),
                    title: "订单状态通知".into(),
                    content: "订单号:{{character_string1.DATA}}\n状态:{{thing2.DATA}}\n金额:{{amount3.DATA}}".into(),
                    example: "订单号:SF1234567\n状态:已发货\n金额:¥99.00".into(),
                    template_type: 2,
                }],
                users: vec![
                    subscriber("o_demo_subscriber", 100_000),
                    subscriber("o_demo_no_consent", 0),
                ],
                callback: None,
            },
        ],
        ..SandboxConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_defaults_fill_in() {
        let c = SandboxConfig::from_yaml_str(
            "apps:\n  - appid: a\n    secret: s\n    kind: mini_program\n    templates:\n      - template_id: T\n        content: '{{thing1.DATA}}'\n    users:\n      - openid: o\n",
        )
        .unwrap();
        assert_eq!(c.dedup_window_secs, 600);
        assert_eq!(c.token.expires_in_secs, 7200);
        assert_eq!(c.apps[0].kind, AppKind::MiniProgram);
        assert_eq!(c.apps[0].templates[0].template_type, 2);
        assert!(c.apps[0].users[0].follows);
    }

    #[test]
    fn duplicate_appid_rejected() {
        let e = SandboxConfig::from_yaml_str("apps:\n  - appid: a\n  - appid: a\n");
        assert!(matches!(e, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn demo_round_trips_through_yaml() {
        let yaml = serde_yaml_ng::to_string(&demo_config()).unwrap();
        let back = SandboxConfig::from_yaml_str(&yaml).unwrap();
        assert_eq!(back.apps.len(), 2);
        assert_eq!(
            back.apps[1].users[0].subscriptions["MP_ORDER_STATUS_p8Qx"],
            100_000
        );
    }
}
