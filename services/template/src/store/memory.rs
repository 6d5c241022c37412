//! The in-process backend: one mutex over two maps, so every compare-and-set
//! is trivially atomic. Lost on restart; for `wxpush dev` and one replica.

use super::{TemplateStore, version_error};
use crate::error::TemplateError;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use wxpush_proto::v1::{Template, WechatTemplate};

/// Templates by key and synced WeChat templates by app, in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    templates: BTreeMap<String, Template>,
    wechat: HashMap<String, Vec<WechatTemplate>>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written map
        // (every write is one insert or remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl TemplateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Template>, TemplateError> {
        Ok(self.lock().templates.get(key).cloned())
    }

    async fn list(&self, app_id: Option<&str>) -> Result<Vec<Template>, TemplateError> {
        Ok(self
            .lock()
            .templates
            .values()
            .filter(|t| app_id.is_none_or(|a| t.app_id == a))
            .cloned()
            .collect())
    }

    async fn put(&self, t: &Template, expected_version: u64) -> Result<(), TemplateError> {
        let mut inner = self.lock();
        let actual = inner.templates.get(&t.key).map_or(0, |old| old.version);
        if actual != expected_version {
            return Err(version_error(&t.key, expected_version, actual));
        }
        inner.templates.insert(t.key.clone(), t.clone());
        Ok(())
    }

    async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError> {
        let mut inner = self.lock();
        let actual = inner
            .templates
            .get(key)
            .map(|t| t.version)
            .ok_or_else(|| TemplateError::NotFound(key.to_string()))?;
        if expected_version != 0 && expected_version != actual {
            return Err(version_error(key, expected_version, actual));
        }
        inner.templates.remove(key);
        Ok(())
    }

    async fn wechat_templates(
        &self,
        app_id: &str,
    ) -> Result<Option<Vec<WechatTemplate>>, TemplateError> {
        Ok(self.lock().wechat.get(app_id).cloned())
    }

    async fn set_wechat_templates(
        &self,
        app_id: &str,
        templates: &[WechatTemplate],
    ) -> Result<(), TemplateError> {
        self.lock()
            .wechat
            .insert(app_id.to_string(), templates.to_vec());
        Ok(())
    }

    /// The process's own memory cannot lose data without the process.
    async fn epoch(&self) -> Result<Option<String>, TemplateError> {
        Ok(Some("memory".into()))
    }

    async fn claim_epoch(&self, _: &str) -> Result<String, TemplateError> {
        Ok("memory".into())
    }
}
