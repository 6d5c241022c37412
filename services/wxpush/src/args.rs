//! The `wxpush` command line: its subcommands and their arguments.

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use wxpush::cli;

#[derive(Parser)]
#[command(
    version = wxpush_server::build_info::LONG_VERSION,
    about = "WeChat message delivery for internal systems",
    after_help = "Exit codes: 0 done; 2 usage error; 3 `send`: not delivered; 4 the call failed \
                  (error answer, unreachable, timeout)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(ClapArgs)]
pub(crate) struct Target {
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
    /// A bearer token (JWT) sent as `authorization: Bearer ...` where the
    /// suite checks callers (`auth.mode: on`).
    #[arg(
        long,
        env = "WXPUSH_TOKEN",
        hide_env_values = true,
        global = true,
        value_parser = cli::parse_token
    )]
    token: Option<cli::BearerToken>,
}

impl Target {
    pub(crate) fn client(self) -> cli::Target {
        cli::Target {
            addr: self.addr,
            json: self.json,
            timeout: self.timeout,
            token: self.token,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Only messages this caller sent (its configured name).
        #[arg(long, default_value = "")]
        caller: String,
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
pub(crate) enum ServiceName {
    Token,
    Template,
    Delivery,
    Logquery,
    Callback,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Show every app's token status, or one app's.
    Status {
        /// Only this app (default: every configured app).
        #[arg(long)]
        app_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}
