//! `wxpush`: run the whole suite locally (`wxpush dev`) or talk to a running
//! one (`wxpush send`, `wxpush logs`).

use clap::Parser;
use std::path::PathBuf;
use wxpush::SuiteOptions;
use wxpush::cli;
use wxpush_proto::v1::{LogFilter, SendRequest};

mod args;

use args::{Cli, Command, ServiceName, TokenCommand};

/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Dev {
            listen,
            sandbox_listen,
            sandbox_admin_listen,
            admin_listen,
            callback_listen,
            ready_file,
            config,
        } => {
            let telemetry = wxpush_telemetry::init("wxpush-dev", env!("CARGO_PKG_VERSION"));
            let mut opts = SuiteOptions::demo(listen, sandbox_listen, sandbox_admin_listen);
            opts.admin_listen = Some(admin_listen);
            opts.callbacks_listen = Some(callback_listen);
            if let Some(path) = config {
                opts = match wxpush::dev_config::DevConfig::load(&path).and_then(|c| c.apply(opts))
                {
                    Ok(opts) => opts,
                    Err(e) => usage(&format!("{}: {e:#}", path.display())),
                };
            }
            let result = wxpush::dev::run(opts, ready_file).await;
            telemetry.shutdown().await;
            result?;
            0
        }
        Command::Send {
            template_key,
            openid,
            vars,
            app_id,
            idempotency_key,
            target,
        } => {
            let variables = match cli::parse_vars(&vars) {
                Ok(v) => v,
                Err(e) => usage(&e),
            };
            let req = SendRequest {
                app_id,
                template_key,
                openid,
                variables,
                idempotency_key,
                ..Default::default()
            };
            cli::send(&target.client(), req).await
        }
        Command::Delivery { config } => {
            serve(ServiceName::Delivery, config).await?;
            0
        }
        Command::Serve { service, config } => {
            serve(service, config).await?;
            0
        }
        Command::Dlq {
            replay,
            ids,
            yes,
            dry_run,
            app_id,
            template_key,
            errcode,
            limit,
            target,
        } => {
            let filter = wxpush_proto::v1::DeadLetterFilter {
                app_id,
                template_key,
                errcode,
                time_range: None,
            };
            let action = match (replay, ids.is_empty(), yes, dry_run) {
                (false, ..) | (true, true, false, true) => cli::DlqAction::List,
                (true, false, ..) | (true, true, true, false) => cli::DlqAction::Replay { ids },
                (true, true, false, false) => usage(
                    "dlq --replay without --id replays every dead letter matching the filter: \
                     add --yes to do it, or --dry-run to see which",
                ),
                (true, true, true, true) => unreachable!("clap refuses --yes with --dry-run"),
            };
            cli::dlq(&target.client(), action, filter, limit).await
        }
        Command::Migrate { postgres_url } => cli::migrate(&postgres_url).await,
        Command::RedisAcl { prefix } => {
            for service in wxpush_redis::acl::Service::ALL {
                println!("{}", service.setuser_line(&prefix));
            }
            0
        }
        Command::Breaker { app_id, target } => cli::breaker(&target.client(), app_id).await,
        Command::Consent {
            app_id,
            openid,
            target,
        } => cli::consent(&target.client(), app_id, openid).await,
        Command::Token {
            command: TokenCommand::Status { app_id, target },
        } => cli::token_status(&target.client(), app_id).await,
        Command::Logs {
            message_id,
            openid,
            trace_id,
            app_id,
            template_key,
            caller,
            status,
            errcode,
            limit,
            follow,
            target,
        } => {
            let status = match status.as_deref().map(cli::parse_status).transpose() {
                Ok(s) => s.map_or(0, |s| s as i32),
                Err(e) => usage(&e),
            };
            let filter = LogFilter {
                message_id,
                trace_id,
                openid,
                app_id,
                template_key,
                caller,
                status,
                errcode,
                ..Default::default()
            };
            if follow {
                cli::follow(&target.client(), filter, limit).await
            } else {
                cli::logs(&target.client(), filter, limit).await
            }
        }
    };
    std::process::exit(code);
}

/// Says what is wrong with the command line and exits with the usage code.
fn usage(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(cli::EXIT_USAGE);
}

/// One service until SIGTERM, exactly as its own binary runs it.
async fn serve(service: ServiceName, config: Option<PathBuf>) -> anyhow::Result<()> {
    use wxpush_server::process::{config_path, run};
    match service {
        ServiceName::Token => {
            let path = config_path(config, "WXPUSH_TOKEN");
            run("wxpush-token", "WXPUSH_TOKEN", path, wxpush_token::build).await
        }
        ServiceName::Template => {
            let path = config_path(config, "WXPUSH_TEMPLATE");
            run(
                "wxpush-template",
                "WXPUSH_TEMPLATE",
                path,
                wxpush_template::build,
            )
            .await
        }
        ServiceName::Delivery => {
            let path = config_path(config, "WXPUSH_DELIVERY");
            run(
                "wxpush-delivery",
                "WXPUSH_DELIVERY",
                path,
                wxpush_delivery::build,
            )
            .await
        }
        ServiceName::Logquery => {
            let path = config_path(config, "WXPUSH_LOGQUERY");
            run(
                "wxpush-logquery",
                "WXPUSH_LOGQUERY",
                path,
                wxpush_logquery::build,
            )
            .await
        }
        ServiceName::Callback => {
            let path = config_path(config, "WXPUSH_CALLBACK");
            run(
                "wxpush-callback",
                "WXPUSH_CALLBACK",
                path,
                wxpush_callback::build,
            )
            .await
        }
    }
}
