//! Delivery errors and their one mapping to `tonic::Status`. A WeChat
//! rejection of one message is not an error: it is a FAILED result.

use tonic::Status;
use wxpush_server::status::{Violation, invalid_argument};

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
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
}

impl From<DeliveryError> for Status {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::InvalidArgument(v) => invalid_argument(&v),
            DeliveryError::Upstream { service, status } => Status::with_details(
                status.code(),
                format!("{service} service: {}", status.message()),
                status.details().to_vec().into(),
            ),
            e @ DeliveryError::Unimplemented(_) => Status::unimplemented(e.to_string()),
        }
    }
}
