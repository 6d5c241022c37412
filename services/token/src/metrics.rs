//! The token service's metrics: when each app's token expires, refreshes by
//! result, and fetches today (so a quota burn shows before WeChat says 45009).

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
pub struct RefreshLabels {
    pub app_id: String,
    /// ok | rejected | unavailable | wechat_quota | budget_exhausted
    pub result: &'static str,
}

/// Metric families; cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct TokenMetrics {
    expires_at: Family<AppLabel, Gauge>,
    refreshes: Family<RefreshLabels, Counter>,
    fetches_today: Family<AppLabel, Gauge>,
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
            "wxpush_token_refreshes",
            "Token fetches from WeChat by result (budget_exhausted: refused before calling WeChat)",
            self.refreshes.clone(),
        );
        registry.register(
            "wxpush_token_fetches_today",
            "Token fetches from WeChat today (Beijing day), across replicas",
            self.fetches_today.clone(),
        );
    }

    pub(crate) fn expires_at(&self, app_id: &str, expires_at_ms: i64) {
        self.expires_at
            .get_or_create(&app(app_id))
            .set(expires_at_ms / 1000);
    }

    pub(crate) fn refresh(&self, app_id: &str, result: &'static str) {
        self.refreshes
            .get_or_create(&RefreshLabels {
                app_id: app_id.into(),
                result,
            })
            .inc();
    }

    pub(crate) fn fetches_today(&self, app_id: &str, n: u32) {
        self.fetches_today
            .get_or_create(&app(app_id))
            .set(i64::from(n));
    }
}

fn app(app_id: &str) -> AppLabel {
    AppLabel {
        app_id: app_id.into(),
    }
}
