//! `wxpush-template`: the template service as its own process.

/// Maps business templates to WeChat templates, validates and renders them.
/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-template", "WXPUSH_TEMPLATE", wxpush_template::build).await
}
