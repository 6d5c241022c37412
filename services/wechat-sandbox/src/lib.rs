//! A faithful local imitation of the WeChat server API (tokens, template and subscribe
//! messages, template lists, pushes to an app's callback URL), with an admin API for
//! faults, clock, subscription answers and inspection.
//!
//! wxpush's tests, `wxpush dev` and benchmarks point their WeChat base URL at
//! [`Sandbox::api_url`]; code written for the real API works unchanged.

pub mod admin;
mod admin_api;
mod api;
pub mod clock;
pub mod config;
pub mod errcode;
pub mod faults;
mod listener;
pub mod messages;
pub mod push;
pub mod pusher;
pub mod rules;
mod state;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

pub use admin::{AdminClient, install_crypto_provider};
pub use config::{
    AppConfig, AppKind, SandboxConfig, TemplateConfig, TokenRules, UserConfig, demo_config,
};
pub use faults::{Fault, Outage};
pub use messages::{MessageQuery, ReceivedMessage};
pub use push::{CallbackConfig, PushFormat, PushMode, PushRecord, UserReceipt};
pub use pusher::{Answer, AnswerEvent};
pub use state::Counters;

use listener::{Listener, control_pair};
use state::AppState;

/// A running sandbox: the WeChat API listener and the admin listener.
#[derive(Debug)]
pub struct Sandbox {
    api: Listener,
    admin: Listener,
}

impl Sandbox {
    /// Binds the WeChat API listener and the admin listener (port 0 = any free port) and serves
    /// both in background tasks.
    pub async fn start(
        config: SandboxConfig,
        api_addr: SocketAddr,
        admin_addr: SocketAddr,
    ) -> std::io::Result<Sandbox> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (api_control, api_end) = control_pair();
        let state = Arc::new(AppState::new(config, api_control.clone()));
        let api = Listener::bind(api_addr, api::router(state.clone()), api_control, api_end)?;
        let (admin_control, admin_end) = control_pair();
        let admin = Listener::bind(
            admin_addr,
            admin_api::router(state),
            admin_control,
            admin_end,
        )?;
        tracing::info!(api = %api.local_addr(), admin = %admin.local_addr(), "wechat sandbox listening");
        Ok(Sandbox { api, admin })
    }

    /// Base URL of the WeChat API imitation, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api.local_addr())
    }

    /// Base URL of the admin API (no trailing slash).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin.local_addr())
    }

    /// The API listener's bound address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Stops both listeners and drops all their connections.
    pub async fn shutdown(self) {
        self.api.shutdown().await;
        self.admin.shutdown().await;
    }
}
