//! What `wxpush dev` is preloaded with: the sandbox's demo apps (with their
//! secrets inline, which only a local sandbox may have) and two demo
//! templates, one template message and one subscribe message.

use wechat_sandbox::{AppKind, SandboxConfig};
use wxpush_proto::v1::Template;
use wxpush_token::config::AppKindConfig;
use wxpush_token::{AppSpec, TokenMode};

/// The demo templates file, also a worked example of the format.
pub const TEMPLATES_YAML: &str = include_str!("../dev/templates.yaml");

/// The demo templates.
pub fn templates() -> Vec<Template> {
    wxpush_template::spec::parse(TEMPLATES_YAML).expect("the embedded demo templates are valid")
}

/// Token-service app specs for every app the sandbox knows.
pub fn apps(sandbox: &SandboxConfig) -> Vec<AppSpec> {
    sandbox
        .apps
        .iter()
        .map(|a| AppSpec {
            app_id: a.appid.clone(),
            kind: match a.kind {
                AppKind::OfficialAccount => AppKindConfig::OfficialAccount,
                AppKind::MiniProgram => AppKindConfig::MiniProgram,
            },
            secret: Some(wxpush_server::config::Secret::new(a.secret.clone())),
            token_mode: TokenMode::StableToken,
            ..Default::default()
        })
        .collect()
}
