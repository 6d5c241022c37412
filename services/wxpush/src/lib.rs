//! The `wxpush` binary's parts: the whole suite in one process for
//! development and tests, and the operators' command-line client.
//!
//! - [`suite`]: starts token, template, delivery and logquery on one gRPC
//!   port, on in-memory backends, with an embedded WeChat sandbox.
//! - [`demo`]: the demo apps and templates `wxpush dev` is preloaded with.
//! - [`callbacks`]: the sandbox's apps pushing to the suite's callback
//!   endpoint (each app's Token and EncodingAESKey made at start).
//! - [`dev`], [`dev_config`]: `wxpush dev`, and its `--config` file.
//! - [`cli`]: `wxpush send` and `wxpush logs`.
//! - [`output`]: human-readable and JSON rendering of results.

pub mod callbacks;
pub mod cli;
pub mod demo;
pub mod dev;
pub mod dev_config;
pub mod output;
pub mod suite;

pub use suite::{Suite, SuiteOptions};
