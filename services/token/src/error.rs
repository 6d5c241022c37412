//! Token service errors and their one mapping to `tonic::Status`.

use tonic::{Code, Status};
use wxpush_server::status::{Violation, invalid_argument};
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
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Self {
        match &e {
            TokenError::InvalidArgument(v) => invalid_argument(v),
            TokenError::UnknownApp(_) => Status::not_found(e.to_string()),
            TokenError::Rejected { .. } => Status::new(Code::FailedPrecondition, e.to_string()),
            TokenError::Unavailable { .. } => Status::unavailable(e.to_string()),
        }
    }
}
