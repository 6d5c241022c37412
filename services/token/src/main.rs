//! `wxpush-token`: the token service as its own process.

/// Owns every app's WeChat access_token.
/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-token", "WXPUSH_TOKEN", wxpush_token::build).await
}
