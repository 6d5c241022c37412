//! The token service owns every app's WeChat access_token, so that nothing
//! else in the company calls WeChat's token APIs (one fetch by anyone can
//! knock out everyone else's token).
//!
//! - [`config`]: apps, their secrets' sources, token mode, refresh margin.
//! - [`cache`]: the per-app cache with single-flight fetches and
//!   compare-and-swap invalidation.
//! - [`error`]: [`error::TokenError`] and its one mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.TokenService` gRPC API.

pub mod cache;
pub mod config;
pub mod error;
pub mod service;

pub use cache::TokenCache;
pub use config::{AppSpec, TokenConfig, TokenMode};
pub use service::TokenGrpc;
