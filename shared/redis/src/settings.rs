//! What a Redis must be set to for wxpush's promises to hold, checked by
//! every service at start-up (`INFO memory`, `INFO persistence`):
//!
//! - `maxmemory-policy noeviction`, or Redis may evict the queue, a token or
//!   a message's status under memory pressure and lose messages silently.
//!   Anything else is refused: the service does not start, and says which
//!   setting to change.
//! - an append-only file (`appendonly yes`, with `appendfsync always` for
//!   the README's durability contract), or an acknowledged `SendAsync` is
//!   lost when Redis restarts. Without one the service warns and starts
//!   (development, and deployments that chose so knowingly).
//!
//! A Redis that cannot be asked (down at start-up, or `INFO` not allowed
//! by the deployment's ACL) is a warning: services start without Redis and
//! reconnect by themselves.

use crate::Connection;
use redis::Value;

/// The settings read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub maxmemory_policy: String,
    pub aof_enabled: bool,
}

/// Why a service will not use this Redis.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "Redis maxmemory-policy is {0}: under memory pressure Redis would evict wxpush's queue, tokens and statuses and lose messages; set it to noeviction (CONFIG SET maxmemory-policy noeviction, and `maxmemory-policy noeviction` in redis.conf)"
)]
pub struct Refused(pub String);

impl ServerSettings {
    /// Reads the settings (`INFO memory` and `INFO persistence`); on a
    /// cluster, of every master, keeping the worst of each.
    pub async fn read(conn: &Connection) -> Result<Self, redis::RedisError> {
        let memory = info(conn, "memory").await?;
        let persistence = info(conn, "persistence").await?;
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let policies: Vec<String> = memory
            .iter()
            .map(|m| field(m, "maxmemory_policy"))
            .collect();
        Ok(Self {
            maxmemory_policy: policies
                .iter()
                .find(|p| *p != "noeviction")
                .or(policies.first())
                .cloned()
                .unwrap_or_default(),
            aof_enabled: !persistence.is_empty()
                && persistence.iter().all(|p| field(p, "aof_enabled") == "1"),
        })
    }

    /// Refused, or fine with the warnings to log.
    pub fn verdict(&self) -> Result<Vec<String>, Refused> {
        if self.maxmemory_policy != "noeviction" {
            return Err(Refused(self.maxmemory_policy.clone()));
        }
        let mut warnings = Vec::new();
        if !self.aof_enabled {
            warnings.push(
                "Redis keeps no append-only file (appendonly no): an acknowledged SendAsync and the queue are lost when Redis restarts; set appendonly yes and appendfsync always (README, durability)".to_string(),
            );
        }
        Ok(warnings)
    }
}

/// `INFO section` of each node answering: one text from a node, one per
/// master from a cluster (a map of node to text).
async fn info(conn: &Connection, section: &str) -> Result<Vec<String>, redis::RedisError> {
    let reply: Value = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn.clone())
        .await?;
    fn texts(v: Value, out: &mut Vec<String>) {
        match v {
            Value::BulkString(b) => out.push(String::from_utf8_lossy(&b).into_owned()),
            Value::VerbatimString { text, .. } | Value::SimpleString(text) => out.push(text),
            Value::Map(pairs) => pairs.into_iter().for_each(|(_, v)| texts(v, out)),
            Value::Array(items) => items.into_iter().for_each(|v| texts(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    texts(reply, &mut out);
    if out.is_empty() {
        // A node refused (an ACL without INFO) or none answered.
        return Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "INFO answered no text",
        )));
    }
    Ok(out)
}

/// The start-up check: refuses a Redis that evicts, warns about one that
/// does not persist, and only warns when Redis cannot be asked.
pub async fn check_at_start(url: &str) -> Result<(), Refused> {
    let conn = match crate::connect(url, crate::Timeouts::Commands) {
        Ok(c) => c,
        // A bad URL fails the build already, with its own error.
        Err(_) => return Ok(()),
    };
    match ServerSettings::read(&conn).await {
        Ok(settings) => {
            for warning in settings.verdict()? {
                tracing::warn!("{warning}");
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not check Redis's maxmemory-policy and persistence at start-up (INFO memory / persistence); wxpush needs maxmemory-policy noeviction");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_is_refused_and_no_persistence_is_a_warning() {
        let evicting = ServerSettings {
            maxmemory_policy: "allkeys-lru".into(),
            aof_enabled: true,
        };
        let refused = evicting.verdict().unwrap_err();
        assert!(refused.to_string().contains("noeviction"), "{refused}");
        let volatile = ServerSettings {
            maxmemory_policy: "noeviction".into(),
            aof_enabled: false,
        };
        assert!(volatile.verdict().unwrap()[0].contains("appendonly yes"));
        let good = ServerSettings {
            maxmemory_policy: "noeviction".into(),
            aof_enabled: true,
        };
        assert!(good.verdict().unwrap().is_empty());
    }
}
