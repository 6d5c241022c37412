//! `wxpush-delivery`: the delivery service as its own process.

use clap::Parser;
use std::path::PathBuf;
use wxpush_delivery::DeliveryConfig;

/// Sends WeChat messages; every attempt becomes a delivery event.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_DELIVERY__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_DELIVERY_CONFIG")]
    config: Option<PathBuf>,
    /// Load the config (file and environment), report what is wrong, and
    /// exit without serving: 0 if it is valid.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = wxpush_telemetry::init("wxpush-delivery", env!("CARGO_PKG_VERSION"));
    let args = Args::parse();
    let config: DeliveryConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_DELIVERY")?;
    if args.check_config {
        println!("config OK");
        return Ok(());
    }
    let result =
        wxpush_delivery::server::run(config, wxpush_server::shutdown::Shutdown::on_signal()).await;
    telemetry.shutdown().await;
    result
}
