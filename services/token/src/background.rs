//! The background refresher: every `check_interval` it takes each app's
//! shared token into the in-process copy (picking up other replicas'
//! refreshes, re-seeding an empty backend after a Redis restart) and
//! refreshes tokens that are inside the margin, so callers never wait.

use crate::cache::{AppEntry, TokenCache, local_with};
use crate::clock::now_ms;
use crate::error::TokenError;
use crate::refresh::Want;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Longest pause after repeated failures.
const MAX_BACKOFF_MS: i64 = 60_000;

impl TokenCache {
    /// Starts the refresher; it runs until the returned task is aborted.
    pub fn spawn_refresher(&self) -> JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move { cache.run_refresher(std::future::pending()).await })
    }

    /// Runs the refresher until `stop` completes.
    pub async fn run_refresher(self, stop: impl std::future::Future<Output = ()>) {
        let period = Duration::from_millis(self.inner.settings.check_interval_ms.max(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            for entry in self.inner.apps.values() {
                self.background_step(entry).await;
            }
        }
    }

    async fn background_step(&self, entry: &AppEntry) {
        let app_id = entry.spec.app_id.as_str();
        match self.inner.store.load(app_id).await {
            Ok(Some(shared)) => self.adopt(entry, &shared).await,
            Ok(None) => {
                if let Some(mine) = local_with(entry, Duration::ZERO).await
                    && let Ok(true) = self.inner.store.save_if_absent(app_id, &mine).await
                {
                    tracing::info!(
                        app_id,
                        "token backend was empty; shared the in-process token again"
                    );
                }
            }
            Err(e) => {
                tracing::debug!(app_id, error = %e, "token backend unreachable; serving in-process copies");
                return;
            }
        }
        let margin = Duration::from_secs(self.inner.settings.margin_secs);
        let now = now_ms();
        if local_with(entry, margin).await.is_some()
            || now < entry.local.read().await.next_background_ms
        {
            return;
        }
        // A caller already fetching for this app in this process does the job.
        let Ok(_flight) = entry.flight.try_lock() else {
            return;
        };
        let interval = self.inner.settings.check_interval_ms as i64;
        let next = match self.refresh(entry, Want::MinLeft(margin), false).await {
            // WeChat may hand back the same stable token while it is still
            // inside our margin: look again halfway to its expiry.
            Ok(t) if t.expires_at_ms - now_ms() <= margin.as_millis() as i64 => {
                now + ((t.expires_at_ms - now) / 2).max(interval)
            }
            Ok(_) | Err(TokenError::RefreshInProgress { .. }) => 0,
            Err(e) => {
                let mut local = entry.local.write().await;
                local.background_failures = local.background_failures.saturating_add(1);
                let backoff = interval.saturating_mul(1 << local.background_failures.min(16));
                tracing::warn!(app_id, error = %e, "background token refresh failed");
                local.next_background_ms = now + backoff.min(MAX_BACKOFF_MS);
                return;
            }
        };
        let mut local = entry.local.write().await;
        local.next_background_ms = next;
        local.background_failures = 0;
    }
}
