//! The delivery service: a message is rendered by the template service,
//! sent with a token from the token service, and every attempt becomes a
//! delivery event that logquery indexes.
//!
//! Its parts, in the order a message meets them:
//! - [`config`]: where the other services and WeChat are; retry, breaker,
//!   rate-limit, queue and idempotency settings.
//! - [`backends`]: idempotency, rate limits, queue and event sink, chosen
//!   once by `backend.kind` (memory or Redis).
//! - [`intake`]: accepting a message (checks in [`request`], idempotency,
//!   rate limit); [`send`]: sync `Send`; [`accept`]: `SendAsync` and
//!   `SendBatch` onto the queue ([`quiet`] hours); [`deadletters`].
//! - [`sender`]: one attempt: render, token, [`breaker`], [`consent`], the
//!   WeChat call; [`local`]: its short-lived copies of tokens and render plans.
//! - [`policy`]: the errcode classes as actions, and the backoff;
//!   [`decision`]: what follows each outcome, for sync and queue alike.
//! - [`ledger`]: what is recorded: events, live status, queue, dead letters.
//! - [`pushes`]: WeChat's pushes: subscription answers into the consent
//!   ledger, receipts as final statuses.
//! - [`queue`]: the durable queue (memory or Redis Streams); [`worker`]:
//!   the workers that move queued messages one step at a time.
//! - [`error`]: [`error::DeliveryError`] and its one mapping to `tonic::Status`.
//! - [`service`]: the `wxpush.v1.DeliveryService` gRPC API.
//!
//! [`build`] puts them together as one component.

pub mod accept;
pub mod backends;
pub mod breaker;
pub mod config;
pub mod consent;
pub mod deadletters;
pub mod decision;
pub mod error;
mod expiring;
pub mod idempotency;
pub mod intake;
pub mod ledger;
pub mod local;
pub mod message;
pub mod policy;
pub mod pushes;
pub mod queue;
pub mod quiet;
pub mod ratelimit;
pub mod request;
pub mod send;
pub mod sender;
pub mod service;
pub mod worker;

pub use backends::Backends;
pub use config::DeliveryConfig;
pub use intake::Intake;
pub use service::DeliveryGrpc;

use std::sync::Arc;
use wxpush_events::EventSink;
use wxpush_events::callbacks::{CallbackSource, PushSource};
use wxpush_server::component::Component;
use wxpush_server::config::BackendKind;

/// The parts of a delivery service, each built complete from one
/// [`Backends`].
pub struct Delivery {
    pub intake: Intake,
    pub worker: worker::Worker,
}

impl Delivery {
    /// Every part over `backends`.
    pub fn new(config: &DeliveryConfig, backends: Backends) -> anyhow::Result<Self> {
        let sender = sender::Sender::new(
            wxpush_server::grpc::peer(&config.template_endpoint, &config.auth)
                .map_err(anyhow::Error::msg)?,
            wxpush_server::grpc::peer(&config.token_endpoint, &config.auth)
                .map_err(anyhow::Error::msg)?,
            wxpush_wechat::WechatClient::new(&config.wechat)?,
            breaker::Breakers::new(config.breaker.clone()),
            backends.consent,
        )
        .with_private_fields_key(
            wxpush_auth::privacy::KeyedHash::from_file(
                "private_fields_key_file",
                config.private_fields_key_file.as_deref(),
            )
            .map_err(anyhow::Error::msg)?,
        );
        let sender = if config.backend.kind == BackendKind::Postgres {
            sender.notified_of_changes()
        } else {
            sender
        };
        let ledger = ledger::Ledger::new(
            backends.events,
            backends.queue,
            queue::QueueMetrics::default(),
        );
        Ok(Self {
            intake: Intake::new(
                sender.clone(),
                ledger.clone(),
                backends.idempotency,
                backends.limiter.clone(),
                config,
            ),
            worker: worker::Worker::new(sender, ledger, backends.limiter, config),
        })
    }
}

/// The delivery service from its config.
pub async fn build(config: DeliveryConfig) -> anyhow::Result<Component> {
    build_with_streams(config, InProcess::default()).await
}

/// Streams of the same process (`wxpush dev`), used instead of what the
/// backend implies.
#[derive(Default)]
pub struct InProcess {
    /// Where delivery events go.
    pub events: Option<Arc<dyn EventSink>>,
    /// WeChat's pushes (subscription answers for the consent ledger).
    pub pushes: Option<Arc<dyn PushSource>>,
}

/// [`build`] with the streams of `in_process` where given.
pub async fn build_with_streams(
    config: DeliveryConfig,
    in_process: InProcess,
) -> anyhow::Result<Component> {
    let backends = Backends::open(&config, in_process.events).await?;
    let (consent, statuses) = (backends.consent.clone(), backends.queue.clone());
    let Delivery { intake, worker } = Delivery::new(&config, backends)?;
    let breakers = intake.sender().breakers().metrics().clone();
    let queue = intake.ledger.metrics().clone();
    let sender = intake.sender().clone();
    let component = Component::new("wxpush-delivery")
        .checks_redis(&config.backend)
        .checks_stream_layout(&config.backend, &["queue", "events"])
        .grpc(DeliveryGrpc::new(intake).into_server())
        .metrics(move |r| {
            breakers.register(r);
            queue.register(r);
            consent::ConsentMetrics::global().register(r);
        })
        .shared_metrics("wechat", |r| {
            wxpush_wechat::WechatMetrics::global().register(r)
        });
    // WeChat's pushes (subscription answers into the consent ledger,
    // receipts onto the live status): from this process's callback
    // endpoint, or the callback stream on Redis (its own group).
    let b = &config.backend;
    let pushes: Option<Arc<dyn PushSource>> = match in_process.pushes {
        Some(pushes) => Some(pushes),
        None if b.kind.uses_redis() => Some(Arc::new(CallbackSource::open(
            &b.redis_url,
            &b.key_prefix,
            "delivery",
            &std::env::var("HOSTNAME").unwrap_or_else(|_| "delivery-0".into()),
            std::time::Duration::from_millis(config.queue.claim_idle_ms),
        )?)),
        None => None,
    };
    let component = match pushes {
        Some(pushes) => {
            component.task(move |drain| pushes::follow(pushes, consent, statuses, drain.wait()))
        }
        None => component,
    };
    let component = if config.backend.kind == BackendKind::Postgres {
        let url = config
            .backend
            .postgres_url()
            .map_err(anyhow::Error::msg)?
            .to_string();
        let schema = url.clone();
        // The dead letters' schema before serving; replicas take turns.
        let component = component.on_start(async move {
            queue::MIGRATIONS.apply_at(&schema).await?;
            Ok(())
        });
        // A changed template reaches sends at once, not after the plan TTL.
        component.task(move |drain| {
            wxpush_postgres::listen(
                url,
                wxpush_template::store::postgres::CHANGES_CHANNEL,
                move |key| sender.template_changed(key),
                drain.wait(),
            )
        })
    } else {
        component
    };
    Ok(if config.queue.workers {
        component.task(move |drain| worker.run(drain))
    } else {
        component
    })
}
