//! Server plumbing shared by every wxpush service, written once so the
//! services only hold their own logic.
//!
//! - [`config`]: a YAML file plus `PREFIX__KEY__SUBKEY` environment overrides;
//!   [`config::Secret`] keeps credentials out of `Debug` output.
//! - [`status`]: building blocks for mapping typed errors to `tonic::Status`
//!   (field violations, retry delays).
//! - [`grpc`]: serve a set of tonic services with health and reflection.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a future.
//! - [`trace_context`]: the W3C `traceparent` carried on every hop.
//! - [`logging`]: the process-wide tracing subscriber.

pub mod config;
pub mod grpc;
pub mod logging;
pub mod shutdown;
pub mod status;
pub mod trace_context;
