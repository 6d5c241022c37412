//! The per-app token cache.
//!
//! Reads take a shared lock and return at once while the cached token has
//! more than the refresh margin left. Fetches are single-flight per app: one
//! caller fetches while the others wait on the same lock and then find the
//! new token. Invalidation is compare-and-swap: only a report naming the
//! token that is still cached causes a refresh.

use crate::config::{AppSpec, TokenMode};
use crate::error::TokenError;
use chrono::{Datelike, FixedOffset, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, RwLock};
use wxpush_server::config::Secret;
use wxpush_server::status::Violation;
use wxpush_wechat::{ErrClass, TokenGrant, WechatClient, WechatError, classify};

/// A token and when WeChat stops accepting it.
#[derive(Clone)]
pub struct CachedToken {
    pub access_token: String,
    pub expires_at: SystemTime,
}

/// What operators may see about an app's token (never the token).
#[derive(Debug, Clone, Default)]
pub struct TokenStatusView {
    pub app_id: String,
    pub kind: crate::config::AppKindConfig,
    pub token_mode: TokenMode,
    pub expires_at: Option<SystemTime>,
    pub last_refresh_at: Option<SystemTime>,
    pub refreshes_today: u32,
    pub last_error: String,
}

#[derive(Default)]
struct AppState {
    token: Option<CachedToken>,
    last_refresh_at: Option<SystemTime>,
    /// (Beijing day number, fetches that day)
    fetches: (i64, u32),
    last_error: String,
}

struct AppEntry {
    spec: AppSpec,
    secret: Secret,
    state: RwLock<AppState>,
    fetch_lock: Mutex<()>,
}

/// Every configured app's token, shared by the gRPC handlers.
#[derive(Clone)]
pub struct TokenCache {
    apps: Arc<BTreeMap<String, AppEntry>>,
    wechat: WechatClient,
    margin: Duration,
}

impl TokenCache {
    /// Resolves every app's secret up front so a misconfigured app fails at
    /// start-up, not at the first send.
    pub fn new(apps: &[AppSpec], wechat: WechatClient, margin: Duration) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for spec in apps {
            if spec.app_id.trim().is_empty() {
                return Err("an app has an empty app_id".into());
            }
            let secret = spec.resolve_secret()?;
            let entry = AppEntry {
                spec: spec.clone(),
                secret,
                state: RwLock::new(AppState::default()),
                fetch_lock: Mutex::new(()),
            };
            if map.insert(spec.app_id.clone(), entry).is_some() {
                return Err(format!("app {} is configured twice", spec.app_id));
            }
        }
        Ok(Self {
            apps: Arc::new(map),
            wechat,
            margin,
        })
    }

    /// The app's token: the cached one while it has more than the margin
    /// left, else a fresh one (one fetch for all concurrent callers). When a
    /// fetch fails transiently, a cached token that has not expired is served.
    pub async fn get(&self, app_id: &str) -> Result<CachedToken, TokenError> {
        let entry = self.entry(app_id)?;
        if let Some(t) = self.fresh(entry).await {
            return Ok(t);
        }
        let _guard = entry.fetch_lock.lock().await;
        if let Some(t) = self.fresh(entry).await {
            return Ok(t);
        }
        match self.fetch(entry, false).await {
            Ok(t) => Ok(t),
            Err(e @ TokenError::Unavailable { .. }) => {
                let state = entry.state.read().await;
                match &state.token {
                    Some(t) if t.expires_at > SystemTime::now() => Ok(t.clone()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// WeChat rejected `bad_token`. Refreshes only when it is still the
    /// cached token; otherwise the current token is returned unchanged.
    pub async fn invalidate(
        &self,
        app_id: &str,
        bad_token: &str,
    ) -> Result<CachedToken, TokenError> {
        if bad_token.is_empty() {
            return Err(TokenError::InvalidArgument(vec![Violation::new(
                "bad_token",
                "is required",
            )]));
        }
        let entry = self.entry(app_id)?;
        let _guard = entry.fetch_lock.lock().await;
        let current = entry.state.read().await.token.clone();
        match current {
            Some(t) if t.access_token != bad_token => Ok(t),
            _ => {
                // Stable tokens: a normal call first; force only if WeChat
                // still hands out the bad one (force refreshes are limited).
                let fresh = self.fetch(entry, false).await?;
                if fresh.access_token == bad_token
                    && entry.spec.token_mode == TokenMode::StableToken
                {
                    self.fetch(entry, true).await
                } else {
                    Ok(fresh)
                }
            }
        }
    }

    /// Operator view of one app.
    pub async fn status(&self, app_id: &str) -> Result<TokenStatusView, TokenError> {
        let entry = self.entry(app_id)?;
        let state = entry.state.read().await;
        let today = beijing_day(SystemTime::now());
        Ok(TokenStatusView {
            app_id: entry.spec.app_id.clone(),
            kind: entry.spec.kind,
            token_mode: entry.spec.token_mode,
            expires_at: state.token.as_ref().map(|t| t.expires_at),
            last_refresh_at: state.last_refresh_at,
            refreshes_today: if state.fetches.0 == today {
                state.fetches.1
            } else {
                0
            },
            last_error: state.last_error.clone(),
        })
    }

    /// Every configured app id, sorted.
    pub fn app_ids(&self) -> Vec<String> {
        self.apps.keys().cloned().collect()
    }

    fn entry(&self, app_id: &str) -> Result<&AppEntry, TokenError> {
        if app_id.trim().is_empty() {
            return Err(TokenError::InvalidArgument(vec![Violation::new(
                "app_id",
                "is required",
            )]));
        }
        self.apps
            .get(app_id)
            .ok_or_else(|| TokenError::UnknownApp(app_id.to_string()))
    }

    async fn fresh(&self, entry: &AppEntry) -> Option<CachedToken> {
        let state = entry.state.read().await;
        state
            .token
            .as_ref()
            .filter(|t| t.expires_at > SystemTime::now() + self.margin)
            .cloned()
    }

    /// One call to WeChat's token API; the caller holds the fetch lock.
    async fn fetch(&self, entry: &AppEntry, force: bool) -> Result<CachedToken, TokenError> {
        let app_id = &entry.spec.app_id;
        let result: Result<TokenGrant, WechatError> = match entry.spec.token_mode {
            TokenMode::StableToken => self.wechat.stable_token(app_id, &entry.secret, force).await,
            TokenMode::Token => self.wechat.token(app_id, &entry.secret).await,
        };
        let now = SystemTime::now();
        let mut state = entry.state.write().await;
        match result {
            Ok(grant) => {
                let token = CachedToken {
                    access_token: grant.access_token,
                    expires_at: now + Duration::from_secs(grant.expires_in),
                };
                let today = beijing_day(now);
                state.fetches = if state.fetches.0 == today {
                    (today, state.fetches.1 + 1)
                } else {
                    (today, 1)
                };
                state.token = Some(token.clone());
                state.last_refresh_at = Some(now);
                state.last_error.clear();
                tracing::info!(app_id = %app_id, expires_in = grant.expires_in, force, "fetched access token");
                Ok(token)
            }
            Err(e) => {
                state.last_error = e.to_string();
                tracing::warn!(app_id = %app_id, error = %e, "access token fetch failed");
                match (&e, classify(e.errcode())) {
                    (
                        WechatError::Api { errcode, errmsg },
                        ErrClass::Configuration | ErrClass::Token,
                    ) => Err(TokenError::Rejected {
                        app_id: app_id.clone(),
                        errcode: *errcode,
                        errmsg: errmsg.clone(),
                    }),
                    _ => Err(TokenError::Unavailable {
                        app_id: app_id.clone(),
                        source: e,
                    }),
                }
            }
        }
    }
}

/// Days since the epoch in Beijing time (UTC+8), when WeChat's daily limits
/// reset.
fn beijing_day(t: SystemTime) -> i64 {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let dt: chrono::DateTime<Utc> = t.into();
    i64::from(dt.with_timezone(&beijing).date_naive().num_days_from_ce())
}
