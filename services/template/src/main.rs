//! `wxpush-template`: the template service as its own process.

/// Maps business templates to WeChat templates, validates and renders them.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-template", "WXPUSH_TEMPLATE", wxpush_template::build).await
}
