//! Where templates live: one async trait, [`TemplateStore`], with a
//! [`memory`] backend (one process, `wxpush dev`), a [`redis`] backend
//! (shared by replicas, survives restarts) and a [`postgres`] one (durable,
//! with every version kept), chosen by `backend.kind`.
//!
//! A store only knows versions: a write names the version it read and lands
//! only if that is still the stored one, atomically (a mutex in memory, a Lua
//! script in Redis). Checks, binding to WeChat templates and retries live in
//! the [`crate::registry::TemplateRegistry`] above, once for both backends.

pub mod memory;
pub mod postgres;
pub mod redis;

use crate::error::TemplateError;
use async_trait::async_trait;
use std::sync::Arc;
use wxpush_proto::v1::{Template, TemplateChange, WechatTemplate};
use wxpush_server::config::{BackendKind, BackendSettings};

/// Storage of business templates and of each app's synced WeChat templates.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// One template by key, `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Template>, TemplateError>;

    /// All templates, or one app's, ordered by key.
    async fn list(&self, app_id: Option<&str>) -> Result<Vec<Template>, TemplateError>;

    /// Stores `t` (whose `version` the caller set to `expected_version + 1`)
    /// if the stored version is `expected_version` (0: absent). Otherwise
    /// [`TemplateError::AlreadyExists`] (a create found the key taken) or
    /// [`TemplateError::VersionConflict`] with the stored version.
    async fn put(&self, t: &Template, expected_version: u64) -> Result<(), TemplateError>;

    /// Removes a template; a non-zero `expected_version` must be the stored
    /// one. [`TemplateError::NotFound`] when absent.
    async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError>;

    /// The app's WeChat templates as last synced; `None` if never synced
    /// (then validation falls back to each template's own content).
    async fn wechat_templates(
        &self,
        app_id: &str,
    ) -> Result<Option<Vec<WechatTemplate>>, TemplateError>;

    /// Replaces the app's synced WeChat templates.
    async fn set_wechat_templates(
        &self,
        app_id: &str,
        templates: &[WechatTemplate],
    ) -> Result<(), TemplateError>;

    /// The store's epoch: a marker written once per life of its data, so
    /// `None` (or a new value) tells a replica the data was lost since it
    /// last looked (a Redis restarted empty, a failover to an empty replica).
    async fn epoch(&self) -> Result<Option<String>, TemplateError>;

    /// Sets the epoch to `proposed` unless another replica set one first;
    /// returns the epoch now stored.
    async fn claim_epoch(&self, proposed: &str) -> Result<String, TemplateError>;

    /// Up to `limit` revisions of `key`, newest first, older than the one
    /// numbered `before`; `None` when this backend keeps no history.
    async fn revisions(
        &self,
        _key: &str,
        _limit: usize,
        _before: Option<i64>,
    ) -> Result<Option<RevisionPage>, TemplateError> {
        Ok(None)
    }
}

/// One stored change of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Increasing with time; the page cursor.
    pub id: i64,
    pub template: Template,
    pub change: TemplateChange,
    pub changed_at_micros: i64,
}

/// A page of revisions.
#[derive(Debug, Default)]
pub struct RevisionPage {
    pub revisions: Vec<Revision>,
    /// Whether older revisions remain.
    pub more: bool,
}

/// The synced WeChat templates of one app, as one stored value (both
/// shared backends).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StoredWechatTemplates {
    #[prost(message, repeated, tag = "1")]
    pub templates: Vec<WechatTemplate>,
}

impl StoredWechatTemplates {
    /// The stored bytes of an app's synced templates.
    pub fn encode_templates(templates: &[WechatTemplate]) -> Vec<u8> {
        use prost::Message;
        Self {
            templates: templates.to_vec(),
        }
        .encode_to_vec()
    }

    /// The templates in bytes written by [`Self::encode_templates`].
    pub fn decode_templates(bytes: &[u8]) -> Result<Vec<WechatTemplate>, TemplateError> {
        use prost::Message;
        Self::decode(bytes)
            .map(|s| s.templates)
            .map_err(|e| TemplateError::Corrupt(e.to_string()))
    }
}

/// Opens the backend `settings` name (Redis: connects now, so a wrong URL
/// fails start-up rather than the first call; PostgreSQL: lazily, its
/// schema applied by the service's start-up step).
pub async fn open(settings: &BackendSettings) -> Result<Arc<dyn TemplateStore>, TemplateError> {
    Ok(match settings.kind {
        BackendKind::Memory => Arc::new(memory::MemoryStore::default()),
        BackendKind::Redis => {
            Arc::new(redis::RedisStore::connect(&settings.redis_url, &settings.key_prefix).await?)
        }
        BackendKind::Postgres => Arc::new(postgres::PostgresStore::open(
            settings
                .postgres_url()
                .map_err(TemplateError::FailedPrecondition)?,
        )?),
    })
}

/// The error for a write whose `expected_version` is not the stored one,
/// the same on every backend.
pub(crate) fn version_error(key: &str, expected: u64, actual: u64) -> TemplateError {
    if expected == 0 {
        TemplateError::AlreadyExists(key.to_string())
    } else {
        TemplateError::VersionConflict {
            key: key.to_string(),
            expected,
            actual,
        }
    }
}
