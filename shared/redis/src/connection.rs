//! One connection type for one Redis node and for a Redis Cluster.
//!
//! `backend.redis_url` names either a node (`redis://[user:pass@]host:port/db`)
//! or a cluster (`redis-cluster://[user:pass@]host:port[,host:port...]`, any
//! of its nodes: the client learns the rest and follows slot moves). Every
//! store, queue and stream holds a [`Connection`] and sends the same
//! commands either way; what a cluster adds is a rule for key names, kept by
//! [`crate::partition`]: every key a script, transaction or pipeline touches
//! shares one hash tag.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// The scheme of a cluster URL.
pub const CLUSTER_SCHEME: &str = "redis-cluster://";

/// Where Redis is, read from a URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// One node (`redis://...`, `rediss://...`, `unix://...`).
    Node(String),
    /// A cluster: the node URLs to learn it from.
    Cluster(Vec<String>),
}

// Never printed: URLs may carry a password.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Node(_) => f.write_str("Endpoint::Node(..)"),
            Endpoint::Cluster(n) => write!(f, "Endpoint::Cluster({} seeds)", n.len()),
        }
    }
}

/// Why a URL names no Redis.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("a redis-cluster:// URL names at least one host:port")]
    NoNodes,
    #[error("a redis-cluster:// URL has no database number (a cluster has only database 0)")]
    Database,
}

impl Endpoint {
    /// Reads `url`; a node URL is checked later, by the client.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Endpoint::Node(url.to_string()));
        };
        // The credentials are the same for every node.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = match hosts.split_once('/') {
            Some((hosts, "")) => hosts,
            Some(_) => return Err(EndpointError::Database),
            None => hosts,
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}/"))
            .collect();
        if nodes.is_empty() {
            return Err(EndpointError::NoNodes);
        }
        Ok(Endpoint::Cluster(nodes))
    }

    /// Whether it names a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Endpoint::Cluster(_))
    }

    /// One node's URL: the node, or the cluster's first seed (Pub/Sub
    /// reaches every node of a cluster from any one of them).
    pub fn any_node(&self) -> &str {
        match self {
            Endpoint::Node(url) => url,
            Endpoint::Cluster(nodes) => &nodes[0],
        }
    }
}

/// Whether `url` names a Redis Cluster.
pub fn is_cluster(url: &str) -> bool {
    url.starts_with(CLUSTER_SCHEME)
}

/// A lazily connecting, self-healing connection to a node or a cluster.
/// Cheap to clone: clones share the sockets.
#[derive(Clone)]
pub enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Opens (without dialling) a connection to `endpoint` with these
    /// timeouts.
    pub(crate) fn open(
        endpoint: &Endpoint,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        match endpoint {
            Endpoint::Node(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_secs(1));
                let client = redis::Client::open(url.as_str())?;
                Ok(Connection::Node(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Endpoint::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(1_000)
                    .build()?;
                // The config's timeouts replace the builder's.
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                Ok(Connection::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// Whether it talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds_with_the_credentials() {
        assert_eq!(
            Endpoint::parse("redis-cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/").unwrap(),
            Endpoint::Cluster(vec![
                "redis://u:p@10.0.0.1:7000/".into(),
                "redis://u:p@10.0.0.2:7001/".into()
            ])
        );
        assert_eq!(
            Endpoint::parse("redis-cluster://h:1").unwrap(),
            Endpoint::Cluster(vec!["redis://h:1/".into()])
        );
        assert_eq!(
            Endpoint::parse("redis-cluster://h:1/2"),
            Err(EndpointError::Database)
        );
        assert_eq!(
            Endpoint::parse("redis-cluster://"),
            Err(EndpointError::NoNodes)
        );
        let node = Endpoint::parse("redis://h:1/3").unwrap();
        assert!(!node.is_cluster());
        assert_eq!(node.any_node(), "redis://h:1/3");
        assert!(
            !format!("{:?}", Endpoint::parse("redis://u:secret@h/").unwrap()).contains("secret")
        );
    }
}
