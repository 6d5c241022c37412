//! `wxpush`: run the whole suite locally (`wxpush dev`) or talk to a running
//! one (`wxpush send`, `wxpush logs`).

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use wxpush::cli;
use wxpush::{Suite, SuiteOptions};
use wxpush_proto::v1::{LogFilter, SendRequest};

/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "WeChat message delivery for internal systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(ClapArgs)]
struct Target {
    /// gRPC address of the suite (or its delivery / logquery service).
    #[arg(
        long,
        env = "WXPUSH_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the four services and a local WeChat sandbox in one process, on
    /// in-memory backends, preloaded with demo apps, templates and users.
    Dev {
        /// gRPC address serving all four services.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// The sandbox's WeChat API address.
        #[arg(long, default_value = "127.0.0.1:9100")]
        sandbox_listen: SocketAddr,
        /// The sandbox's admin API address (faults, received messages).
        #[arg(long, default_value = "127.0.0.1:9101")]
        sandbox_admin_listen: SocketAddr,
        /// Admin HTTP address: `/metrics` (every service's metrics) and `/healthz`.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Write the bound addresses as JSON to this file once serving
        /// (useful with port 0).
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Run the delivery service alone (as `wxpush-delivery` does), e.g. as an
    /// extra worker process on a Redis backend.
    Delivery {
        /// YAML config file; `WXPUSH_DELIVERY__KEY=value` overrides any setting.
        #[arg(long, env = "WXPUSH_DELIVERY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run one service as its own process, exactly as its binary
    /// (`wxpush-token`, ...) does: one image or install serves them all.
    Serve {
        /// token, template, delivery or logquery.
        service: ServiceName,
        /// YAML config file; `WXPUSH_<SERVICE>__KEY=value` overrides any setting.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send one message now and print the outcome (exit 3 if not SENT).
    Send {
        /// Business template key, e.g. order_shipped.
        #[arg(long = "template")]
        template_key: String,
        /// Recipient openid.
        #[arg(long)]
        openid: String,
        /// Template variable, repeatable: --var order_id=SF123
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// Must match the template's app when given.
        #[arg(long, default_value = "")]
        app_id: String,
        /// The same key never sends twice.
        #[arg(long, default_value = "")]
        idempotency_key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Dead letters: list them, or `--replay` them (by `--id`, or all that
    /// match the filter) back onto the queue.
    Dlq {
        #[arg(long)]
        replay: bool,
        /// Message id to replay, repeatable.
        #[arg(long = "id")]
        ids: Vec<String>,
        #[arg(long, default_value = "")]
        app_id: String,
        #[arg(long = "template", default_value = "")]
        template_key: String,
        #[arg(long, default_value_t = 0)]
        errcode: i64,
        /// At most this many listed (1..500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Circuit breaker state per app (closed / open / half-open).
    Breaker {
        #[arg(long)]
        app_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Print the Redis ACL rules that give each service its own user,
    /// limited to its own keys (`ACL SETUSER ... >PASSWORD`; fill in each
    /// password and give each service its own `backend.redis_url`).
    RedisAcl {
        /// The services' `backend.key_prefix`.
        #[arg(long, default_value = "wxpush:")]
        prefix: String,
    },
    /// Token status per app (expiry, last refresh, fetches today; never the token).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Query the delivery log, newest first.
    Logs {
        #[arg(long, default_value = "")]
        message_id: String,
        #[arg(long, default_value = "")]
        openid: String,
        #[arg(long, default_value = "")]
        trace_id: String,
        #[arg(long, default_value = "")]
        app_id: String,
        #[arg(long = "template", default_value = "")]
        template_key: String,
        /// SENT, FAILED, QUEUED, ...
        #[arg(long)]
        status: Option<String>,
        /// At most this many records (1..500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Keep printing matching records as they are logged (TailLogs),
        /// oldest first, until the server ends the stream.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ServiceName {
    Token,
    Template,
    Delivery,
    Logquery,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Show every app's token status, or one app's.
    Status {
        #[arg(long)]
        app_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Dev {
            listen,
            sandbox_listen,
            sandbox_admin_listen,
            admin_listen,
            ready_file,
        } => {
            let telemetry = wxpush_telemetry::init("wxpush-dev", env!("CARGO_PKG_VERSION"));
            let mut opts = SuiteOptions::demo(listen, sandbox_listen, sandbox_admin_listen);
            opts.admin_listen = Some(admin_listen);
            let result = run_dev(opts, ready_file).await;
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
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(cli::EXIT_RPC_ERROR);
                }
            };
            let req = SendRequest {
                app_id,
                template_key,
                openid,
                variables,
                idempotency_key,
                ..Default::default()
            };
            cli::send(&target.addr, req, target.json).await
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
            cli::dlq(&target.addr, replay, ids, filter, limit, target.json).await
        }
        Command::RedisAcl { prefix } => {
            for service in wxpush_redis::acl::Service::ALL {
                println!("{}", service.setuser_line(&prefix));
            }
            0
        }
        Command::Breaker { app_id, target } => {
            cli::breaker(&target.addr, app_id, target.json).await
        }
        Command::Token {
            command: TokenCommand::Status { app_id, target },
        } => cli::token_status(&target.addr, app_id, target.json).await,
        Command::Logs {
            message_id,
            openid,
            trace_id,
            app_id,
            template_key,
            status,
            limit,
            follow,
            target,
        } => {
            let status = match status.as_deref().map(cli::parse_status).transpose() {
                Ok(s) => s.map_or(0, |s| s as i32),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(cli::EXIT_RPC_ERROR);
                }
            };
            let filter = LogFilter {
                message_id,
                trace_id,
                openid,
                app_id,
                template_key,
                status,
                ..Default::default()
            };
            if follow {
                cli::follow(&target.addr, filter, limit, target.json).await
            } else {
                cli::logs(&target.addr, filter, limit, target.json).await
            }
        }
    };
    std::process::exit(code);
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
    }
}

async fn run_dev(opts: SuiteOptions, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let suite = Suite::start(opts).await?;
    let metrics_url = suite
        .admin_addr
        .map(|a| format!("http://{a}"))
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
         \nTry:\n\
         \x20 wxpush send --addr {grpc} --template order_shipped --openid o_demo_follower \\\n\
         \x20     --var order_id=SF1234567 --var ship_time='2026-11-23 10:00' --var carrier=顺丰速运\n\
         \x20 wxpush logs --addr {grpc} --openid o_demo_follower\n\
         \x20 grpcurl -plaintext {addr} list\n\
         \nDemo users: o_demo_follower, o_demo_unfollowed (official account wx_demo_oa);\n\
         \x20           o_demo_subscriber, o_demo_no_consent (mini program wx_demo_mp).\n\
         Ctrl-C to stop.",
        grpc = suite.grpc_url(),
        addr = suite.grpc_addr,
        metrics = metrics_url,
    );
    if let Some(path) = ready_file {
        let ready = serde_json::json!({"grpc": suite.grpc_addr.to_string(), "grpc_url": suite.grpc_url(), "sandbox_api": api, "sandbox_admin": admin, "admin": metrics_url});
        std::fs::write(&path, ready.to_string())?;
    }
    wxpush_server::shutdown::signal().await;
    suite.shutdown().await;
    Ok(())
}
