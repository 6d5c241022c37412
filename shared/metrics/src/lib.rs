//! Prometheus metrics for every service: one [`Registry`] per process that
//! each part registers its metric families in, exposed in the text format on
//! an admin HTTP port next to `/healthz` (what Kubernetes probes and the
//! Prometheus scrape config point at).
//!
//! Labels are bounded sets (app id, api, errcode, result); an openid or a
//! message id is never a label.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::future::Future;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

pub use prometheus_client;
pub use prometheus_client::registry::Registry;

/// The process's registry, shared by the admin server and whoever registers.
#[derive(Clone, Default)]
pub struct SharedRegistry(Arc<RwLock<Registry>>);

impl SharedRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets a part register its families.
    pub fn register_with(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.0.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// The text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.0.read().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The admin routes: `/metrics` and `/healthz`.
pub fn admin_router(registry: SharedRegistry) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = registry.encode();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(|| async { (StatusCode::OK, "ok").into_response() }),
        )
}

/// Serves the admin routes until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    registry: SharedRegistry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "admin HTTP (metrics, healthz) listening");
    axum::serve(listener, admin_router(registry))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn registered_metrics_are_encoded() {
        let registry = SharedRegistry::new();
        let c: Counter = Counter::default();
        registry.register_with(|r| r.register("wxpush_test_events", "Events seen", c.clone()));
        c.inc();
        let text = registry.encode();
        assert!(text.contains("wxpush_test_events_total 1"), "{text}");
    }
}
