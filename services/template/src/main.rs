//! `wxpush-template`: the template service as its own process.

use clap::Parser;
use std::path::PathBuf;
use wxpush_template::{TemplateGrpc, TemplateRegistry, spec};

/// Maps business templates to WeChat templates, validates and renders them.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; `WXPUSH_TEMPLATE__KEY=value` overrides any setting.
    #[arg(long, env = "WXPUSH_TEMPLATE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::logging::init();
    let args = Args::parse();
    let config: wxpush_template::TemplateConfig =
        wxpush_server::config::load(args.config.as_deref(), "WXPUSH_TEMPLATE")?;
    let registry = TemplateRegistry::new();
    if let Some(path) = &config.templates_file {
        let templates = spec::load_file(path).map_err(anyhow::Error::msg)?;
        tracing::info!(count = templates.len(), file = %path.display(), "templates loaded");
        registry
            .seed(templates)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let listener = wxpush_server::grpc::bind(config.listen.parse()?).await?;
    let routes = tonic::service::Routes::new(TemplateGrpc::new(registry).into_server());
    wxpush_server::grpc::serve(
        routes,
        &[wxpush_proto::v1::template_service_server::SERVICE_NAME],
        listener,
        wxpush_server::shutdown::signal(),
    )
    .await?;
    Ok(())
}
