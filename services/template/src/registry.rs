//! The template registry over a [`TemplateStore`]. Every write names the
//! version it read (`expected_version`, 0 to create) so two operators editing
//! the same template cannot silently overwrite each other: the stale write is
//! ABORTED. Checks and the binding of a business template to its app's synced
//! WeChat template happen here, once, whatever the backend.

use crate::error::TemplateError;
use crate::recovery::{Epoch, LastKnown, new_epoch};
use crate::spec::check;
use crate::store::{self, TemplateStore, memory::MemoryStore};
use std::sync::Arc;
use std::time::SystemTime;
use wxpush_proto::timestamp;
use wxpush_proto::v1::{Template, WechatTemplate};
use wxpush_server::config::BackendSettings;

/// How often a read-modify-write (seeding, sync) retries when another
/// writer got in between; each retry re-reads, so a few are plenty.
const CAS_ATTEMPTS: usize = 8;

/// The registry the gRPC handlers share; cheap to clone.
#[derive(Clone)]
pub struct TemplateRegistry {
    store: Arc<dyn TemplateStore>,
    /// Copies that outlive the store's data (see [`crate::recovery`]).
    known: Arc<LastKnown>,
}

impl Default for TemplateRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateRegistry {
    /// An empty in-memory registry (`wxpush dev`, tests).
    pub fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore::default()))
    }

    /// A registry over any store, e.g. a [`store::redis::RedisStore`].
    pub fn with_store(store: Arc<dyn TemplateStore>) -> Self {
        Self {
            store,
            known: Arc::default(),
        }
    }

    /// A registry on the backend the configuration names.
    pub async fn open(settings: &BackendSettings) -> Result<Self, TemplateError> {
        Ok(Self::with_store(store::open(settings).await?))
    }

    /// Seeds templates from the templates file at start-up: a new key is
    /// created, a changed one replaced (new version), an unchanged one left
    /// alone, so restarting replicas on a shared Redis do not bump versions.
    pub async fn seed(&self, templates: Vec<Template>) -> Result<(), TemplateError> {
        self.known.set_seed(&templates);
        self.write_seed(templates).await?;
        self.recover_if_lost().await?;
        for t in self.store.list(None).await? {
            self.known.keep(&t);
        }
        Ok(())
    }

    async fn write_seed(&self, templates: Vec<Template>) -> Result<(), TemplateError> {
        for t in templates {
            let t = self.bind(t, None).await?;
            check(&t)?;
            self.write_with_retry(&t.key.clone(), |current| match current {
                Some(cur) if same_definition(cur, &t) => None,
                _ => Some(t.clone()),
            })
            .await?;
        }
        Ok(())
    }

    /// Creates (`expected_version` 0) or replaces (the current version) a
    /// template; returns it with its new version.
    pub async fn upsert(
        &self,
        t: Template,
        expected_version: u64,
    ) -> Result<Template, TemplateError> {
        // A key that cannot be stored is refused before the store is asked.
        let mut v = Vec::new();
        crate::spec::check_key("template.key", &t.key, &mut v);
        if !v.is_empty() {
            return Err(TemplateError::InvalidArgument(v));
        }
        let previous = self.store.get(&t.key).await?;
        let mut t = self.bind(t, previous.as_ref()).await?;
        check(&t)?;
        stamp(&mut t, expected_version);
        self.store.put(&t, expected_version).await?;
        self.known.keep(&t);
        Ok(t)
    }

    /// One template by key. A key the store no longer has but this replica
    /// knew triggers the loss check (and a rebuild); a store that cannot
    /// answer is stood in for by the last-known copy.
    pub async fn get(&self, key: &str) -> Result<Template, TemplateError> {
        if !crate::spec::is_key(key) {
            return Err(TemplateError::NotFound(key.to_string()));
        }
        match self.store.get(key).await {
            Ok(Some(t)) => {
                self.known.keep(&t);
                Ok(t)
            }
            Ok(None) => {
                if self.known.get(key).is_some()
                    && self.recover_if_lost().await?
                    && let Some(t) = self.store.get(key).await?
                {
                    return Ok(t);
                }
                self.known.forget(key);
                Err(TemplateError::NotFound(key.to_string()))
            }
            Err(e @ TemplateError::Backend(_)) => self.known.get(key).ok_or(e).inspect(|_| {
                tracing::warn!(
                    key,
                    "template store unreachable; serving the last-known copy"
                )
            }),
            Err(e) => Err(e),
        }
    }

    /// All templates, or one app's, ordered by key (the last-known copies
    /// while the store cannot answer).
    pub async fn list(&self, app_id: Option<&str>) -> Result<Vec<Template>, TemplateError> {
        let mut v = Vec::new();
        wxpush_server::status::no_control(&mut v, "app_id", app_id.unwrap_or_default());
        if !v.is_empty() {
            return Err(TemplateError::InvalidArgument(v));
        }
        match self.store.list(app_id).await {
            Ok(all) => {
                for t in &all {
                    self.known.keep(t);
                }
                Ok(all)
            }
            Err(e @ TemplateError::Backend(_)) => {
                let copies = self.known.list(app_id);
                if copies.is_empty() {
                    return Err(e);
                }
                tracing::warn!("template store unreachable; listing the last-known copies");
                Ok(copies)
            }
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` revisions of `key`, newest first, before the one
    /// numbered `before`; FAILED_PRECONDITION on a backend that keeps none.
    pub async fn revisions(
        &self,
        key: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<store::RevisionPage, TemplateError> {
        if !crate::spec::is_key(key) {
            return Err(TemplateError::NotFound(key.to_string()));
        }
        self.store
            .revisions(key, limit, before)
            .await?
            .ok_or_else(|| {
                TemplateError::FailedPrecondition(
                "template revisions are kept only by the postgres backend (backend.kind: postgres)"
                    .into(),
            )
            })
    }

    /// Deletes a template; a non-zero `expected_version` must match.
    pub async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError> {
        if !crate::spec::is_key(key) {
            return Err(TemplateError::NotFound(key.to_string()));
        }
        self.store.delete(key, expected_version).await?;
        self.known.forget(key);
        Ok(())
    }

    /// Whether the store lost its data since this replica last looked, and
    /// if so the rebuild: the templates file again, and this replica's
    /// copies of the others. Returns whether anything was rebuilt. Cheap
    /// when nothing was lost (one GET); run every second by the watchdog
    /// and on a read that misses a known template.
    pub async fn recover_if_lost(&self) -> Result<bool, TemplateError> {
        if self.known.look(self.store.as_ref()).await? == Epoch::Same {
            return Ok(false);
        }
        let _one = self.known.rebuild_guard().await;
        let seeded = match self.known.look(self.store.as_ref()).await? {
            Epoch::Same => return Ok(false),
            Epoch::Lost => {
                let seed = self.known.seed();
                let n = seed.len();
                self.write_seed(seed).await?;
                n
            }
            Epoch::Rebuilt(_) => 0,
        };
        let mut restored = 0;
        for mut t in self.known.beyond_seed() {
            stamp(&mut t, 0);
            match self.store.put(&t, 0).await {
                Ok(()) => restored += 1,
                Err(TemplateError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let epoch = self.store.claim_epoch(&new_epoch()).await?;
        self.known.saw(epoch);
        tracing::warn!(
            seeded,
            restored,
            "the template store had lost its data; rebuilt it from the templates file and this replica's last-known copies"
        );
        Ok(true)
    }

    /// The app's synced WeChat templates, `None` if never synced.
    pub async fn wechat_templates(
        &self,
        app_id: &str,
    ) -> Result<Option<Vec<WechatTemplate>>, TemplateError> {
        self.store.wechat_templates(app_id).await
    }

    /// Replaces the app's synced WeChat templates (after a sync).
    pub async fn set_wechat_templates(
        &self,
        app_id: &str,
        templates: &[WechatTemplate],
    ) -> Result<(), TemplateError> {
        self.store.set_wechat_templates(app_id, templates).await
    }

    /// Read-modify-write of one template under optimistic concurrency:
    /// `change` gets the current template and returns the new one, or
    /// `None` to leave it. Retries when another writer got in between.
    /// Returns whether a write happened.
    pub async fn write_with_retry(
        &self,
        key: &str,
        change: impl Fn(Option<&Template>) -> Option<Template>,
    ) -> Result<bool, TemplateError> {
        let mut last = None;
        for _ in 0..CAS_ATTEMPTS {
            let current = self.store.get(key).await?;
            let Some(mut next) = change(current.as_ref()) else {
                return Ok(false);
            };
            let expected = current.as_ref().map_or(0, |c| c.version);
            stamp(&mut next, expected);
            match self.store.put(&next, expected).await {
                Ok(()) => return Ok(true),
                Err(
                    e @ (TemplateError::VersionConflict { .. } | TemplateError::AlreadyExists(_)),
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Fills the WeChat side of a template: from the app's synced WeChat
    /// template when the app was synced (flagging a template id WeChat does
    /// not have), else keeps what the caller sent, else what was stored.
    async fn bind(
        &self,
        mut t: Template,
        previous: Option<&Template>,
    ) -> Result<Template, TemplateError> {
        match self.store.wechat_templates(&t.app_id).await? {
            Some(synced) => match synced.iter().find(|w| w.template_id == t.template_id) {
                Some(w) => {
                    t.wechat_content = w.content.clone();
                    t.title = w.title.clone();
                    t.wechat_template_missing = false;
                }
                None => t.wechat_template_missing = true,
            },
            None => {
                if let Some(p) = previous.filter(|p| p.template_id == t.template_id) {
                    if t.wechat_content.is_empty() {
                        t.wechat_content = p.wechat_content.clone();
                    }
                    if t.title.is_empty() {
                        t.title = p.title.clone();
                    }
                }
                t.wechat_template_missing = false;
            }
        }
        Ok(t)
    }
}

/// Sets the version a write produces and its time.
fn stamp(t: &mut Template, expected_version: u64) {
    t.version = expected_version + 1;
    t.updated_at = Some(timestamp(SystemTime::now()));
}

/// Equal apart from version and time.
fn same_definition(a: &Template, b: &Template) -> bool {
    let strip = |t: &Template| Template {
        version: 0,
        updated_at: None,
        ..t.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_proto::v1::MessageKind;

    fn tpl(key: &str) -> Template {
        Template {
            key: key.into(),
            app_id: "wx1".into(),
            kind: MessageKind::Template as i32,
            template_id: "T1".into(),
            fields: [("keyword1".to_string(), "{{a}}".to_string())].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn seeding_the_same_file_twice_keeps_the_version() {
        let r = TemplateRegistry::new();
        r.seed(vec![tpl("a")]).await.unwrap();
        r.seed(vec![tpl("a")]).await.unwrap();
        assert_eq!(r.get("a").await.unwrap().version, 1);
        let changed = Template {
            url: "https://e.com".into(),
            ..tpl("a")
        };
        r.seed(vec![changed]).await.unwrap();
        assert_eq!(r.get("a").await.unwrap().version, 2);
    }

    #[tokio::test]
    async fn upsert_binds_to_the_synced_wechat_template() {
        let r = TemplateRegistry::new();
        r.set_wechat_templates(
            "wx1",
            &[WechatTemplate {
                template_id: "T1".into(),
                title: "标题".into(),
                content: "{{keyword1.DATA}}".into(),
                fields: vec!["keyword1".into()],
            }],
        )
        .await
        .unwrap();
        let t = r.upsert(tpl("a"), 0).await.unwrap();
        assert_eq!(t.wechat_content, "{{keyword1.DATA}}");
        assert_eq!(t.title, "标题");
        assert!(!t.wechat_template_missing);
        let other = Template {
            template_id: "GONE".into(),
            ..tpl("b")
        };
        assert!(r.upsert(other, 0).await.unwrap().wechat_template_missing);
    }
}
