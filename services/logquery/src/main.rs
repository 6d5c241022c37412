//! `wxpush-logquery`: the log query service as its own process.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use wxpush_logquery::{LogQueryConfig, LogQueryGrpc, ingest, metrics, open_backend};

/// Indexes delivery events and answers queries about them.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_LOGQUERY__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_LOGQUERY_CONFIG")]
    config: Option<PathBuf>,
    /// Load the config (file and environment), report what is wrong, and
    /// exit without serving: 0 if it is valid.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = wxpush_telemetry::init("wxpush-logquery", env!("CARGO_PKG_VERSION"));
    let args = Args::parse();
    let config: LogQueryConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_LOGQUERY")?;
    if args.check_config {
        println!("config OK");
        return Ok(());
    }
    let backend = open_backend(&config).await?;
    let tail = backend.tail.clone();
    let _ingest = match backend.source {
        Some(source) => Some(ingest::spawn(source, backend.store.clone(), tail.clone())),
        None => {
            tracing::warn!(
                "memory backend: no shared event stream, nothing will be ingested (set backend.kind=redis)"
            );
            None
        }
    };
    let _retention = ingest::spawn_retention(
        backend.store.clone(),
        Duration::from_secs(config.retention_sweep_secs),
    );
    let shutdown = wxpush_server::shutdown::Shutdown::on_signal();
    tail.close_on(shutdown.wait());
    let registry = wxpush_metrics::SharedRegistry::new();
    registry.register_with(|r| {
        wxpush_server::rpc::RpcMetrics::global().register(r);
        metrics::LogQueryMetrics::global().register(r);
    });
    let admin = wxpush_server::grpc::bind(config.admin_listen.parse()?).await?;
    tokio::spawn(wxpush_metrics::serve_admin(
        admin,
        registry,
        shutdown.wait(),
    ));
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(LogQueryGrpc::new(backend.store, tail).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::log_query_service_server::SERVICE_NAME],
        listener,
        shutdown.wait(),
    )
    .await?;
    telemetry.shutdown().await;
    Ok(())
}
