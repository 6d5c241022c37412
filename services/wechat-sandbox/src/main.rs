//! `wechat-sandbox`: runs the WeChat API imitation and its admin API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use wechat_sandbox::{Sandbox, SandboxConfig, demo_config};

/// A local imitation of the WeChat server API for wxpush's tests, dev mode and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "wechat-sandbox", version = wxpush_server::build_info::LONG_VERSION)]
struct Args {
    /// YAML config with apps, templates, users and token rules; the demo world when absent.
    #[arg(long, env = "WECHAT_SANDBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the WeChat API listener.
    #[arg(long, env = "WECHAT_SANDBOX_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Address of the admin API listener.
    #[arg(
        long,
        env = "WECHAT_SANDBOX_ADMIN_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    admin_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => SandboxConfig::from_yaml_file(path)?,
        None => demo_config(),
    };
    let signal = shutdown_signal();
    let sandbox = Sandbox::start(config, args.listen, args.admin_listen)
        .await
        .context("starting the sandbox")?;
    tracing::info!(api = %sandbox.api_url(), admin = %sandbox.admin_url(), "ready");
    signal.await;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

/// Installs the Ctrl-C and SIGTERM handlers at once (so a signal during start-up is not lost)
/// and returns a future that completes on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
}
