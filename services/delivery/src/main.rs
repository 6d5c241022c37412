//! `wxpush-delivery`: the delivery service as its own process.

/// Sends WeChat messages; every attempt becomes a delivery event.
/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-delivery", "WXPUSH_DELIVERY", wxpush_delivery::build).await
}
