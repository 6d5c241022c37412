//! `wxpush-template`: the template service as its own process.

use clap::Parser;
use std::path::PathBuf;
use wxpush_template::{TemplateGrpc, TemplateRegistry, spec};

/// Maps business templates to WeChat templates, validates and renders them.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_TEMPLATE__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_TEMPLATE_CONFIG")]
    config: Option<PathBuf>,
    /// Load the config (file and environment), report what is wrong, and
    /// exit without serving: 0 if it is valid.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = wxpush_telemetry::init("wxpush-template", env!("CARGO_PKG_VERSION"));
    let args = Args::parse();
    let config: wxpush_template::TemplateConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_TEMPLATE")?;
    let seed = match &config.templates_file {
        Some(path) => {
            let templates = spec::load_file(path).map_err(anyhow::Error::msg)?;
            tracing::info!(count = templates.len(), file = %path.display(), "templates loaded");
            Some(templates)
        }
        None => None,
    };
    if args.check_config {
        println!("config OK");
        return Ok(());
    }
    let registry = TemplateRegistry::open(&config.backend)
        .await
        .map_err(|e| anyhow::anyhow!("template backend: {e}"))?;
    if let Some(templates) = seed {
        registry
            .seed(templates)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let token =
        tonic::transport::Endpoint::from_shared(config.token_endpoint.clone())?.connect_lazy();
    let wechat = wxpush_wechat::WechatClient::new(&config.wechat)?;
    let shutdown = wxpush_server::shutdown::Shutdown::on_signal();
    let metrics = wxpush_metrics::SharedRegistry::new();
    metrics.register_with(|r| {
        wxpush_server::rpc::RpcMetrics::global().register(r);
        wechat.metrics().register(r);
    });
    let admin = wxpush_server::grpc::bind(config.admin_listen.parse()?).await?;
    tokio::spawn(wxpush_metrics::serve_admin(admin, metrics, shutdown.wait()));
    let grpc = TemplateGrpc::new(registry).with_sync(token, wechat);
    let routes = tonic::service::Routes::new(grpc.into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::template_service_server::SERVICE_NAME],
        listener,
        shutdown.wait(),
    )
    .await?;
    telemetry.shutdown().await;
    Ok(())
}
