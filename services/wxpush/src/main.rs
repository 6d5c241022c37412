//! `wxpush`: run the whole suite locally (`wxpush dev`) or talk to a running
//! one (`wxpush send`, `wxpush logs`).

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use wxpush::SuiteOptions;
use wxpush::cli;
use wxpush_proto::v1::{LogFilter, SendRequest};

/// Every wxpush process allocates through mimalloc: under load a sixth to a
/// quarter of each service's CPU went to glibc's malloc and free
/// (BENCHMARKS.md, the profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version = wxpush_server::build_info::LONG_VERSION,
    about = "WeChat message delivery for internal systems",
    after_help = "Exit codes: 0 done; 2 usage error; 3 `send`: not delivered; 4 the call failed \
                  (error answer, unreachable, timeout)."
)]
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
    /// Print the answer as JSON (the protobuf JSON mapping, field names as
    /// in the API) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up connecting, and on each call, after this long (500ms, 10s, 2m).
    #[arg(long, global = true, default_value = "30s", value_parser = cli::parse_duration)]
    timeout: std::time::Duration,
}

impl Target {
    fn client(self) -> cli::Target {
        cli::Target {
            addr: self.addr,
            json: self.json,
            timeout: self.timeout,
        }
    }
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
        /// Where the sandbox pushes WeChat's receipts and subscription
        /// events (`/wechat/callback/{app_id}`), so SENT becomes DELIVERED.
        #[arg(long, default_value = "127.0.0.1:8095")]
        callback_listen: SocketAddr,
        /// Write the bound addresses as JSON to this file once serving
        /// (useful with port 0).
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Your apps, templates and settings (YAML; `WXPUSH_DEV__KEY=value`
        /// overrides any): with the sandbox, or against WeChat itself
        /// (`sandbox: {enabled: false}`). See the README's "Your own WeChat
        /// test account".
        #[arg(long)]
        config: Option<PathBuf>,
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
        /// token, template, delivery, logquery or callback.
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
        /// Put dead letters back on the queue instead of listing them.
        #[arg(long)]
        replay: bool,
        /// Message id to replay, repeatable.
        #[arg(long = "id", requires = "replay")]
        ids: Vec<String>,
        /// With `--replay` and no `--id`: replay every dead letter matching
        /// the filter, without asking.
        #[arg(long, requires = "replay")]
        yes: bool,
        /// With `--replay`: list what would be replayed, replay nothing.
        #[arg(long, requires = "replay", conflicts_with = "yes")]
        dry_run: bool,
        /// Only this app's dead letters.
        #[arg(long, default_value = "")]
        app_id: String,
        /// Only this business template's.
        #[arg(long = "template", default_value = "")]
        template_key: String,
        /// Only those whose last WeChat errcode is this.
        #[arg(long)]
        errcode: Option<i64>,
        /// At most this many listed (more than 500 is taken as 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
    /// A Mini Program user's subscription consent per subscribe template,
    /// as the consent ledger learnt it from WeChat's pushes.
    Consent {
        /// The Mini Program's appid.
        #[arg(long = "app")]
        app_id: String,
        #[arg(long)]
        openid: String,
        #[command(flatten)]
        target: Target,
    },
    /// Circuit breaker state per app (closed / open / half-open).
    Breaker {
        /// Only this app (default: every app that has sent).
        #[arg(long)]
        app_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Apply the PostgreSQL schema of every service that keeps data there
    /// (the delivery log, the template registry) and exit: what the
    /// services do at start, for operators who migrate before a rollout.
    /// Safe to run while replicas start: all take turns on one advisory lock.
    Migrate {
        /// `postgres://user[:password]@host:port/database`.
        #[arg(long, env = "WXPUSH_POSTGRES_URL", hide_env_values = true)]
        postgres_url: String,
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
        /// Only this message.
        #[arg(long, default_value = "")]
        message_id: String,
        /// Only this recipient's messages.
        #[arg(long, default_value = "")]
        openid: String,
        /// Only this trace's messages (32 hex digits, as Jaeger shows it).
        #[arg(long, default_value = "")]
        trace_id: String,
        /// Only this app's messages.
        #[arg(long, default_value = "")]
        app_id: String,
        /// Only this business template's messages.
        #[arg(long = "template", default_value = "")]
        template_key: String,
        /// Only messages in this status: SENT, FAILED, QUEUED, ...
        #[arg(long)]
        status: Option<String>,
        /// Only messages whose last WeChat errcode is this.
        #[arg(long)]
        errcode: Option<i64>,
        /// At most this many records (more than 500 is taken as 500).
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
    Callback,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Show every app's token status, or one app's.
    Status {
        /// Only this app (default: every configured app).
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
