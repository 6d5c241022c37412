//! The PostgreSQL backend (schema in `migrations/0001_templates.sql`):
//! templates survive anything the database survives, every version is
//! kept in `template_versions` by a trigger, and each change is announced
//! on `wxpush_templates` as it commits.
//!
//! A versioned write is one statement whose `WHERE` names the version it
//! expects (`INSERT ... ON CONFLICT DO NOTHING` to create), so the compare
//! and the set are one atomic step, as the Lua scripts are on Redis.

use super::{Revision, RevisionPage, StoredWechatTemplates, TemplateStore, version_error};
use crate::error::TemplateError;
use async_trait::async_trait;
use prost::Message;
use wxpush_postgres::{Micros, Migration, Migrations, Pool};
use wxpush_proto::v1::{Template, TemplateChange, WechatTemplate};

/// The registry's schema history.
pub const MIGRATIONS: Migrations = Migrations {
    component: "template",
    steps: &[Migration {
        version: 1,
        name: "templates, their versions and synced WeChat templates",
        sql: include_str!("../../migrations/0001_templates.sql"),
    }],
};

/// The channel every template change is announced on (payload: its key).
pub const CHANGES_CHANNEL: &str = "wxpush_templates";

impl From<wxpush_postgres::PgError> for TemplateError {
    fn from(e: wxpush_postgres::PgError) -> Self {
        Self::Backend(wxpush_postgres::describe(&e))
    }
}

impl From<wxpush_postgres::PoolError> for TemplateError {
    fn from(e: wxpush_postgres::PoolError) -> Self {
        Self::Backend(wxpush_postgres::describe_pool(&e))
    }
}

/// Longest one operation may take: a stalled database becomes an error the
/// registry answers from its last-known copies (as with Redis's timeouts).
const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `op` within [`OPERATION_TIMEOUT`].
async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, TemplateError>>,
) -> Result<T, TemplateError> {
    wxpush_postgres::bounded(OPERATION_TIMEOUT, op, TemplateError::Backend).await
}

/// Templates in PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

fn decode(bytes: &[u8]) -> Result<Template, TemplateError> {
    Template::decode(bytes).map_err(|e| TemplateError::Corrupt(e.to_string()))
}

impl PostgresStore {
    /// A store on `url`, dialled on first use; the schema is applied by
    /// the service's start-up step ([`MIGRATIONS`]).
    pub fn open(url: &str) -> Result<Self, TemplateError> {
        let pool = wxpush_postgres::open(url, "wxpush-template", 8)
            .map_err(|e| TemplateError::Backend(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The stored version of `key`, 0 when absent.
    async fn version_of(&self, key: &str) -> Result<u64, TemplateError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT version FROM templates WHERE key = $1", &[&key])
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }
}

#[async_trait]
impl TemplateStore for PostgresStore {
    async fn get(&self, key: &str) -> Result<Option<Template>, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt("SELECT body FROM templates WHERE key = $1", &[&key])
                .await?;
            row.map(|r| decode(r.get(0))).transpose()
        })
        .await
    }

    async fn list(&self, app_id: Option<&str>) -> Result<Vec<Template>, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT body FROM templates WHERE $1::text IS NULL OR app_id = $1 ORDER BY key",
                    &[&app_id],
                )
                .await?;
            rows.iter().map(|r| decode(r.get(0))).collect()
        })
        .await
    }

    async fn put(&self, t: &Template, expected_version: u64) -> Result<(), TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let body = t.encode_to_vec();
            let version = t.version as i64;
            let written =
                if expected_version == 0 {
                    client
                    .execute(
                        "INSERT INTO templates (key, app_id, version, body) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO NOTHING",
                        &[&t.key, &t.app_id, &version, &body],
                    )
                    .await?
                } else {
                    client
                    .execute(
                        "UPDATE templates SET app_id = $2, version = $3, body = $4, updated_at = now() \
                         WHERE key = $1 AND version = $5",
                        &[&t.key, &t.app_id, &version, &body, &(expected_version as i64)],
                    )
                    .await?
                };
            if written == 1 {
                return Ok(());
            }
            let actual = self.version_of(&t.key).await?;
            Err(version_error(&t.key, expected_version, actual))
        })
        .await
    }

    async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let deleted = client
                .execute(
                    "DELETE FROM templates WHERE key = $1 AND ($2::bigint = 0 OR version = $2::bigint)",
                    &[&key, &(expected_version as i64)],
                )
                .await?;
            if deleted == 1 {
                return Ok(());
            }
            match self.version_of(key).await? {
                0 => Err(TemplateError::NotFound(key.to_string())),
                actual => Err(version_error(key, expected_version, actual)),
            }
        })
        .await
    }

    async fn wechat_templates(
        &self,
        app_id: &str,
    ) -> Result<Option<Vec<WechatTemplate>>, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT body FROM wechat_templates WHERE app_id = $1",
                    &[&app_id],
                )
                .await?;
            row.map(|r| StoredWechatTemplates::decode_templates(r.get(0)))
                .transpose()
        })
        .await
    }

    async fn set_wechat_templates(
        &self,
        app_id: &str,
        templates: &[WechatTemplate],
    ) -> Result<(), TemplateError> {
        bounded(async {
            let body = StoredWechatTemplates::encode_templates(templates);
            let client = self.pool.get().await?;
            client
                .execute(
                    "INSERT INTO wechat_templates (app_id, body) VALUES ($1, $2) \
                     ON CONFLICT (app_id) DO UPDATE SET body = EXCLUDED.body, synced_at = now()",
                    &[&app_id, &body],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn epoch(&self) -> Result<Option<String>, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT value FROM template_registry WHERE name = 'epoch'",
                    &[],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn claim_epoch(&self, proposed: &str) -> Result<String, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "INSERT INTO template_registry (name, value) VALUES ('epoch', $1) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&proposed],
                )
                .await?;
            Ok(self.epoch().await?.unwrap_or_else(|| proposed.to_string()))
        })
        .await
    }

    async fn revisions(
        &self,
        key: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Option<RevisionPage>, TemplateError> {
        bounded(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT id, change, body, changed_at FROM template_versions \
                     WHERE key = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    &[&key, &before.unwrap_or(i64::MAX), &(limit as i64 + 1)],
                )
                .await?;
            let mut page = RevisionPage::default();
            for row in rows.iter().take(limit) {
                let change: &str = row.get(1);
                page.revisions.push(Revision {
                    id: row.get(0),
                    template: decode(row.get(2))?,
                    change: if change == "delete" {
                        TemplateChange::Delete
                    } else {
                        TemplateChange::Put
                    },
                    changed_at_micros: row.get::<_, Micros>(3).0,
                });
            }
            if rows.len() > limit {
                page.more = true;
            }
            Ok(Some(page))
        })
        .await
    }
}
