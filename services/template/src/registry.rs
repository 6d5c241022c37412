//! The template store. Every write names the version it read
//! (`expected_version`, 0 to create) so two operators editing the same
//! template cannot silently overwrite each other: the stale write is ABORTED.

use crate::error::TemplateError;
use crate::spec::check;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::RwLock;
use wxpush_proto::timestamp;
use wxpush_proto::v1::Template;

/// In-memory registry, shared by the gRPC handlers.
#[derive(Clone, Default)]
pub struct TemplateRegistry {
    templates: Arc<RwLock<BTreeMap<String, Template>>>,
}

impl TemplateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds templates (from the templates file at start-up), replacing any
    /// with the same key.
    pub async fn seed(&self, templates: Vec<Template>) -> Result<(), TemplateError> {
        let mut map = self.templates.write().await;
        for mut t in templates {
            check(&t)?;
            t.version = map.get(&t.key).map_or(1, |old| old.version + 1);
            t.updated_at = Some(timestamp(SystemTime::now()));
            map.insert(t.key.clone(), t);
        }
        Ok(())
    }

    /// Creates (`expected_version` 0) or replaces (the current version) a
    /// template; returns it with its new version.
    pub async fn upsert(
        &self,
        mut t: Template,
        expected_version: u64,
    ) -> Result<Template, TemplateError> {
        check(&t)?;
        let mut map = self.templates.write().await;
        let actual = map.get(&t.key).map_or(0, |old| old.version);
        if expected_version == 0 && actual != 0 {
            return Err(TemplateError::AlreadyExists(t.key));
        }
        if actual != expected_version {
            return Err(TemplateError::VersionConflict {
                key: t.key,
                expected: expected_version,
                actual,
            });
        }
        t.version = actual + 1;
        t.updated_at = Some(timestamp(SystemTime::now()));
        map.insert(t.key.clone(), t.clone());
        Ok(t)
    }

    /// One template by key.
    pub async fn get(&self, key: &str) -> Result<Template, TemplateError> {
        self.templates
            .read()
            .await
            .get(key)
            .cloned()
            .ok_or_else(|| TemplateError::NotFound(key.to_string()))
    }

    /// All templates, or one app's, ordered by key.
    pub async fn list(&self, app_id: Option<&str>) -> Vec<Template> {
        self.templates
            .read()
            .await
            .values()
            .filter(|t| app_id.is_none_or(|a| t.app_id == a))
            .cloned()
            .collect()
    }

    /// Deletes a template; a non-zero `expected_version` must match.
    pub async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError> {
        let mut map = self.templates.write().await;
        let actual = map
            .get(key)
            .map(|t| t.version)
            .ok_or_else(|| TemplateError::NotFound(key.to_string()))?;
        if expected_version != 0 && expected_version != actual {
            return Err(TemplateError::VersionConflict {
                key: key.to_string(),
                expected: expected_version,
                actual,
            });
        }
        map.remove(key);
        Ok(())
    }
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
    async fn optimistic_concurrency() {
        let r = TemplateRegistry::new();
        let v1 = r.upsert(tpl("a"), 0).await.unwrap();
        assert_eq!(v1.version, 1);
        assert!(matches!(
            r.upsert(tpl("a"), 0).await,
            Err(TemplateError::AlreadyExists(_))
        ));
        let v2 = r.upsert(tpl("a"), 1).await.unwrap();
        assert_eq!(v2.version, 2);
        assert!(matches!(
            r.upsert(tpl("a"), 1).await,
            Err(TemplateError::VersionConflict { actual: 2, .. })
        ));
        assert!(matches!(
            r.delete("a", 1).await,
            Err(TemplateError::VersionConflict { .. })
        ));
        r.delete("a", 2).await.unwrap();
        assert!(matches!(r.get("a").await, Err(TemplateError::NotFound(_))));
    }
}
