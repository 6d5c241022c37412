//! Template service errors and their one mapping to `tonic::Status`.

use tonic::Status;
use wxpush_server::status::{Violation, invalid_argument};

/// Everything that can go wrong answering a template call.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    #[error("template {0:?} not found")]
    NotFound(String),
    #[error("template {key:?} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("template {0:?} already exists (expected_version 0 means create)")]
    AlreadyExists(String),
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
}

impl From<TemplateError> for Status {
    fn from(e: TemplateError) -> Self {
        match &e {
            TemplateError::InvalidArgument(v) => invalid_argument(v),
            TemplateError::NotFound(_) => Status::not_found(e.to_string()),
            TemplateError::VersionConflict { .. } => Status::aborted(e.to_string()),
            TemplateError::AlreadyExists(_) => Status::already_exists(e.to_string()),
            TemplateError::Unimplemented(_) => Status::unimplemented(e.to_string()),
        }
    }
}
