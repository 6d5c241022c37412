//! The delivery service: a message is rendered by the template service,
//! sent with a token from the token service, and every attempt becomes a
//! delivery event that logquery indexes.
//!
//! - [`config`]: where the other services and WeChat are.
//! - [`request`]: checks on a `SendRequest` before anything happens.
//! - [`pipeline`]: one message through render, token, WeChat, event.
//! - [`error`]: [`error::DeliveryError`] and its mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.DeliveryService` gRPC API.

pub mod config;
pub mod error;
pub mod pipeline;
pub mod request;
pub mod service;

pub use config::DeliveryConfig;
pub use pipeline::Pipeline;
pub use service::DeliveryGrpc;
