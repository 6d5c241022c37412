//! `wxpush-delivery`: the delivery service as its own process.

/// Sends WeChat messages; every attempt becomes a delivery event.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-delivery", "WXPUSH_DELIVERY", wxpush_delivery::build).await
}
