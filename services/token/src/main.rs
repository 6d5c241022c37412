//! `wxpush-token`: the token service as its own process.

use clap::Parser;
use std::path::PathBuf;
use wxpush_metrics::SharedRegistry;
use wxpush_server::shutdown::Shutdown;
use wxpush_token::{TokenCache, TokenConfig, TokenGrpc};
use wxpush_wechat::WechatClient;

/// Owns every app's WeChat access_token.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_TOKEN__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_TOKEN_CONFIG")]
    config: Option<PathBuf>,
    /// Load the config (file and environment), report what is wrong, and
    /// exit without serving: 0 if it is valid.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = wxpush_telemetry::init("wxpush-token", env!("CARGO_PKG_VERSION"));
    let args = Args::parse();
    let config: TokenConfig = wxpush_server::config::load(args.config.as_deref(), "WXPUSH_TOKEN")?;
    if args.check_config {
        for app in &config.apps {
            app.secret_source().map_err(anyhow::Error::msg)?;
        }
        println!("config OK");
        return Ok(());
    }
    let wechat = WechatClient::new(&config.wechat)?;
    let wechat_metrics = wechat.metrics().clone();
    let store = wxpush_token::store::connect(&config.backend).await?;
    let cache = TokenCache::new(&config.apps, wechat, store, config.refresh.clone())
        .map_err(anyhow::Error::msg)?;
    let _refresher = cache.spawn_refresher();

    let shutdown = Shutdown::on_signal();
    let registry = SharedRegistry::new();
    registry.register_with(|r| {
        cache.metrics().register(r);
        wechat_metrics.register(r);
        wxpush_server::rpc::RpcMetrics::global().register(r);
    });
    let admin = wxpush_server::grpc::bind(config.admin_listen.parse()?).await?;
    tokio::spawn(wxpush_metrics::serve_admin(
        admin,
        registry,
        shutdown.wait(),
    ));

    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(TokenGrpc::new(cache).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::token_service_server::SERVICE_NAME],
        listener,
        shutdown.wait(),
    )
    .await?;
    telemetry.shutdown().await;
    Ok(())
}
