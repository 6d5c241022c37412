//! Server plumbing shared by every wxpush service, written once so the
//! services only hold their own logic.
//!
//! - [`config`]: a YAML file plus `PREFIX__KEY__SUBKEY` environment overrides;
//!   [`config::Secret`] keeps credentials out of `Debug` output.
//! - [`failure`]: every error as a `tonic::Status` with a stable
//!   `ErrorInfo` reason, metadata and retry advice; [`status`]: request
//!   field checks (violations).
//! - [`grpc`]: serve a set of tonic services with health and reflection;
//!   dial a peer service.
//! - [`component`]: a service as a part a process runs (routes, metrics,
//!   start-up steps, tasks); [`process`]: running components, and the
//!   `main` of every service binary.
//! - [`limits`]: every request limit, in one place.
//! - [`deadline`]: the caller's `grpc-timeout`.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a future.
//! - [`trace_context`]: the W3C trace id of the current call, for logs and results.
//! - [`rpc`]: tower layers tracing and measuring every gRPC call, server
//!   and client side, and trace propagation (headers, Istio, the queue).
//! - [`logging`]: a logs-only subscriber (tests); binaries use
//!   `wxpush_telemetry::init`.
//! - [`caller`]: who is calling (found by the gate layer) and the app
//!   and template checks services make.
//! - [`build_info`]: the version and commit (`--version`, `wxpush_build_info`).

pub mod build_info;
pub mod caller;
pub mod component;
pub mod config;
pub mod deadline;
pub mod failure;
pub mod grpc;
pub mod limits;
pub mod logging;
pub mod paging;
pub mod process;
pub mod rpc;
pub mod shutdown;
pub mod status;
pub mod trace_context;
