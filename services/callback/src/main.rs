//! `wxpush-callback`: the callback service as its own process.

/// Every wxpush process allocates through mimalloc (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-callback", "WXPUSH_CALLBACK", wxpush_callback::build).await
}
