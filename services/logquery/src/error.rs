//! The service's errors and their one mapping to `tonic::Status`.

use std::time::Duration;
use tonic::{Code, Status};
use wxpush_server::failure::{Failure, Reason};
use wxpush_server::status::Violation;

/// A store backend failed (Redis unreachable, a record that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("log store backend: {0}")]
    Backend(String),
    #[error("log store holds a corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// PostgreSQL has no partition for a record's day (another replica
    /// dropped it, or this one never made it): made, then written again.
    #[error("log store backend: {0}")]
    NoPartition(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        Self::Backend(e.to_string())
    }
}

/// Everything a log query RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogQueryError {
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    #[error("message {0:?} not found")]
    NotFound(String),
    /// The caller may not see what it asked for.
    #[error("permission denied")]
    Denied(Failure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every `TailLogs` stream this replica allows is open.
    #[error("{0} TailLogs streams are open on this replica, the most allowed; retry later")]
    TooManyTails(usize),
}

impl From<Vec<Violation>> for LogQueryError {
    fn from(v: Vec<Violation>) -> Self {
        Self::Invalid(v)
    }
}

impl From<LogQueryError> for Status {
    fn from(e: LogQueryError) -> Self {
        let message = e.to_string();
        let failure = match e {
            LogQueryError::Invalid(v) => Failure::invalid(&v),
            LogQueryError::Denied(f) => f,
            LogQueryError::NotFound(id) => {
                Failure::new(Code::NotFound, Reason::MessageNotFound, message)
                    .with("message_id", id)
            }
            LogQueryError::TooManyTails(_) => {
                Failure::new(Code::ResourceExhausted, Reason::TooManyStreams, message)
                    .retry_after(Duration::from_secs(5))
            }
            LogQueryError::Store(s) => {
                tracing::error!(error = %s, "log store failed");
                match s {
                    StoreError::Backend(_) | StoreError::NoPartition(_) => {
                        Failure::new(Code::Unavailable, Reason::BackendUnavailable, message)
                            .retry_after(Duration::from_secs(1))
                    }
                    StoreError::Corrupt { .. } => {
                        Failure::new(Code::Internal, Reason::DataCorrupt, message)
                    }
                }
            }
        };
        failure.into()
    }
}
