//! One way to open Redis for every wxpush crate.
//!
//! Every store, queue and stream talks to Redis through a [`Connection`]
//! opened here (one node, or a Redis Cluster: [`connection`]), so they all
//! share one behaviour:
//!
//! - **lazy**: nothing is dialled until the first command, so a service
//!   starts (and `--check-config` runs) without Redis, and serves
//!   `UNAVAILABLE` until Redis is there instead of exiting;
//! - **bounded**: a dial gives up after [`CONNECT_TIMEOUT`] and a command
//!   after its [`Timeouts`] profile, so a stalled Redis turns into an error
//!   within a caller's deadline, never a hang;
//! - **self-healing**: a broken connection is replaced on the next command
//!   (jittered exponential backoff; on a cluster, slots are learnt again
//!   after a node moved or failed over).
//!
//! Why a crate of its own: before it, seven call sites opened Redis with five
//! different settings (one with no timeouts at all).

pub mod acl;
pub mod connection;
pub mod partition;
pub mod settings;

pub use connection::{Connection, Endpoint, is_cluster};
pub use partition::Partitions;
pub use settings::check_at_start;

use std::time::Duration;

pub use redis::{Client, RedisError};

/// Longest wait for a TCP connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a command may take, by what the connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeouts {
    /// Point reads and writes on the hot path (tokens, queue, statuses).
    Commands,
    /// Scripts and pipelines over many keys (log ingestion and queries).
    Bulk,
    /// A connection that waits in `XREADGROUP ... BLOCK block`: its own
    /// connection, so the wait never holds up other commands.
    Blocking { block: Duration },
}

impl Timeouts {
    /// The response timeout of the profile.
    pub fn response(self) -> Duration {
        match self {
            Timeouts::Commands => Duration::from_secs(2),
            Timeouts::Bulk => Duration::from_secs(10),
            Timeouts::Blocking { block } => block + Duration::from_secs(2),
        }
    }
}

/// Why Redis could not be opened: the URL names no Redis.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid Redis URL: {0}")]
    Url(#[source] RedisError),
    #[error("invalid Redis URL: {0}")]
    Endpoint(#[from] connection::EndpointError),
}

/// A client for one node of `url` (the node, or a cluster's first seed),
/// checked but not connected. For Pub/Sub, which needs a connection of its
/// own; on a cluster a message published on any node reaches them all.
pub fn client(url: &str) -> Result<Client, OpenError> {
    Client::open(Endpoint::parse(url)?.any_node()).map_err(OpenError::Url)
}

/// A lazily connecting, reconnecting connection to `url` (a node or a
/// cluster) with the given command timeouts. Cheap to clone: clones share
/// the sockets.
pub fn connect(url: &str, timeouts: Timeouts) -> Result<Connection, OpenError> {
    Connection::open(&Endpoint::parse(url)?, CONNECT_TIMEOUT, timeouts.response())
        .map_err(OpenError::Url)
}

/// Runs an idempotent command (a read, a `SET` of a value that does not
/// depend on the old one) once more when the first try found the connection
/// dropped: after Redis restarted, the first command on the old socket fails
/// with "broken pipe" while the manager redials, and a read may safely be
/// asked again on the new one. Never for a write whose effect depends on
/// whether the first try landed (a version check, an increment, an XADD).
pub async fn idempotent<T: redis::FromRedisValue>(
    conn: &Connection,
    command: &impl Query,
) -> Result<T, RedisError> {
    match command.query_on(conn.clone()).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => {
            command.query_on(conn.clone()).await
        }
        answer => answer,
    }
}

/// A command or a pipeline, asked on a connection of its own.
pub trait Query {
    fn query_on<T: redis::FromRedisValue>(
        &self,
        conn: Connection,
    ) -> impl std::future::Future<Output = Result<T, RedisError>> + Send;
}

impl Query for redis::Cmd {
    async fn query_on<T: redis::FromRedisValue>(
        &self,
        mut conn: Connection,
    ) -> Result<T, RedisError> {
        self.query_async(&mut conn).await
    }
}

impl Query for redis::Pipeline {
    async fn query_on<T: redis::FromRedisValue>(
        &self,
        mut conn: Connection,
    ) -> Result<T, RedisError> {
        self.query_async(&mut conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_dialling() {
        assert!(connect("not a url", Timeouts::Commands).is_err());
        assert!(connect("http://127.0.0.1:1/", Timeouts::Commands).is_err());
        assert!(connect("redis-cluster:///", Timeouts::Commands).is_err());
    }

    #[tokio::test]
    async fn nothing_is_dialled_until_the_first_command() {
        // Port 1 on loopback: nothing listens there, yet opening succeeds.
        let mut conn = connect("redis://127.0.0.1:1/", Timeouts::Commands).expect("lazy");
        let r: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        assert!(r.is_err(), "{r:?}");
        let mut cluster = connect("redis-cluster://127.0.0.1:1", Timeouts::Commands).expect("lazy");
        let r: Result<String, _> = redis::cmd("PING").query_async(&mut cluster).await;
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn a_blocking_connection_outwaits_its_block() {
        let t = Timeouts::Blocking {
            block: Duration::from_secs(1),
        };
        assert!(t.response() > Duration::from_secs(1));
        assert!(Timeouts::Bulk.response() > Timeouts::Commands.response());
    }
}
