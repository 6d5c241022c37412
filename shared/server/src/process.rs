//! Running components: one gRPC port serving every component's routes
//! (with health and reflection), one admin port with every component's
//! metrics, their start-up steps before serving and their tasks until the
//! drain signal. The four binaries and `wxpush dev` all start this way.

use crate::component::Component;
use crate::shutdown::Shutdown;
use anyhow::Context;
use clap::Parser;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wxpush_metrics::SharedRegistry;

/// Where a service listens and who may call it: every service config
/// implements this.
pub trait Listen {
    /// The gRPC address.
    fn listen(&self) -> SocketAddr;
    /// The admin HTTP address (`/metrics`, `/healthz`).
    fn admin_listen(&self) -> SocketAddr;
    /// The `auth:` section.
    fn auth(&self) -> &wxpush_auth::AuthSettings;
}

/// Implements [`Listen`] for a config with `listen` and `admin_listen`
/// fields of type `SocketAddr` and an `auth` field.
#[macro_export]
macro_rules! listen_on_fields {
    ($config:ty) => {
        impl $crate::process::Listen for $config {
            fn listen(&self) -> std::net::SocketAddr {
                self.listen
            }
            fn admin_listen(&self) -> std::net::SocketAddr {
                self.admin_listen
            }
            fn auth(&self) -> &wxpush_auth::AuthSettings {
                &self.auth
            }
        }
    };
}

/// The ports of a process, bound (port 0 picks a free one).
pub struct Listeners {
    pub grpc: TcpListener,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds both; an address that cannot be bound is an error naming it.
    pub async fn bind(grpc: SocketAddr, admin: Option<SocketAddr>) -> anyhow::Result<Self> {
        let grpc = crate::grpc::bind(grpc)
            .await
            .with_context(|| format!("cannot listen on {grpc} (listen)"))?;
        let admin = match admin {
            Some(a) => Some(
                crate::grpc::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a} (admin_listen)"))?,
            ),
            None => None,
        };
        Ok(Self { grpc, admin })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }
}

/// Components serving in this process.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// Every metric family of the process (what the admin port serves).
    pub metrics: SharedRegistry,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    admin: Option<JoinHandle<std::io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for the server to drain (after the drain signal), then for
    /// every task to finish what it holds.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await.context("gRPC server task")?;
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        served.context("gRPC server")
    }
}

/// Runs start-up steps, then serves the components until `drain` fires,
/// every call passing `gate`.
pub async fn start(
    components: Vec<Component>,
    listeners: Listeners,
    gate: crate::rpc::GateLayer,
    drain: Shutdown,
) -> anyhow::Result<Running> {
    let grpc_addr = listeners.grpc_addr();
    let admin_addr = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());
    let metrics = SharedRegistry::new();
    metrics.register_with(|r| crate::rpc::RpcMetrics::global().register(r));
    metrics.register_with(|r| crate::rpc::GateMetrics::global().register(r));
    metrics.register_with(crate::build_info::register);
    let mut shared = BTreeSet::new();
    let mut routes = tonic::service::Routes::default();
    let mut names = Vec::new();
    let mut tasks = Vec::new();
    for c in components {
        for step in c.startup {
            step.await.with_context(|| format!("{} start-up", c.name))?;
        }
        for (key, register) in c.shared_metrics {
            if shared.insert(key) {
                metrics.register_with(register);
            }
        }
        for register in c.metrics {
            metrics.register_with(register);
        }
        for task in c.tasks {
            tasks.push(tokio::spawn(task(drain.clone())));
        }
        for add in c.routes {
            routes = add(routes);
        }
        names.extend(c.services);
    }
    let admin = listeners.admin.map(|l| {
        tokio::spawn(wxpush_metrics::serve_admin(
            l,
            metrics.clone(),
            drain.wait(),
        ))
    });
    let server = tokio::spawn(crate::grpc::serve(
        routes,
        names,
        gate,
        listeners.grpc,
        drain.wait(),
    ));
    Ok(Running {
        grpc_addr,
        admin_addr,
        metrics,
        server,
        admin,
        tasks,
    })
}

/// The command line every service binary takes.
#[derive(Parser)]
#[command(version = crate::build_info::LONG_VERSION)]
struct Args {
    /// YAML config file; `PREFIX__KEY=value` environment variables override
    /// any setting (e.g. `WXPUSH_TOKEN__LISTEN=0.0.0.0:50051`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Build the service from its config (files read, addresses bound and
    /// released, nothing served) and exit: 0 if it would start.
    #[arg(long)]
    check_config: bool,
}

/// The `main` of a service binary: telemetry, config (`--config` or the
/// `{env_prefix}_CONFIG` variable, then `{env_prefix}__*` overrides), the
/// build, and serving until SIGTERM; or `--check-config`.
pub async fn main<C, F, Fut>(
    binary: &'static str,
    env_prefix: &'static str,
    build: F,
) -> anyhow::Result<()>
where
    C: DeserializeOwned + Listen,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Component>>,
{
    // Named as the binary (`wxpush-token 0.1.0 (commit ...)`), not as
    // this crate.
    let matches = <Args as clap::CommandFactory>::command()
        .name(binary)
        .bin_name(binary)
        .get_matches();
    let args = <Args as clap::FromArgMatches>::from_arg_matches(&matches)?;
    let path = config_path(args.config, env_prefix);
    if args.check_config {
        let config: C = crate::config::load(path.as_deref(), env_prefix)?;
        check(config, build).await?;
        println!("config OK");
        return Ok(());
    }
    run(binary, env_prefix, path, build).await
}

/// Serves one service until SIGTERM: telemetry, its config (`path`, then
/// `{env_prefix}__*` overrides), its build. What a service binary does, and
/// `wxpush serve <service>`.
pub async fn run<C, F, Fut>(
    binary: &'static str,
    env_prefix: &'static str,
    path: Option<PathBuf>,
    build: F,
) -> anyhow::Result<()>
where
    C: DeserializeOwned + Listen,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Component>>,
{
    let telemetry = wxpush_telemetry::init(binary, crate::build_info::VERSION);
    let result = async {
        let config: C = crate::config::load(path.as_deref(), env_prefix)?;
        serve(config, build, Shutdown::on_signal()).await
    }
    .await;
    telemetry.shutdown().await;
    result
}

/// The config file a service reads: `--config`, else `{env_prefix}_CONFIG`.
pub fn config_path(flag: Option<PathBuf>, env_prefix: &str) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os(format!("{env_prefix}_CONFIG")).map(PathBuf::from))
}

/// Builds the component and binds its addresses without serving.
pub async fn check<C, F, Fut>(config: C, build: F) -> anyhow::Result<()>
where
    C: Listen,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Component>>,
{
    let (grpc, admin) = (config.listen(), config.admin_listen());
    gate(&config)?;
    build(config).await?;
    Listeners::bind(grpc, Some(admin)).await?;
    Ok(())
}

/// Builds one component from its config and serves it until `drain`.
pub async fn serve<C, F, Fut>(config: C, build: F, drain: Shutdown) -> anyhow::Result<()>
where
    C: Listen,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Component>>,
{
    let listeners = Listeners::bind(config.listen(), Some(config.admin_listen())).await?;
    let gate = gate(&config)?;
    let component = build(config).await?;
    start(vec![component], listeners, gate, drain)
        .await?
        .wait()
        .await
}

/// The gate of a service's `auth:` section (its key and grants read).
fn gate(config: &impl Listen) -> anyhow::Result<crate::rpc::GateLayer> {
    Ok(crate::rpc::GateLayer::from_settings(config.auth())?)
}
