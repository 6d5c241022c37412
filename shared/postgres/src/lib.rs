//! One way to open PostgreSQL for every wxpush crate.
//!
//! PostgreSQL holds what must last and grow (the delivery log, the template
//! registry, the dead letters); Redis keeps the hot path. Every store opens
//! its database here, so all share one behaviour, as with `wxpush-redis`:
//!
//! - **lazy**: [`open`] dials nothing; the pool connects on first use, so a
//!   service starts (and `--check-config` runs) without the database and
//!   answers `UNAVAILABLE` until it is there;
//! - **bounded**: a dial gives up after [`CONNECT_TIMEOUT`], a caller waits
//!   for a pooled connection at most [`WAIT_TIMEOUT`], and every statement is
//!   cancelled by the server after [`STATEMENT_TIMEOUT`];
//! - **self-healing**: a connection the server closed is dropped when it
//!   comes back to the pool, and the next caller gets a new one.
//!
//! [`migrate`] applies each component's embedded, versioned schema changes
//! under an advisory lock; [`listen`] follows a `LISTEN` channel across
//! reconnections; [`Micros`] carries wxpush's µs timestamps into
//! `timestamptz` exactly.

mod listen;
mod micros;
pub mod migrate;

pub use deadpool_postgres::{Pool, PoolError};
pub use listen::listen;
pub use micros::Micros;
pub use migrate::{Migration, Migrations};
pub use tokio_postgres::{Error as PgError, error::SqlState};

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use std::time::Duration;

/// Longest wait for a TCP connection to PostgreSQL.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a free pooled connection.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server cancels any statement running longer.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why PostgreSQL could not be opened: the URL does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid PostgreSQL URL (postgres://user[:password]@host:port/database): {0}")]
pub struct OpenError(String);

/// A pool of at most `max_size` connections to `url`
/// (`postgres://user[:password]@host:port/database`), checked but not
/// connected. `application_name` shows the service in `pg_stat_activity`.
pub fn open(url: &str, application_name: &str, max_size: usize) -> Result<Pool, OpenError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: PgError| {
        // The parser's message never echoes the URL (it may hold a password).
        OpenError(e.to_string())
    })?;
    config
        .application_name(application_name)
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives_idle(Duration::from_secs(30))
        .options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            STATEMENT_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        ));
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| OpenError(e.to_string()))
}

/// Runs one store operation, giving up after `limit`. A stalled server (a
/// stopped process keeps its sockets open and answers nothing; the
/// server's own `statement_timeout` cannot fire) then becomes an error the
/// caller acts on — a template's last-known copy, a retried batch —
/// never a hang.
pub async fn bounded<T, E>(
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, E>>,
    stalled: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => Err(stalled(format!(
            "PostgreSQL did not answer within {} ms",
            limit.as_millis()
        ))),
    }
}

/// FNV-1a, 64 bits: a hash that never changes between builds or machines,
/// for what is stored or shared (advisory lock keys, checksums).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A failure talking to PostgreSQL, as text fit for an error message: the
/// server's own message and SQLSTATE where there is one, never the URL.
pub fn describe(e: &PgError) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            // "error connecting to server" alone does not say why: add the
            // causes (refused, timed out, no such host).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// [`describe`] for a pool failure (no connection could be had).
pub fn describe_pool(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(_) => "no PostgreSQL connection within the wait timeout".into(),
        other => other.to_string(),
    }
}
