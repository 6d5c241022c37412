//! `wxpush-delivery`: the delivery service as its own process.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use wxpush_delivery::pipeline::lazy_channel;
use wxpush_delivery::{DeliveryConfig, DeliveryGrpc, Pipeline};
use wxpush_wechat::WechatClient;

/// Sends WeChat messages; every attempt becomes a delivery event.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_DELIVERY__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_DELIVERY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::logging::init();
    let args = Args::parse();
    let config: DeliveryConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_DELIVERY")?;
    // Until the Redis event stream lands, a lone delivery process writes its
    // events as structured log lines; `wxpush dev` wires them to logquery.
    tracing::warn!("no shared event stream configured: delivery events go to the log only");
    let pipeline = Pipeline::new(
        lazy_channel(&config.template_endpoint)?,
        lazy_channel(&config.token_endpoint)?,
        WechatClient::new(&config.wechat)?,
        Arc::new(wxpush_events::LogSink),
    );
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(DeliveryGrpc::new(pipeline).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::delivery_service_server::SERVICE_NAME],
        listener,
        wxpush_server::shutdown::signal(),
    )
    .await?;
    Ok(())
}
