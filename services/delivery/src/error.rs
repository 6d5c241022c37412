//! Delivery errors and their one mapping to `tonic::Status`. A WeChat
//! rejection of one message is not an error: it is a FAILED result.

use std::time::Duration;
use tonic::{Code, Status};
use wxpush_server::status::{Violation, invalid_argument, with_retry_delay};

/// Everything that makes a delivery call fail as an RPC.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// The template or token service answered with an error; its code and
    /// details (e.g. field violations, NOT_FOUND) are passed to the caller.
    #[error("{service} service: {}", status.message())]
    Upstream {
        service: &'static str,
        status: Status,
    },
    /// The app's circuit breaker is open: WeChat is failing, nothing was sent.
    #[error("WeChat is failing for app {app_id}; the circuit breaker is open, nothing was sent")]
    BreakerOpen {
        app_id: String,
        retry_after: Duration,
    },
    /// The app sends faster than its shared rate limit allows.
    #[error("app {app_id} is over its send rate limit")]
    RateLimited {
        app_id: String,
        retry_after: Duration,
    },
    /// WeChat's daily quota for the app is used up (45009).
    #[error(
        "app {app_id} reached WeChat's daily send quota (45009); nothing was sent, retry after the reset"
    )]
    QuotaExhausted {
        app_id: String,
        retry_after: Duration,
    },
    /// Another request with the same idempotency key is still in flight.
    #[error("a request with idempotency key {0:?} is still in progress")]
    InProgress(String),
    /// Idempotency or rate-limit backend unreachable.
    #[error("delivery backend unavailable: {0}")]
    Backend(String),
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
}

impl From<DeliveryError> for Status {
    fn from(e: DeliveryError) -> Self {
        let message = e.to_string();
        match e {
            DeliveryError::InvalidArgument(v) => invalid_argument(&v),
            DeliveryError::Upstream { service, status } => Status::with_details(
                status.code(),
                format!("{service} service: {}", status.message()),
                status.details().to_vec().into(),
            ),
            DeliveryError::BreakerOpen { retry_after, .. } => with_retry_delay(
                Code::Unavailable,
                message,
                retry_after.max(Duration::from_millis(100)),
            ),
            DeliveryError::RateLimited { retry_after, .. }
            | DeliveryError::QuotaExhausted { retry_after, .. } => {
                with_retry_delay(Code::ResourceExhausted, message, retry_after)
            }
            DeliveryError::InProgress(_) => {
                with_retry_delay(Code::Aborted, message, Duration::from_millis(500))
            }
            DeliveryError::Backend(_) => {
                with_retry_delay(Code::Unavailable, message, Duration::from_secs(1))
            }
            DeliveryError::Unimplemented(_) => Status::unimplemented(message),
        }
    }
}
