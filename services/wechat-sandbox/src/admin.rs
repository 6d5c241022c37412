//! An async client for the admin HTTP API, so tests steer the sandbox in one line per step.

use anyhow::{Context, bail};
use reqwest::{Client, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

pub use crate::faults::{Fault, Outage};
pub use crate::messages::{MessageQuery, ReceivedMessage};
pub use crate::state::Counters;

/// Installs rustls' ring crypto provider once (reqwest is built without one); errors mean one
/// is already installed and are ignored. Call before building a `reqwest::Client` yourself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for one sandbox's admin listener.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: Client,
}

impl AdminClient {
    /// A client for the admin API at `admin_url` (e.g. [`crate::Sandbox::admin_url`]).
    pub fn new(admin_url: impl Into<String>) -> Self {
        install_crypto_provider();
        let http = Client::builder()
            .build()
            .expect("building a reqwest client");
        Self {
            base: admin_url.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn checked(resp: reqwest::Result<Response>, what: &str) -> anyhow::Result<Response> {
        let resp = resp.with_context(|| format!("admin {what}: request failed"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!("admin {what}: HTTP {status}: {body}");
        }
        Ok(resp)
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        Self::checked(
            self.http.post(self.url(path)).json(&body).send().await,
            path,
        )
        .await?;
        Ok(())
    }

    async fn get<T: DeserializeOwned>(&self, url: reqwest::Url, what: &str) -> anyhow::Result<T> {
        let resp = Self::checked(self.http.get(url).send().await, what).await?;
        resp.json()
            .await
            .with_context(|| format!("admin {what}: bad JSON"))
    }

    fn parsed(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        reqwest::Url::parse(&self.url(path)).context("invalid admin url")
    }

    /// Adds a fault (see [`Fault`]); a refuse outage has taken effect when this returns.
    pub async fn set_fault(&self, fault: &Fault) -> anyhow::Result<()> {
        self.post("/admin/faults", serde_json::to_value(fault)?)
            .await
    }

    /// Removes every fault; after a refuse outage the API port accepts again when this returns.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        let resp = self.http.delete(self.url("/admin/faults")).send().await;
        Self::checked(resp, "/admin/faults").await?;
        Ok(())
    }

    /// Recorded messages matching `q`, oldest first.
    pub async fn messages(&self, q: &MessageQuery) -> anyhow::Result<Vec<ReceivedMessage>> {
        let mut url = self.parsed("/admin/messages")?;
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in [
                ("client_msg_id", &q.client_msg_id),
                ("openid", &q.openid),
                ("appid", &q.appid),
            ] {
                if let Some(v) = v {
                    pairs.append_pair(k, v);
                }
            }
        }
        self.get(url, "/admin/messages").await
    }

    /// Current call counters.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        self.get(self.parsed("/admin/counters")?, "/admin/counters")
            .await
    }

    /// Moves the sandbox clock forward by `secs` (expiry, grace, dedup and daily limits follow it).
    pub async fn advance_clock(&self, secs: u64) -> anyhow::Result<()> {
        self.post("/admin/clock/advance", json!({ "secs": secs }))
            .await
    }

    /// Every token ever issued (so tests can assert none leaked into logs).
    pub async fn issued_tokens(&self) -> anyhow::Result<Vec<String>> {
        self.get(self.parsed("/admin/tokens")?, "/admin/tokens")
            .await
    }

    /// Every push made to the apps' callback URLs, oldest first.
    pub async fn pushes(&self) -> anyhow::Result<Vec<crate::PushRecord>> {
        self.get(self.parsed("/admin/pushes")?, "/admin/pushes")
            .await
    }

    /// Makes push `id`'s request again, as WeChat does when it was not
    /// answered `success` in time; the new push's record.
    pub async fn repeat_push(&self, id: u64) -> anyhow::Result<crate::PushRecord> {
        let resp = Self::checked(
            self.http
                .post(self.url("/admin/pushes/repeat"))
                .json(&json!({ "id": id }))
                .send()
                .await,
            "/admin/pushes/repeat",
        )
        .await?;
        resp.json()
            .await
            .context("admin /admin/pushes/repeat: bad JSON")
    }

    /// A user answers a subscription pop-up (or changes the setting): the
    /// sandbox's consents change and the push is made; its record (`None`
    /// when the app has no callback URL).
    pub async fn answer_subscription(
        &self,
        answer: &crate::Answer,
    ) -> anyhow::Result<Option<crate::PushRecord>> {
        let resp = Self::checked(
            self.http
                .post(self.url("/admin/subscriptions"))
                .json(answer)
                .send()
                .await,
            "/admin/subscriptions",
        )
        .await?;
        resp.json()
            .await
            .context("admin /admin/subscriptions: bad JSON")
    }

    /// Clears messages, counters, faults, tokens and the clock offset; keeps the config.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.post("/admin/reset", json!({})).await
    }
}
