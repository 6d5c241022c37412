//! The token cache every gRPC call goes through.
//!
//! Each replica keeps an in-process copy per app and answers from it while
//! it is valid, so a caller never waits for a refresh and a Redis outage
//! does not stop sends. Fetches are single-flight in the process (a mutex per
//! app) and across replicas (the store's lock; see [`crate::refresh`]).
//! Invalidation is compare-and-swap: only a report naming the token that is
//! still current causes a refresh.

use crate::clock::{beijing_day, now_ms, to_system_time};
use crate::config::{AppKindConfig, AppSpec, RefreshSettings, TokenMode};
use crate::error::TokenError;
use crate::metrics::TokenMetrics;
use crate::store::{StoredToken, TokenStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, RwLock};
use wxpush_server::config::Secret;
use wxpush_server::status::Violation;
use wxpush_wechat::WechatClient;

/// What operators may see about an app's token (never the token).
#[derive(Debug, Clone, Default)]
pub struct TokenStatusView {
    pub app_id: String,
    pub kind: AppKindConfig,
    pub token_mode: TokenMode,
    pub expires_at: Option<SystemTime>,
    pub last_refresh_at: Option<SystemTime>,
    pub refreshes_today: u32,
    pub last_error: String,
}

/// The in-process side of one app.
#[derive(Default)]
pub(crate) struct Local {
    pub token: Option<StoredToken>,
    pub last_error: String,
    /// (Beijing day, fetches that day) as last seen.
    pub fetches: (i64, u32),
    /// The background refresher leaves the app alone until then (ms).
    pub next_background_ms: i64,
    /// Consecutive background failures, for the backoff.
    pub background_failures: u32,
}

pub(crate) struct AppEntry {
    pub spec: AppSpec,
    pub secret: Secret,
    pub local: RwLock<Local>,
    /// Held by whoever fetches for this app in this process.
    pub flight: Mutex<()>,
}

pub(crate) struct Inner {
    pub apps: BTreeMap<String, AppEntry>,
    pub store: Arc<dyn TokenStore>,
    pub wechat: WechatClient,
    pub settings: RefreshSettings,
    /// This replica's id, the owner value of the refresh lock.
    pub owner: String,
    pub metrics: TokenMetrics,
}

/// Every configured app's token; cheap to clone.
#[derive(Clone)]
pub struct TokenCache {
    pub(crate) inner: Arc<Inner>,
}

impl TokenCache {
    /// Resolves every app's secret up front so a misconfigured app fails at
    /// start-up, not at the first send.
    pub fn new(
        apps: &[AppSpec],
        wechat: WechatClient,
        store: Arc<dyn TokenStore>,
        settings: RefreshSettings,
    ) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for spec in apps {
            if spec.app_id.trim().is_empty() {
                return Err("an app has an empty app_id".into());
            }
            let entry = AppEntry {
                spec: spec.clone(),
                secret: spec.resolve_secret()?,
                local: RwLock::new(Local::default()),
                flight: Mutex::new(()),
            };
            if map.insert(spec.app_id.clone(), entry).is_some() {
                return Err(format!("app {} is configured twice", spec.app_id));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                apps: map,
                store,
                wechat,
                settings,
                owner: uuid::Uuid::new_v4().simple().to_string(),
                metrics: TokenMetrics::default(),
            }),
        })
    }

    /// The app's token: the in-process copy while it has at least
    /// `min_validity` left, else a fetch (one for all concurrent callers,
    /// one across replicas). If that fails, a copy that has not yet expired
    /// is still served.
    pub async fn get(&self, app_id: &str) -> Result<StoredToken, TokenError> {
        let entry = self.entry(app_id)?;
        let min_left = Duration::from_secs(self.inner.settings.min_validity_secs);
        if let Some(t) = local_with(entry, min_left).await {
            return Ok(t);
        }
        let _flight = entry.flight.lock().await;
        if let Some(t) = local_with(entry, min_left).await {
            return Ok(t);
        }
        match self
            .refresh(entry, crate::refresh::Want::MinLeft(min_left), true)
            .await
        {
            Ok(t) => Ok(t),
            Err(e) => match local_with(entry, Duration::ZERO).await {
                Some(t) => {
                    tracing::warn!(app_id, error = %e, "refresh failed; serving the cached token until it expires");
                    Ok(t)
                }
                None => Err(e),
            },
        }
    }

    /// WeChat rejected `bad_token`. Refreshes only when it is still the
    /// current token; otherwise the current token is returned unchanged.
    pub async fn invalidate(
        &self,
        app_id: &str,
        bad_token: &str,
    ) -> Result<StoredToken, TokenError> {
        let entry = self.entry(app_id)?;
        if bad_token.is_empty() {
            return Err(TokenError::InvalidArgument(vec![Violation::new(
                "bad_token",
                "is required",
            )]));
        }
        let _flight = entry.flight.lock().await;
        match self
            .refresh(entry, crate::refresh::Want::Not(bad_token), true)
            .await
        {
            Ok(t) => Ok(t),
            Err(e) => match local_with(entry, Duration::ZERO).await {
                Some(t) if t.access_token != bad_token => Ok(t),
                _ => Err(e),
            },
        }
    }

    /// Operator view of one app.
    pub async fn status(&self, app_id: &str) -> Result<TokenStatusView, TokenError> {
        let entry = self.entry(app_id)?;
        let day = beijing_day(now_ms());
        let shared = self.inner.store.fetches(app_id, day).await.ok();
        let local = entry.local.read().await;
        let local_fetches = if local.fetches.0 == day {
            local.fetches.1
        } else {
            0
        };
        Ok(TokenStatusView {
            app_id: entry.spec.app_id.clone(),
            kind: entry.spec.kind,
            token_mode: entry.spec.token_mode,
            expires_at: local
                .token
                .as_ref()
                .map(|t| to_system_time(t.expires_at_ms)),
            last_refresh_at: local
                .token
                .as_ref()
                .map(|t| to_system_time(t.refreshed_at_ms)),
            refreshes_today: shared.unwrap_or(local_fetches),
            last_error: local.last_error.clone(),
        })
    }

    /// The metric families, to register on the admin port.
    pub fn metrics(&self) -> &TokenMetrics {
        &self.inner.metrics
    }

    /// Takes a token into the in-process copy unless the copy is newer.
    pub(crate) async fn adopt(&self, entry: &AppEntry, token: &StoredToken) {
        let mut local = entry.local.write().await;
        let newer = local.token.as_ref().is_none_or(|t| {
            token.refreshed_at_ms > t.refreshed_at_ms || token.expires_at_ms > t.expires_at_ms
        });
        if newer {
            local.token = Some(token.clone());
            self.inner
                .metrics
                .expires_at(&entry.spec.app_id, token.expires_at_ms);
        }
    }

    /// Every configured app id, sorted.
    pub fn app_ids(&self) -> Vec<String> {
        self.inner.apps.keys().cloned().collect()
    }

    pub(crate) fn entry(&self, app_id: &str) -> Result<&AppEntry, TokenError> {
        if app_id.trim().is_empty() {
            return Err(TokenError::InvalidArgument(vec![Violation::new(
                "app_id",
                "is required",
            )]));
        }
        self.inner
            .apps
            .get(app_id)
            .ok_or_else(|| TokenError::UnknownApp(app_id.to_string()))
    }
}

/// The in-process copy if it has at least `min_left` to live.
pub(crate) async fn local_with(entry: &AppEntry, min_left: Duration) -> Option<StoredToken> {
    let deadline = now_ms() + min_left.as_millis() as i64;
    entry
        .local
        .read()
        .await
        .token
        .as_ref()
        .filter(|t| t.expires_at_ms > deadline)
        .cloned()
}
