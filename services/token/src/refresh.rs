//! Fetching a token from WeChat so that exactly one replica does it.
//!
//! The caller holds the app's in-process flight lock. Then: take a token
//! from the store if it already satisfies the caller; else take the store's
//! refresh lock (waiting a bounded time for another replica's result);
//! check the store again under the lock; check the daily budget; fetch,
//! retrying transient errors with backoff; save; release the lock.

use crate::cache::{AppEntry, TokenCache};
use crate::clock::{beijing_day, now_ms};
use crate::config::TokenMode;
use crate::error::TokenError;
use crate::store::{StoreError, StoredToken};
use std::time::{Duration, Instant};
use wxpush_wechat::{ErrClass, WechatError, classify};

/// What the caller needs from a refresh.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want<'a> {
    /// A token with at least this long to live.
    MinLeft(Duration),
    /// Any valid token other than this (rejected) one.
    Not(&'a str),
}

impl Want<'_> {
    fn satisfied_by(&self, t: &StoredToken) -> bool {
        let now = now_ms();
        match self {
            Want::MinLeft(d) => t.expires_at_ms > now + d.as_millis() as i64,
            Want::Not(bad) => t.access_token != *bad && t.expires_at_ms > now,
        }
    }
}

impl TokenCache {
    fn down(&self, entry: &AppEntry, e: StoreError) -> TokenError {
        TokenError::BackendDown {
            app_id: entry.spec.app_id.clone(),
            reason: e.0,
        }
    }

    /// A token satisfying `want`, fetched by this replica only if no other
    /// has one. With `wait`, waits up to `lock_wait` for another replica's
    /// fetch; without, gives up at once (the background refresher).
    pub(crate) async fn refresh(
        &self,
        entry: &AppEntry,
        want: Want<'_>,
        wait: bool,
    ) -> Result<StoredToken, TokenError> {
        let s = &self.inner.settings;
        let store = &self.inner.store;
        let app_id = entry.spec.app_id.as_str();
        if let Some(t) = self.shared(entry, want).await? {
            return Ok(t);
        }
        let deadline = Instant::now() + Duration::from_millis(s.lock_wait_ms);
        loop {
            let locked = store
                .try_lock(
                    app_id,
                    &self.inner.owner,
                    Duration::from_millis(s.lock_ttl_ms),
                )
                .await
                .map_err(|e| self.down(entry, e))?;
            if locked {
                break;
            }
            if !wait || Instant::now() >= deadline {
                return Err(TokenError::RefreshInProgress {
                    app_id: app_id.into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            if let Some(t) = self.shared(entry, want).await? {
                return Ok(t);
            }
        }
        let result = match self.shared(entry, want).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => {
                let fetched = self.fetch(entry, want).await;
                self.inner.metrics.fetch(app_id, result_label(&fetched));
                fetched
            }
            Err(e) => Err(e),
        };
        if let Err(e) = store.unlock(app_id, &self.inner.owner).await {
            tracing::warn!(app_id, error = %e, "could not release the refresh lock; it expires by itself");
        }
        result
    }

    /// The store's token if it satisfies `want` (taken into the local copy).
    async fn shared(
        &self,
        entry: &AppEntry,
        want: Want<'_>,
    ) -> Result<Option<StoredToken>, TokenError> {
        let t = self
            .inner
            .store
            .load(&entry.spec.app_id)
            .await
            .map_err(|e| self.down(entry, e))?;
        match t.filter(|t| want.satisfied_by(t)) {
            Some(t) => {
                self.adopt(entry, &t).await;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    /// Calls WeChat under the refresh lock.
    async fn fetch(&self, entry: &AppEntry, want: Want<'_>) -> Result<StoredToken, TokenError> {
        let s = &self.inner.settings;
        let app_id = entry.spec.app_id.as_str();
        let mut force = false;
        let mut transient_failures = 0;
        loop {
            let day = beijing_day(now_ms());
            let used = self
                .inner
                .store
                .fetches(app_id, day)
                .await
                .map_err(|e| self.down(entry, e))?;
            if used >= s.daily_fetch_budget {
                tracing::error!(
                    app_id,
                    budget = s.daily_fetch_budget,
                    "daily token fetch budget reached; refusing to fetch"
                );
                return Err(TokenError::QuotaExhausted {
                    app_id: app_id.into(),
                    budget: s.daily_fetch_budget,
                });
            }
            let count = self
                .inner
                .store
                .count_fetch(app_id, day)
                .await
                .map_err(|e| self.down(entry, e))?;
            entry.local.write().await.fetches = (day, count);

            let started = now_ms();
            let result = match entry.spec.token_mode {
                TokenMode::StableToken => {
                    self.inner
                        .wechat
                        .stable_token(app_id, &entry.secret, force)
                        .await
                }
                TokenMode::Token => self.inner.wechat.token(app_id, &entry.secret).await,
            };
            match result {
                Ok(grant) => {
                    if let Want::Not(bad) = want
                        && grant.access_token == bad
                        && entry.spec.token_mode == TokenMode::StableToken
                        && !force
                    {
                        // WeChat still hands out the rejected stable token:
                        // only a forced refresh (rate-limited) replaces it.
                        force = true;
                        continue;
                    }
                    let token = StoredToken {
                        access_token: grant.access_token,
                        expires_at_ms: started + grant.expires_in as i64 * 1000,
                        refreshed_at_ms: started,
                    };
                    if let Err(e) = self.inner.store.save(app_id, &token).await {
                        tracing::warn!(app_id, error = %e, "fetched a token but could not share it");
                    }
                    {
                        let mut local = entry.local.write().await;
                        local.token = Some(token.clone());
                        self.inner.metrics.expires_at(app_id, token.expires_at_ms);
                        local.last_error.clear();
                    }
                    tracing::info!(
                        app_id,
                        expires_in = grant.expires_in,
                        force,
                        "fetched access token"
                    );
                    return Ok(token);
                }
                Err(e) => {
                    entry.local.write().await.last_error = e.to_string();
                    tracing::warn!(app_id, error = %e, "access token fetch failed");
                    match (&e, classify(e.errcode())) {
                        (WechatError::Api { errcode, errmsg }, ErrClass::Quota) => {
                            return Err(TokenError::WechatQuota {
                                app_id: app_id.into(),
                                errcode: *errcode,
                                errmsg: errmsg.clone(),
                            });
                        }
                        (WechatError::Api { errcode, errmsg }, class)
                            if class != ErrClass::Transient =>
                        {
                            return Err(TokenError::Rejected {
                                app_id: app_id.into(),
                                errcode: *errcode,
                                errmsg: errmsg.clone(),
                            });
                        }
                        _ => {
                            transient_failures += 1;
                            if transient_failures >= s.fetch_attempts.max(1) {
                                return Err(TokenError::Unavailable {
                                    app_id: app_id.into(),
                                    source: e,
                                });
                            }
                            let backoff = s
                                .retry_backoff_ms
                                .saturating_mul(1 << (transient_failures - 1).min(6));
                            tokio::time::sleep(Duration::from_millis(backoff)).await;
                        }
                    }
                }
            }
        }
    }
}

/// The `result` label of a fetch outcome.
fn result_label(r: &Result<StoredToken, TokenError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(TokenError::QuotaExhausted { .. }) => "budget_exhausted",
        Err(TokenError::WechatQuota { .. }) => "wechat_quota",
        Err(TokenError::Rejected { .. }) => "rejected",
        Err(TokenError::BackendDown { .. }) => "backend_down",
        Err(_) => "unavailable",
    }
}
