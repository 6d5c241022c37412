//! The callback service's settings: where WeChat reaches it, and each app's
//! `Token` and `EncodingAESKey` (set in the WeChat admin console with the
//! callback URL), read from an env var or a mounted file like app secrets.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use wxpush_server::config::{BackendSettings, Secret, SecretSource};
use wxpush_wechat::push::crypto::AesKey;

/// Largest push body taken by default: WeChat's pushes are a few KB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole callback service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CallbackConfig {
    /// gRPC address (health).
    pub listen: SocketAddr,
    /// Admin HTTP address (`/metrics`, `/healthz`).
    pub admin_listen: SocketAddr,
    /// Who may call (`auth.mode`, the callers' credentials and grants)
    /// and what this service presents on its own calls to the suite.
    pub auth: wxpush_auth::AuthSettings,
    /// The HTTP address WeChat calls: `GET`/`POST /wechat/callback/{app_id}`.
    pub public_listen: SocketAddr,
    /// Bodies larger than this are refused (`413`) unread.
    pub max_body_bytes: usize,
    pub apps: Vec<CallbackApp>,
    /// Where verified pushes are handed on (memory: this process only).
    pub backend: BackendSettings,
    /// `wxpush dev` only: allow `token` and `aes_key` inline.
    pub allow_inline_secrets: bool,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50055".parse().expect("address"),
            admin_listen: "127.0.0.1:9095".parse().expect("address"),
            auth: wxpush_auth::AuthSettings::default(),
            public_listen: "127.0.0.1:8095".parse().expect("address"),
            max_body_bytes: MAX_BODY_BYTES,
            apps: Vec::new(),
            backend: BackendSettings::default(),
            allow_inline_secrets: false,
        }
    }
}

wxpush_server::listen_on_fields!(CallbackConfig);

/// One app's callback credentials, each from exactly one source. Without
/// an `EncodingAESKey` the app takes plaintext pushes only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CallbackApp {
    pub app_id: String,
    pub token: Option<Secret>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    pub aes_key: Option<Secret>,
    pub aes_key_env: Option<String>,
    pub aes_key_file: Option<PathBuf>,
}

/// An app's credentials, read.
#[derive(Debug, Clone)]
pub struct AppKeys {
    pub token: Secret,
    pub aes: Option<AesKey>,
}

impl CallbackApp {
    /// Reads the token and the key; the error names the app and the
    /// source, never a value.
    pub fn keys(&self, allow_inline: bool) -> Result<AppKeys, String> {
        let owner = format!("apps[{}]", self.app_id);
        if !allow_inline && (self.token.is_some() || self.aes_key.is_some()) {
            return Err(format!(
                "{owner}: an inline token or aes_key is for `wxpush dev` only; use token_env / token_file and aes_key_env / aes_key_file"
            ));
        }
        let token = SecretSource::one_of(
            &owner,
            "token",
            self.token.as_ref(),
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )?
        .read(&owner)?;
        // WeChat's Token is 3 to 32 letters and digits; an empty one (an
        // empty variable or file) would let anyone sign.
        if token.expose().len() < 3 {
            return Err(format!("{owner}.token: empty or shorter than 3 characters"));
        }
        let aes = match (&self.aes_key, &self.aes_key_env, &self.aes_key_file) {
            (None, None, None) => None,
            _ => {
                let raw = SecretSource::one_of(
                    &owner,
                    "aes_key",
                    self.aes_key.as_ref(),
                    self.aes_key_env.as_deref(),
                    self.aes_key_file.as_deref(),
                )?
                .read(&owner)?;
                Some(
                    AesKey::from_encoding_aes_key(raw.expose())
                        .map_err(|e| format!("{owner}.aes_key: {e}"))?,
                )
            }
        };
        Ok(AppKeys { token, aes })
    }
}
