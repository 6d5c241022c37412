//! The callback service: the one part of wxpush that WeChat calls from the
//! internet. WeChat pushes the outcome of each template message (a
//! receipt) and a Mini Program user's subscription answers to an app's
//! callback URL; this service checks each push's signature, opens it
//! (plaintext, compatible or safe mode), reads it and hands it on durably
//! before answering, and does nothing else with it.
//!
//! - [`config`]: the public address, each app's `Token` and
//!   `EncodingAESKey` (from env vars or mounted files).
//! - [`endpoint`]: `GET` (URL verification) and `POST` (pushes) on
//!   `/wechat/callback/{app_id}`, every refusal counted.
//! - [`handoff`]: where verified pushes go (a Redis stream, each push
//!   once; memory for `wxpush dev`).
//! - [`metrics`]: `wxpush_callback_pushes_total{app_id, outcome}`.
//!
//! [`build`] puts them together as one component; the public listener is
//! bound before the component serves.

pub mod config;
pub mod endpoint;
pub mod handoff;
pub mod metrics;

pub use config::CallbackConfig;

use endpoint::Endpoint;
use handoff::{MemoryPushes, PushSink, RedisSink};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use wxpush_server::component::Component;

/// The callback service from its config. App tokens and keys are read
/// here, so a missing file or variable fails the build (and
/// `--check-config`).
pub async fn build(config: CallbackConfig) -> anyhow::Result<Component> {
    let sink: Arc<dyn PushSink> = if config.backend.kind.uses_redis() {
        Arc::new(RedisSink::open(
            &config.backend.redis_url,
            &config.backend.key_prefix,
        )?)
    } else {
        MemoryPushes::new(handoff::MEMORY_KEEPS)
    };
    build_with_sink(config, sink)
}

/// [`build`] handing pushes to `sink`; the public listener is bound when
/// the component starts (a taken port fails the start).
pub fn build_with_sink(
    config: CallbackConfig,
    sink: Arc<dyn PushSink>,
) -> anyhow::Result<Component> {
    let bound: Arc<Mutex<Option<TcpListener>>> = Arc::default();
    let (bind_into, public) = (bound.clone(), config.public_listen);
    Ok(component(&config, sink, bound)?.on_start(async move {
        let listener = TcpListener::bind(public).await?;
        tracing::info!(addr = %listener.local_addr()?, "WeChat callback endpoint listening");
        *bind_into.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
        Ok(())
    }))
}

/// [`build_with_sink`] serving on a listener bound already (`wxpush dev`
/// binds it first, to tell the sandbox where to push).
pub fn build_on(
    config: CallbackConfig,
    sink: Arc<dyn PushSink>,
    listener: TcpListener,
) -> anyhow::Result<Component> {
    component(&config, sink, Arc::new(Mutex::new(Some(listener))))
}

/// The component serving the endpoint on what `bound` holds once started.
fn component(
    config: &CallbackConfig,
    sink: Arc<dyn PushSink>,
    bound: Arc<Mutex<Option<TcpListener>>>,
) -> anyhow::Result<Component> {
    let mut apps = std::collections::HashMap::new();
    for app in &config.apps {
        let keys = app
            .keys(config.allow_inline_secrets)
            .map_err(anyhow::Error::msg)?;
        apps.insert(app.app_id.clone(), keys);
    }
    let endpoint = Arc::new(Endpoint {
        apps,
        sink,
        max_body_bytes: config.max_body_bytes,
    });
    Ok(Component::new("wxpush-callback")
        .checks_redis(&config.backend)
        .metrics(|r| metrics::CallbackMetrics::global().register(r))
        .task(move |drain| async move {
            let Some(listener) = bound.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                return;
            };
            if let Err(e) = serve(endpoint, listener, drain.wait()).await {
                tracing::error!(error = %e, "the WeChat callback endpoint stopped");
            }
        }))
}

/// Serves the endpoint on `listener` until `shutdown` (tests, `wxpush dev`).
pub async fn serve(
    endpoint: Arc<Endpoint>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, endpoint.router())
        .with_graceful_shutdown(shutdown)
        .await
}
