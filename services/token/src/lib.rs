//! The token service owns every app's WeChat access_token, so that nothing
//! else in the company calls WeChat's token APIs (one fetch by anyone can
//! knock out everyone else's token).
//!
//! - [`config`]: apps, their secrets' sources, token mode, refresh settings.
//! - [`store`]: shared state (memory, or Redis across replicas): token, lock,
//!   daily fetch counters.
//! - [`cache`]: the in-process copies every call is answered from, and
//!   compare-and-swap invalidation.
//! - `refresh`: the one-replica-fetches protocol (lock, re-check, budget,
//!   retries).
//! - `background`: refresh ahead of expiry, pick up other replicas' tokens.
//! - [`metrics`]: token expiry, refreshes by result, fetches today.
//! - [`error`]: [`error::TokenError`] and its one mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.TokenService` gRPC API.
//!
//! [`build`] puts them together as one component.

mod background;
pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
mod refresh;
pub mod service;
pub mod store;

pub use cache::TokenCache;
pub use config::{AppSpec, RefreshSettings, TokenConfig, TokenMode};
pub use service::TokenGrpc;

use wxpush_server::component::Component;

/// The token service from its config: the cache over the configured store,
/// its gRPC API, metrics and background refresher. App secrets are read
/// here, so a missing secret file fails the build (and `--check-config`).
pub async fn build(config: TokenConfig) -> anyhow::Result<Component> {
    if !config.allow_inline_secrets
        && let Some(app) = config.apps.iter().find(|a| a.secret.is_some())
    {
        anyhow::bail!(
            "apps[{}].secret: an inline secret is for `wxpush dev` only; use secret_env or secret_file",
            app.app_id
        );
    }
    let wechat = wxpush_wechat::WechatClient::new(&config.wechat)?;
    let store = store::connect(&config.backend).await?;
    let cache =
        TokenCache::new(&config.apps, wechat, store, config.refresh).map_err(anyhow::Error::msg)?;
    let metrics = cache.metrics().clone();
    let refresher = cache.clone();
    Ok(Component::new("wxpush-token")
        .checks_redis(&config.backend)
        .grpc(TokenGrpc::new(cache).into_server())
        .metrics(move |r| metrics.register(r))
        .shared_metrics("wechat", |r| {
            wxpush_wechat::WechatMetrics::global().register(r)
        })
        .task(move |drain| refresher.run_refresher(drain.wait())))
}
