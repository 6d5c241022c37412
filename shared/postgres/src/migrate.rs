//! Versioned schema changes, embedded in the binaries and applied at start.
//!
//! Each component (logquery, template, delivery) owns a list of
//! [`Migration`]s. [`Migrations::apply`] runs the ones a database lacks, in
//! order, each in its own transaction with its row in
//! `wxpush_schema_migrations`, while holding one session advisory lock: two
//! replicas starting together never race, the second finds the work done.
//! An applied migration whose text has since changed is refused (edit by
//! adding a new version, never by rewriting an old one). A database that
//! is ahead of the binary (a newer replica migrated it) is accepted with a
//! warning: migrations only add, so older code keeps working during a
//! rolling upgrade.

use crate::{Pool, describe, describe_pool};

/// The advisory lock every migration run holds ("wxpush" in ASCII).
const LOCK_KEY: i64 = 0x7778_7075_7368;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in increasing order; never reused.
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A component's schema history.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub component: &'static str,
    pub steps: &'static [Migration],
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("PostgreSQL: {0}")]
    Database(String),
    #[error(
        "migration {component} {version} ({name}) was changed after it was applied; add a new migration instead"
    )]
    Changed {
        component: &'static str,
        version: i32,
        name: &'static str,
    },
    #[error("migration {component} {version} ({name}) failed: {reason}")]
    Failed {
        component: &'static str,
        version: i32,
        name: &'static str,
        reason: String,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(describe(&e))
    }
}

/// A stable checksum of a migration's text, so an edited migration is
/// noticed.
fn checksum(sql: &str) -> String {
    format!("{:016x}", crate::fnv1a(sql.as_bytes()))
}

impl Migrations {
    /// [`Self::apply`] on a connection of its own to `url`: the start-up
    /// step of a service (after `--check-config`, which dials nothing).
    pub async fn apply_at(&self, url: &str) -> Result<Vec<i32>, MigrateError> {
        let pool = crate::open(url, &format!("wxpush-{}-migrate", self.component), 1)
            .map_err(|e| MigrateError::Database(e.to_string()))?;
        self.apply(&pool).await
    }

    /// Applies what the database lacks; returns the versions applied now.
    pub async fn apply(&self, pool: &Pool) -> Result<Vec<i32>, MigrateError> {
        let mut client = pool
            .get()
            .await
            .map_err(|e| MigrateError::Database(describe_pool(&e)))?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await?;
        let result = self.apply_locked(&mut client).await;
        if client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await
            .is_err()
        {
            // Never hand a connection that may still hold the lock back to
            // the pool: closing it releases the lock.
            let _ = deadpool_postgres::Object::take(client);
        }
        result
    }

    async fn apply_locked(
        &self,
        client: &mut deadpool_postgres::Object,
    ) -> Result<Vec<i32>, MigrateError> {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS wxpush_schema_migrations (
                    component  text        NOT NULL,
                    version    integer     NOT NULL,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))",
            )
            .await?;
        let rows = client
            .query(
                "SELECT version, checksum FROM wxpush_schema_migrations WHERE component = $1",
                &[&self.component],
            )
            .await?;
        let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut now = Vec::new();
        for m in self.steps {
            match applied.iter().find(|(v, _)| *v == m.version) {
                Some((_, sum)) if *sum == checksum(m.sql) => continue,
                Some(_) => {
                    return Err(MigrateError::Changed {
                        component: self.component,
                        version: m.version,
                        name: m.name,
                    });
                }
                None => {}
            }
            let failed = |e: tokio_postgres::Error| MigrateError::Failed {
                component: self.component,
                version: m.version,
                name: m.name,
                reason: describe(&e),
            };
            let tx = client.transaction().await?;
            tx.batch_execute(m.sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO wxpush_schema_migrations (component, version, name, checksum)
                 VALUES ($1, $2, $3, $4)",
                &[&self.component, &m.version, &m.name, &checksum(m.sql)],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(
                component = self.component,
                version = m.version,
                name = m.name,
                "schema migration applied"
            );
            now.push(m.version);
        }
        let newest = self.steps.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some((ahead, _)) = applied.iter().filter(|(v, _)| *v > newest).max() {
            tracing::warn!(
                component = self.component,
                database = ahead,
                binary = newest,
                "the database schema is newer than this binary (a rolling upgrade?); going on"
            );
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_stable_and_see_edits() {
        assert_eq!(checksum("CREATE TABLE t ()"), checksum("CREATE TABLE t ()"));
        assert_ne!(
            checksum("CREATE TABLE t ()"),
            checksum("CREATE TABLE t ( )")
        );
        assert_eq!(checksum(""), "cbf29ce484222325");
    }
}
