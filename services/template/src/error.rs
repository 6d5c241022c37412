//! Template service errors and their one mapping to `tonic::Status`.

use std::time::Duration;
use tonic::{Code, Status};
use wxpush_server::failure::{Failure, Reason, upstream};
use wxpush_server::status::Violation;
use wxpush_wechat::WechatError;

/// Everything that can go wrong answering a template call.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Bad input: one violation per problem, so a caller fixes all at once.
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// No template with this key.
    #[error("template {0:?} not found")]
    NotFound(String),
    /// The caller has no grant for this (PERMISSION_DENIED naming it).
    #[error("permission denied")]
    Denied(Failure),
    /// A write named a version that is no longer current (ABORTED: re-read
    /// and retry).
    #[error("template {key:?} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        key: String,
        expected: u64,
        actual: u64,
    },
    /// A create (`expected_version` 0) found the key taken.
    #[error("template {0:?} already exists (expected_version 0 means create)")]
    AlreadyExists(String),
    /// The call cannot work in this deployment, e.g. SyncTemplates without a
    /// token service or WeChat client configured.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store (Redis) cannot be reached or answered an error. The text is
    /// the driver's error, which never contains the URL or a password.
    #[error("template store: {0}")]
    Backend(String),
    /// Stored data that cannot be decoded (written by an incompatible version).
    #[error("template store holds unreadable data: {0}")]
    Corrupt(String),
    /// The token service refused to give a token; its code is passed on.
    #[error("token service: {}", .0.message())]
    Token(Status),
    /// WeChat answered a template-list call with an error. Carries no URL, so
    /// no token.
    #[error("wechat: {0}")]
    Wechat(#[from] WechatError),
}

impl From<redis::RedisError> for TemplateError {
    fn from(e: redis::RedisError) -> Self {
        TemplateError::Backend(e.to_string())
    }
}

impl From<TemplateError> for Status {
    fn from(e: TemplateError) -> Self {
        let message = e.to_string();
        let failure = match e {
            TemplateError::InvalidArgument(v) => Failure::invalid(&v),
            TemplateError::Denied(f) => f,
            TemplateError::NotFound(key) => {
                Failure::new(Code::NotFound, Reason::TemplateNotFound, message).with("key", key)
            }
            TemplateError::VersionConflict {
                key,
                expected,
                actual,
            } => Failure::new(Code::Aborted, Reason::VersionConflict, message)
                .with("key", key)
                .with("expected_version", expected)
                .with("version", actual),
            TemplateError::AlreadyExists(key) => {
                Failure::new(Code::AlreadyExists, Reason::TemplateExists, message).with("key", key)
            }
            TemplateError::FailedPrecondition(_) => Failure::new(
                Code::FailedPrecondition,
                Reason::TemplateUnsendable,
                message,
            ),
            TemplateError::Backend(_) => {
                Failure::new(Code::Unavailable, Reason::BackendUnavailable, message)
                    .retry_after(Duration::from_secs(1))
            }
            TemplateError::Corrupt(_) => Failure::new(Code::Internal, Reason::DataCorrupt, message),
            TemplateError::Token(status) => upstream("token", &status, message),
            // A WeChat errcode (48001 not authorized, 40013 bad appid) will not
            // go away by retrying; a transport failure or 5xx may.
            TemplateError::Wechat(WechatError::Api { errcode, .. }) => {
                Failure::new(Code::FailedPrecondition, Reason::WechatRejected, message)
                    .with("errcode", errcode)
            }
            TemplateError::Wechat(_) => {
                Failure::new(Code::Unavailable, Reason::WechatUnavailable, message)
                    .retry_after(Duration::from_secs(1))
            }
        };
        failure.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code() {
        let cases = [
            (TemplateError::NotFound("a".into()), Code::NotFound),
            (
                TemplateError::VersionConflict {
                    key: "a".into(),
                    expected: 1,
                    actual: 2,
                },
                Code::Aborted,
            ),
            (
                TemplateError::AlreadyExists("a".into()),
                Code::AlreadyExists,
            ),
            (
                TemplateError::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (TemplateError::Backend("down".into()), Code::Unavailable),
            (
                TemplateError::Token(Status::not_found("unknown app")),
                Code::FailedPrecondition,
            ),
            (
                TemplateError::Wechat(WechatError::Api {
                    errcode: 48001,
                    errmsg: "api unauthorized".into(),
                }),
                Code::FailedPrecondition,
            ),
            (
                TemplateError::Wechat(WechatError::Timeout),
                Code::Unavailable,
            ),
        ];
        for (e, code) in cases {
            let status = Status::from(e);
            assert_eq!(status.code(), code);
            assert!(wxpush_server::failure::reason(&status).is_some());
        }
    }
}
