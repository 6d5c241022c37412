//! `wxpush dev`: the suite in one process until Ctrl-C, with what to try.

use crate::{Suite, SuiteOptions};
use std::path::PathBuf;

/// Starts the suite, prints where everything answers and what to try,
/// and serves until Ctrl-C or SIGTERM.
pub async fn run(opts: SuiteOptions, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let suite = Suite::start(opts).await?;
    let metrics_url = suite
        .admin_addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let callbacks_url = suite
        .callbacks_addr
        .map(|a| format!("http://{a}/wechat/callback"))
        .unwrap_or_default();
    let (api, admin) = suite
        .sandbox
        .as_ref()
        .map(|s| (s.api_url(), s.admin_url()))
        .unwrap_or_default();
    println!(
        "wxpush dev is running\n\
         \n  gRPC (token, template, delivery, logquery, health, reflection): {grpc}\n\
         \x20 WeChat sandbox API:   {api}\n\
         \x20 WeChat sandbox admin: {admin}\n\
         \x20 Metrics (Prometheus): {metrics}/metrics\n\
         \x20 WeChat callbacks:     {callbacks}/{{app_id}} (the sandbox pushes receipts here)\n\
         \nTry:\n\
         \x20 wxpush send --addr {grpc} --template order_shipped --openid o_demo_follower \\\n\
         \x20     --var order_id=SF1234567 --var ship_time='2026-11-23 10:00' --var carrier=顺丰速运\n\
         \x20 wxpush logs --addr {grpc} --openid o_demo_follower   (SENT, then DELIVERED)\n\
         \x20 grpcurl -plaintext {addr} list\n\
         \nDemo users: o_demo_follower, o_demo_unfollowed, o_demo_blocker (its receipt: user block),\n\
         \x20           o_demo_unreachable (its receipt: system failed) (official account wx_demo_oa);\n\
         \x20           o_demo_subscriber, o_demo_no_consent (mini program wx_demo_mp).\n\
         Ctrl-C to stop.",
        grpc = suite.grpc_url(),
        addr = suite.grpc_addr,
        metrics = metrics_url,
        callbacks = callbacks_url,
    );
    if let Some(path) = ready_file {
        let ready = serde_json::json!({"grpc": suite.grpc_addr.to_string(), "grpc_url": suite.grpc_url(), "sandbox_api": api, "sandbox_admin": admin, "admin": metrics_url, "callbacks": callbacks_url});
        std::fs::write(&path, ready.to_string())?;
    }
    wxpush_server::shutdown::signal().await;
    suite.shutdown().await;
    Ok(())
}
