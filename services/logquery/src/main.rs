//! `wxpush-logquery`: the log query service as its own process.

use clap::Parser;
use std::path::PathBuf;
use wxpush_logquery::{LogQueryConfig, LogQueryGrpc, MemoryLogStore};

/// Indexes delivery events and answers queries about them.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_LOGQUERY__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_LOGQUERY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::logging::init();
    let args = Args::parse();
    let config: LogQueryConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_LOGQUERY")?;
    // Until the Redis event stream lands, a lone logquery process has no
    // stream to read; `wxpush dev` wires delivery's events in.
    tracing::warn!("no shared event stream configured: nothing will be ingested");
    let store = MemoryLogStore::new(config.max_records);
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(LogQueryGrpc::new(store).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::log_query_service_server::SERVICE_NAME],
        listener,
        wxpush_server::shutdown::signal(),
    )
    .await?;
    Ok(())
}
