//! The service's errors and their one mapping to `tonic::Status`.

use tonic::Status;
use wxpush_server::status::{Violation, invalid_argument};

/// A store backend failed (Redis unreachable, a record that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("log store backend: {0}")]
    Backend(String),
    #[error("log store holds a corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
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
        match e {
            LogQueryError::Invalid(v) => invalid_argument(&v),
            LogQueryError::NotFound(_) => Status::not_found(e.to_string()),
            LogQueryError::TooManyTails(_) => wxpush_server::status::with_retry_delay(
                tonic::Code::ResourceExhausted,
                e.to_string(),
                std::time::Duration::from_secs(5),
            ),
            LogQueryError::Store(s) => {
                tracing::error!(error = %s, "log store failed");
                Status::unavailable(s.to_string())
            }
        }
    }
}
