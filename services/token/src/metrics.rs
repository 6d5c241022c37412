//! The token service's metrics: when each app's token expires, and fetches
//! from WeChat by result, counted (`increase(...[1d])` across replicas shows
//! a quota burn before WeChat says 45009).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    pub app_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub app_id: String,
    /// ok | rejected | unavailable | wechat_quota | budget_exhausted
    pub result: &'static str,
}

/// Metric families; cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct TokenMetrics {
    expires_at: Family<AppLabel, Gauge>,
    fetches: Family<FetchLabels, Counter>,
}

impl TokenMetrics {
    /// Adds the families to a registry (the admin port's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wxpush_token_expires_at_seconds",
            "Unix time at which the app's cached access token expires (seconds left: this minus time())",
            self.expires_at.clone(),
        );
        registry.register(
            "wxpush_token_fetches",
            "Token fetches from WeChat by this replica, by result (budget_exhausted: refused before calling WeChat)",
            self.fetches.clone(),
        );
    }

    pub(crate) fn expires_at(&self, app_id: &str, expires_at_ms: i64) {
        self.expires_at
            .get_or_create(&app(app_id))
            .set(expires_at_ms / 1000);
    }

    pub(crate) fn fetch(&self, app_id: &str, result: &'static str) {
        self.fetches
            .get_or_create(&FetchLabels {
                app_id: app_id.into(),
                result,
            })
            .inc();
    }
}

fn app(app_id: &str) -> AppLabel {
    AppLabel {
        app_id: app_id.into(),
    }
}
