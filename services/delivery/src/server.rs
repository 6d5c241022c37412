//! The delivery service as a process: gRPC and admin ports, the event
//! sink its backend implies, the queue workers, and a graceful stop.

use crate::pipeline::lazy_channel;
use crate::{DeliveryConfig, DeliveryGrpc, Pipeline};
use std::sync::Arc;
use wxpush_server::shutdown::Shutdown;
use wxpush_wechat::WechatClient;

/// Runs the delivery service until `shutdown` fires, then lets the workers
/// finish what they hold.
pub async fn run(config: DeliveryConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    // With Redis, events go to the stream logquery reads; a lone in-memory
    // process writes them as structured log lines.
    let events: Arc<dyn wxpush_events::EventSink> = match config.backend.kind {
        wxpush_server::config::BackendKind::Redis => Arc::new(
            wxpush_events::RedisStreamSink::connect(&wxpush_events::StreamSettings {
                redis_url: config.backend.redis_url.clone(),
                key_prefix: config.backend.key_prefix.clone(),
                ..Default::default()
            })
            .await?,
        ),
        wxpush_server::config::BackendKind::Memory => {
            tracing::warn!("memory backend: delivery events go to the log only");
            Arc::new(wxpush_events::LogSink)
        }
    };
    let pipeline = Pipeline::new(
        lazy_channel(&config.template_endpoint)?,
        lazy_channel(&config.token_endpoint)?,
        WechatClient::new(&config.wechat)?,
        events,
        &config,
    )
    .with_shared_state(crate::pipeline::shared_state(&config).await?);
    let registry = wxpush_metrics::SharedRegistry::new();
    registry.register_with(|r| {
        pipeline.breakers().metrics().register(r);
        pipeline.queue_metrics().register(r);
    });
    registry.register_with(|r| {
        wxpush_server::rpc::RpcMetrics::global().register(r);
        pipeline.wechat.metrics().register(r);
    });
    let admin = wxpush_server::grpc::bind(config.admin_listen.parse()?).await?;
    tokio::spawn(wxpush_metrics::serve_admin(
        admin,
        registry,
        shutdown.wait(),
    ));
    let workers = config.queue.workers.then(|| pipeline.spawn_workers());
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(DeliveryGrpc::new(pipeline).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::delivery_service_server::SERVICE_NAME],
        listener,
        shutdown.wait(),
    )
    .await?;
    // SIGTERM: the server has stopped accepting; let the workers finish
    // what they hold (the rest stays queued for other replicas).
    if let Some(w) = workers {
        w.shutdown().await;
    }
    Ok(())
}
