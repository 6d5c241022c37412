//! Token service errors and their one mapping to `tonic::Status`.

use std::time::Duration;
use tonic::{Code, Status};
use wxpush_server::failure::{Failure, Reason};
use wxpush_server::status::Violation;
use wxpush_wechat::WechatError;

/// Everything that can go wrong answering a token call.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    #[error("unknown app_id {0:?}")]
    UnknownApp(String),
    /// WeChat refused the app's credentials or configuration; retrying will
    /// not help until an operator fixes it.
    #[error("wechat refused the token request for app {app_id}: errcode {errcode}: {errmsg}")]
    Rejected {
        app_id: String,
        errcode: i64,
        errmsg: String,
    },
    /// WeChat could not be reached or was busy, and no valid token is cached.
    #[error("cannot fetch a token for app {app_id}: {source}")]
    Unavailable { app_id: String, source: WechatError },
    /// The shared backend is down and the in-process copy has expired.
    #[error(
        "no valid token for app {app_id}: the token backend is unreachable ({reason}) and the local copy has expired"
    )]
    BackendDown { app_id: String, reason: String },
    /// Another replica holds the refresh lock and did not deliver in time.
    #[error("no valid token for app {app_id} yet: another replica is refreshing it")]
    RefreshInProgress { app_id: String },
    /// WeChat says the app's daily token quota is used up (45009).
    #[error(
        "wechat refused the token request for app {app_id}: daily quota reached (errcode {errcode}: {errmsg})"
    )]
    WechatQuota {
        app_id: String,
        errcode: i64,
        errmsg: String,
    },
    /// The daily fetch budget is spent; no further fetch reaches WeChat today.
    #[error("app {app_id} used its daily budget of {budget} token fetches")]
    QuotaExhausted { app_id: String, budget: u32 },
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Self {
        let message = e.to_string();
        let failure = match e {
            TokenError::InvalidArgument(v) => return Failure::invalid(&v).into(),
            TokenError::UnknownApp(app_id) => {
                Failure::new(Code::NotFound, Reason::AppUnknown, message).with("app_id", app_id)
            }
            TokenError::Rejected {
                app_id, errcode, ..
            } => Failure::new(
                Code::FailedPrecondition,
                Reason::WechatCredentialsRejected,
                message,
            )
            .with("app_id", app_id)
            .with("errcode", errcode),
            TokenError::Unavailable { app_id, .. } => {
                Failure::new(Code::Unavailable, Reason::WechatUnavailable, message)
                    .with("app_id", app_id)
                    .retry_after(Duration::from_secs(1))
            }
            TokenError::BackendDown { app_id, .. } => {
                Failure::new(Code::Unavailable, Reason::BackendUnavailable, message)
                    .with("app_id", app_id)
                    .retry_after(Duration::from_secs(1))
            }
            TokenError::RefreshInProgress { app_id } => {
                Failure::new(Code::Unavailable, Reason::TokenRefreshing, message)
                    .with("app_id", app_id)
                    .retry_after(Duration::from_millis(500))
            }
            TokenError::WechatQuota {
                app_id, errcode, ..
            } => Failure::new(Code::ResourceExhausted, Reason::QuotaExhausted, message)
                .with("app_id", app_id)
                .with("errcode", errcode)
                .retry_after(wxpush_wechat::until_quota_reset()),
            TokenError::QuotaExhausted { app_id, .. } => {
                Failure::new(Code::ResourceExhausted, Reason::QuotaExhausted, message)
                    .with("app_id", app_id)
                    .retry_after(wxpush_wechat::until_quota_reset())
            }
        };
        failure.into()
    }
}
