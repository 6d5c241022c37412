//! The delivery service: a message is rendered by the template service,
//! sent with a token from the token service, and every attempt becomes a
//! delivery event that logquery indexes.
//!
//! - [`config`]: where the other services and WeChat are; retry, breaker,
//!   rate-limit and idempotency settings.
//! - [`request`]: checks on a `SendRequest` before anything happens.
//! - [`policy`]: what to do after each WeChat answer (the errcode classes),
//!   and the retry backoff.
//! - [`breaker`]: a `failsafe` circuit breaker per app.
//! - [`idempotency`]: one send per idempotency key, across replicas.
//! - [`ratelimit`]: sends per second per app, across replicas (GCRA).
//! - [`message`]: a message's identity, its events and results.
//! - [`pipeline`]: one message through checks, render, idempotency, rate
//!   limit; `attempts`: token, breaker, WeChat, policy, events.
//! - [`queue`]: the durable queue, delayed set, dead letters, statuses;
//!   [`worker`]: the workers; `accept`: SendAsync / SendBatch;
//!   [`quiet`]: quiet hours.
//! - [`error`]: [`error::DeliveryError`] and its mapping to `tonic::Status`.
//! - [`server`]: the service as a process (ports, workers, graceful stop).
//! - [`service`]: the `wxpush.v1.DeliveryService` gRPC API.

mod accept;
mod attempts;
pub mod breaker;
pub mod config;
pub mod deadletters;
pub mod error;
pub mod idempotency;
pub mod message;
pub mod pipeline;
pub mod policy;
pub mod queue;
pub mod quiet;
pub mod ratelimit;
pub mod request;
pub mod server;
pub mod service;
pub mod worker;

pub use config::DeliveryConfig;
pub use pipeline::Pipeline;
pub use service::DeliveryGrpc;
