//! `wxpush dev`'s WeChat pushes: each sandbox app's server URL points at
//! the suite's own callback endpoint, the way it is set in WeChat's
//! console: the official account in plaintext mode (XML), the Mini Program
//! in safe mode with JSON bodies, so both paths run. Each app's `Token` and
//! `EncodingAESKey` are made at start.

use rand::Rng;
use rand::distr::Alphanumeric;
use wechat_sandbox::{AppKind, CallbackConfig as Pushes, PushFormat, PushMode, SandboxConfig};
use wxpush_callback::CallbackConfig;
use wxpush_callback::config::CallbackApp;
use wxpush_server::config::Secret;

/// The apps pointed at one callback endpoint, with their credentials.
pub struct Wiring {
    base_url: String,
    apps: Vec<CallbackApp>,
}

impl Wiring {
    /// Pushes go to `{base_url}/{app_id}`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            apps: Vec::new(),
        }
    }

    /// Points every app of the sandbox here (credentials made now).
    pub fn point(&mut self, sandbox: &mut SandboxConfig) {
        for app in &mut sandbox.apps {
            let token = random(32);
            let safe = app.kind == AppKind::MiniProgram;
            // 43 characters of base64's alphabet: a 32-byte key.
            let key = safe.then(|| random(43));
            app.callback = Some(Pushes {
                url: format!("{}/{}", self.base_url, app.appid),
                token: token.clone(),
                encoding_aes_key: key.clone().unwrap_or_default(),
                mode: if safe {
                    PushMode::Safe
                } else {
                    PushMode::Plaintext
                },
                format: if safe {
                    PushFormat::Json
                } else {
                    PushFormat::Xml
                },
                ..Default::default()
            });
            self.apps.push(CallbackApp {
                app_id: app.appid.clone(),
                token: Some(Secret::new(token)),
                aes_key: key.map(Secret::new),
                ..Default::default()
            });
        }
    }

    /// The callback service's config for the apps pointed here.
    pub fn config(&self) -> CallbackConfig {
        CallbackConfig {
            apps: self.apps.clone(),
            allow_inline_secrets: true,
            ..Default::default()
        }
    }
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
