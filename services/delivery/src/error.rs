//! Delivery errors and their one mapping to `tonic::Status`. A WeChat
//! rejection of one message is not an error: it is a FAILED result.

use crate::idempotency::IdempotencyError;
use crate::queue::QueueError;
use crate::ratelimit::RateLimitError;
use std::time::Duration;
use tonic::{Code, Status};
use wxpush_server::failure::{self, Failure, Reason};
use wxpush_server::status::Violation;
use wxpush_wechat::UnknownKind;

/// Everything that makes a delivery call fail as an RPC.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// The template or token service answered with an error; the caller
    /// gets it translated ([`failure::upstream`]).
    #[error("{service} service: {}", status.message())]
    Upstream {
        service: &'static str,
        #[source]
        status: Status,
    },
    /// The template service rendered a kind of message no WeChat API takes.
    #[error("template service: {0}")]
    UnknownKind(#[from] UnknownKind),
    /// The template cannot be sent as configured (e.g. bad quiet hours).
    #[error("{0}")]
    Unsendable(String),
    /// No message with this id is known (or none the caller may see).
    #[error("message {0:?} not found")]
    NotFound(String),
    /// The caller has no grant for this (PERMISSION_DENIED naming it).
    #[error("permission denied")]
    Denied(Failure),
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
    /// The queue, idempotency or rate-limit backend failed.
    #[error("delivery backend unavailable: {0}")]
    Backend(#[from] BackendError),
}

/// Which backend failed, with its error kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    RateLimit(#[from] RateLimitError),
    #[error(transparent)]
    Consent(#[from] crate::consent::ConsentError),
}

impl From<crate::consent::ConsentError> for DeliveryError {
    fn from(e: crate::consent::ConsentError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<QueueError> for DeliveryError {
    fn from(e: QueueError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<IdempotencyError> for DeliveryError {
    fn from(e: IdempotencyError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<RateLimitError> for DeliveryError {
    fn from(e: RateLimitError) -> Self {
        Self::Backend(e.into())
    }
}

impl DeliveryError {
    /// The answer to a sync caller while WeChat cannot take the app's
    /// messages and the fallback is to refuse.
    pub(crate) fn refused(
        hold: crate::decision::Hold,
        app_id: &str,
        breaker: &crate::breaker::Breaker,
    ) -> Self {
        let app_id = app_id.to_string();
        match hold {
            crate::decision::Hold::Breaker => Self::BreakerOpen {
                app_id,
                retry_after: breaker.retry_after(),
            },
            crate::decision::Hold::Quota => Self::QuotaExhausted {
                app_id,
                retry_after: wxpush_wechat::until_quota_reset(),
            },
            crate::decision::Hold::Rate(retry_after) => Self::RateLimited {
                app_id,
                retry_after,
            },
        }
    }

    /// A call to `service` that failed with `status`.
    pub fn upstream(service: &'static str) -> impl FnOnce(Status) -> Self {
        move |status| Self::Upstream { service, status }
    }

    /// Whether repeating the same step later may succeed (the queue retries
    /// these; anything else fails the message for good).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Upstream { status, .. } => crate::policy::upstream_is_transient(status.code()),
            Self::InvalidArgument(_)
            | Self::UnknownKind(_)
            | Self::Unsendable(_)
            | Self::Denied(_)
            | Self::NotFound(_) => false,
            Self::BreakerOpen { .. }
            | Self::RateLimited { .. }
            | Self::QuotaExhausted { .. }
            | Self::InProgress(_)
            | Self::Backend(_) => true,
        }
    }
}

impl DeliveryError {
    /// The one mapping to what a caller gets: code, `ErrorInfo` reason and
    /// metadata, retry advice.
    pub fn failure(&self) -> Failure {
        let message = self.to_string();
        match self {
            Self::InvalidArgument(v) => Failure::invalid(v),
            Self::Upstream { service, status } => failure::upstream(service, status, message),
            Self::UnknownKind(_) | Self::Unsendable(_) => Failure::new(
                Code::FailedPrecondition,
                Reason::TemplateUnsendable,
                message,
            ),
            Self::NotFound(id) => Failure::new(Code::NotFound, Reason::MessageNotFound, message)
                .with("message_id", id),
            Self::Denied(f) => f.clone(),
            Self::BreakerOpen {
                app_id,
                retry_after,
            } => Failure::new(Code::Unavailable, Reason::BreakerOpen, message)
                .with("app_id", app_id)
                .retry_after((*retry_after).max(Duration::from_millis(100))),
            Self::RateLimited {
                app_id,
                retry_after,
            } => Failure::new(Code::ResourceExhausted, Reason::RateLimited, message)
                .with("app_id", app_id)
                .retry_after(*retry_after),
            Self::QuotaExhausted {
                app_id,
                retry_after,
            } => Failure::new(Code::ResourceExhausted, Reason::QuotaExhausted, message)
                .with("app_id", app_id)
                .with("errcode", 45009)
                .retry_after(*retry_after),
            Self::InProgress(key) => {
                Failure::new(Code::Aborted, Reason::RequestInProgress, message)
                    .with("idempotency_key", key)
                    .retry_after(Duration::from_millis(500))
            }
            Self::Backend(_) => {
                Failure::new(Code::Unavailable, Reason::BackendUnavailable, message)
                    .retry_after(Duration::from_secs(1))
            }
        }
    }
}

impl From<DeliveryError> for Status {
    fn from(e: DeliveryError) -> Self {
        e.failure().into()
    }
}
