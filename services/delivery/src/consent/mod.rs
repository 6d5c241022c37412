//! The consent ledger: per app, user and subscribe template, what WeChat's
//! pushes said of the user's subscription (pop-up answers and later
//! changes, read from the callback stream by [`crate::pushes`]): one-time accepts
//! counted, each send spending one, a reject turning it off.
//!
//! With a template's `consent: enforce`, a subscribe message to a user
//! with nothing left is FAILED here, WeChat not called ([`crate::sender`]);
//! with `observe` (the default) the ledger only records. It knows only what
//! arrived after it was deployed, which is why `observe` is the default.
//! Long-term subscriptions are counted like one-time ones: WeChat's pushes
//! do not say which kind a template is.

pub mod redis;

pub use redis::RedisConsent;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use wxpush_proto::v1::TemplateConsent;
use wxpush_wechat::push::PushEvent;

/// The ledger's backend could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("consent ledger unavailable: {0}")]
pub struct ConsentError(#[from] pub ::redis::RedisError);

/// One user and template, as the ledger names them.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub app_id: &'a str,
    pub openid: &'a str,
    pub template_id: &'a str,
}

/// Where consent is kept.
#[async_trait::async_trait]
pub trait ConsentLedger: Send + Sync {
    /// A pop-up answer or a later change (`event_id`: the push's, so the
    /// same push read twice counts once).
    async fn answer(
        &self,
        who: Subject<'_>,
        accept: bool,
        event_id: &str,
        at_ms: i64,
    ) -> Result<(), ConsentError>;

    /// Spends one accepted subscription: `false` when none was left.
    async fn take(&self, who: Subject<'_>) -> Result<bool, ConsentError>;

    /// Gives back one taken by a send that did not go out.
    async fn give_back(&self, who: Subject<'_>) -> Result<(), ConsentError>;

    /// Everything known of one user of one app.
    async fn read(&self, app_id: &str, openid: &str) -> Result<Vec<TemplateConsent>, ConsentError>;
}

/// Users the memory ledger keeps at most (`wxpush dev`, tests); past it a
/// user's entry is forgotten to make room.
pub const MEMORY_MAX_USERS: usize = 100_000;

#[derive(Debug, Clone, Default)]
struct Entry {
    left: u32,
    rejected: bool,
    at_ms: i64,
    last_event: String,
}

/// One process's ledger.
#[derive(Default)]
pub struct MemoryConsent {
    users: Mutex<HashMap<(String, String), HashMap<String, Entry>>>,
}

impl MemoryConsent {
    fn users(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), HashMap<String, Entry>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` on the entry of `who`, made when missing.
    fn with<T>(&self, who: Subject<'_>, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut users = self.users();
        let key = (who.app_id.to_string(), who.openid.to_string());
        if !users.contains_key(&key)
            && users.len() >= MEMORY_MAX_USERS
            && let Some(any) = users.keys().next().cloned()
        {
            users.remove(&any);
        }
        let entry = users
            .entry(key)
            .or_default()
            .entry(who.template_id.to_string())
            .or_default();
        f(entry)
    }

    /// `f` on the entry of `who` if the ledger has one (a send to a user
    /// it knows nothing of records nothing).
    fn with_known<T>(&self, who: Subject<'_>, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut users = self.users();
        let entry = users
            .get_mut(&(who.app_id.to_string(), who.openid.to_string()))?
            .get_mut(who.template_id)?;
        Some(f(entry))
    }
}

#[async_trait::async_trait]
impl ConsentLedger for MemoryConsent {
    async fn answer(
        &self,
        who: Subject<'_>,
        accept: bool,
        event_id: &str,
        at_ms: i64,
    ) -> Result<(), ConsentError> {
        self.with(who, |e| {
            if e.last_event == event_id {
                return;
            }
            e.last_event = event_id.to_string();
            e.at_ms = at_ms;
            e.rejected = !accept;
            e.left = if accept { e.left.saturating_add(1) } else { 0 };
        });
        Ok(())
    }

    async fn take(&self, who: Subject<'_>) -> Result<bool, ConsentError> {
        Ok(self
            .with_known(who, |e| {
                let had = e.left > 0;
                e.left = e.left.saturating_sub(1);
                had
            })
            .unwrap_or(false))
    }

    async fn give_back(&self, who: Subject<'_>) -> Result<(), ConsentError> {
        self.with_known(who, |e| e.left = e.left.saturating_add(1));
        Ok(())
    }

    async fn read(&self, app_id: &str, openid: &str) -> Result<Vec<TemplateConsent>, ConsentError> {
        let users = self.users();
        let mut out: Vec<TemplateConsent> = users
            .get(&(app_id.to_string(), openid.to_string()))
            .into_iter()
            .flatten()
            .map(|(t, e)| consent(t, e.left, e.rejected, e.at_ms))
            .collect();
        out.sort_by(|a, b| a.template_id.cmp(&b.template_id));
        Ok(out)
    }
}

/// The API form of one entry.
fn consent(template_id: &str, left: u32, rejected: bool, at_ms: i64) -> TemplateConsent {
    TemplateConsent {
        template_id: template_id.to_string(),
        accepts_left: left,
        rejected,
        updated_at: Some(wxpush_proto::timestamp_from_micros(at_ms * 1_000)),
    }
}

/// One push's subscription answers into the ledger (other pushes: nothing).
pub async fn record(
    ledger: &dyn ConsentLedger,
    pushed: &wxpush_events::callbacks::HandedOn,
) -> Result<(), ConsentError> {
    let items = match &pushed.push.event {
        PushEvent::SubscribePopup { items } | PushEvent::SubscribeChange { items } => items,
        _ => return Ok(()),
    };
    let at_ms = pushed.pushed_at_ms();
    for (n, item) in items.iter().enumerate() {
        let who = Subject {
            app_id: &pushed.app_id,
            openid: &pushed.push.openid,
            template_id: &item.template_id,
        };
        let accept = item.status.eq_ignore_ascii_case("accept");
        let event_id = format!("{}/{n}", pushed.event_id);
        ledger.answer(who, accept, &event_id, at_ms).await?;
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    app_id: String,
    template_key: String,
}

/// `wxpush_delivery_consent_refusals_total{app_id, template_key}`.
pub struct ConsentMetrics {
    refusals: Family<RefusalLabels, Counter>,
}

impl ConsentMetrics {
    pub fn global() -> &'static ConsentMetrics {
        static METRICS: OnceLock<ConsentMetrics> = OnceLock::new();
        METRICS.get_or_init(|| ConsentMetrics {
            refusals: Family::default(),
        })
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wxpush_delivery_consent_refusals",
            "Subscribe messages refused locally (consent: enforce) for want of the user's consent",
            self.refusals.clone(),
        );
    }

    /// A message refused for want of consent.
    pub fn refused(&self, app_id: &str, template_key: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                app_id: app_id.into(),
                template_key: template_key.into(),
            })
            .inc();
    }

    /// Refusals so far (tests).
    pub fn refusals(&self, app_id: &str, template_key: &str) -> u64 {
        self.refusals
            .get_or_create(&RefusalLabels {
                app_id: app_id.into(),
                template_key: template_key.into(),
            })
            .get()
    }
}
