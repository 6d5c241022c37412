//! `wxpush-logquery`: the log query service as its own process.

/// Indexes delivery events and answers queries about them.
/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-logquery", "WXPUSH_LOGQUERY", wxpush_logquery::build).await
}
